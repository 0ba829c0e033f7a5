"""Decimal amounts for the order/position domain: never a float, never NaN or infinity."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import BeforeValidator, Field


def _no_float(value: Any) -> Any:
    """Refuse floats, from Python or from a JSON number with a fraction: by the time a float
    exists its value is already rounded (12345678.123456789 -> 12345678.12345679). Amounts
    travel as decimal strings (our encoder writes them so); integers are exact and accepted."""
    if isinstance(value, float):
        raise ValueError("must be a decimal string or an integer, not a float")
    return value


_Exact = BeforeValidator(_no_float)

Price = Annotated[Decimal, Field(gt=0, allow_inf_nan=False), _Exact]
"""A strictly positive price."""

Quantity = Annotated[Decimal, Field(gt=0, allow_inf_nan=False), _Exact]
"""A strictly positive quantity."""

NonNegative = Annotated[Decimal, Field(ge=0, allow_inf_nan=False), _Exact]
"""Volumes and remaining quantities."""

Money = Annotated[Decimal, Field(allow_inf_nan=False), _Exact]
"""An amount of money, any sign (fees, PnL)."""
