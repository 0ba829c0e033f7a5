"""Market data events: trades/ticks and OHLCV bars, keyed by instrument."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, StringConstraints, model_validator

from trademesh_events.base import Event
from trademesh_events.ids import InstrumentId, TradeId, UtcDateTime
from trademesh_events.money import NonNegative, Price, Quantity

Timeframe = Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]*[smhdw]$")]


class Tick(Event):
    """One trade (or top-of-book price) on an instrument."""

    type: Literal["trademesh.md.tick"] = "trademesh.md.tick"
    instrument_id: InstrumentId
    ts: UtcDateTime
    price: Price
    size: Quantity
    side: Literal["buy", "sell"] | None = None
    trade_id: TradeId | None = None


class Bar(Event):
    """OHLCV over [open_time, close_time). `final` is False for an in-progress update."""

    type: Literal["trademesh.md.bar"] = "trademesh.md.bar"
    instrument_id: InstrumentId
    timeframe: Timeframe
    open_time: UtcDateTime
    close_time: UtcDateTime
    open: Price
    high: Price
    low: Price
    close: Price
    volume: NonNegative
    trades: int = Field(0, ge=0)
    final: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.close_time <= self.open_time:
            raise ValueError("close_time must be after open_time")
        if self.high < max(self.open, self.close, self.low):
            raise ValueError("high must be >= open, close and low")
        if self.low > min(self.open, self.close):
            raise ValueError("low must be <= open and close")
        return self
