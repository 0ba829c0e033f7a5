"""Typed identifiers: validated strings and UUIDs, so an account id is never mistaken for a bot id."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated, NewType
from uuid import UUID

from pydantic import AfterValidator, StringConstraints

InstrumentId = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9_-]{1,32}:[A-Za-z0-9._/-]{1,64}$"),
]
"""`venue:SYMBOL`, e.g. `binance:BTC/USDT` or `replay:GOOG`."""

ClientOrderId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,36}$")]
"""The idempotency key of an order end to end, exchange included (most cap it at 36 chars)."""

VenueOrderId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
TradeId = Annotated[str, StringConstraints(min_length=1, max_length=128)]

AccountId = NewType("AccountId", UUID)
UserId = NewType("UserId", UUID)
BotId = NewType("BotId", UUID)


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamps must be timezone-aware (UTC)")
    return value


UtcDateTime = Annotated[datetime, AfterValidator(_utc)]
"""A timezone-aware datetime; naive ones are refused."""


def make_client_order_id(bot_id: BotId, bar_time: datetime, leg: int | str) -> ClientOrderId:
    """Deterministic client order id: the same bot, bar and leg always give the same id, so a
    restarted bot re-emitting an intent cannot create a second order. A leg is a number or a
    name (a strategy's leg, e.g. "main", or "main#2" for its second order on one bar)."""
    if bar_time.tzinfo is None:
        raise ValueError("bar_time must be timezone-aware")
    canonical = f"{bot_id}|{bar_time.timestamp():.6f}|{leg}"
    return "tm-" + hashlib.sha256(canonical.encode()).hexdigest()[:29]
