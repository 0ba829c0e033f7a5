"""Decimal amounts for the order/position domain: never a float, never NaN or infinity."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import Field

Price = Annotated[Decimal, Field(gt=0, allow_inf_nan=False)]
"""A strictly positive price."""

Quantity = Annotated[Decimal, Field(gt=0, allow_inf_nan=False)]
"""A strictly positive quantity."""

NonNegative = Annotated[Decimal, Field(ge=0, allow_inf_nan=False)]
"""Volumes and remaining quantities."""

Money = Annotated[Decimal, Field(allow_inf_nan=False)]
"""An amount of money, any sign (fees, PnL)."""
