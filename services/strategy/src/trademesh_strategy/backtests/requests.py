"""What is submitted: a backtest, and a grid search of backtests."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from trademesh_events.ids import InstrumentId
from trademesh_events.money import Amount, MoneyAmount
from trademesh_trading.backtest import Sizing
from trademesh_trading.buying_power import MarginMode
from trademesh_trading.timeframes import Timeframe

RankBy = Literal[
    "total_return",
    "annual_return",
    "sharpe",
    "sortino",
    "max_drawdown",
    "win_rate",
    "profit_factor",
]


class BacktestRequest(BaseModel):
    """One backtest: a strategy with its parameters over stored bars of one instrument.

    Its owner is the caller (never the body: unknown fields are refused). Naive datetimes are
    UTC. Money is Decimal; slippage and fees are basis points of the traded notional."""

    model_config = ConfigDict(extra="forbid")

    strategy: str = Field(min_length=1, max_length=100, description="See GET /strategies.")
    params: dict[str, Any] = Field(
        default_factory=dict, description="The strategy's parameters (its JSON Schema)."
    )
    instrument_id: InstrumentId
    timeframe: str = Field(description="Bar length, e.g. 1m, 1h, 1d.")
    start: datetime = Field(description="First bar opening at or after this (UTC if naive).")
    end: datetime = Field(description="Bars opening before this (UTC if naive); after start.")
    cash: MoneyAmount = Field(
        Decimal(10_000), gt=0, max_digits=20, decimal_places=8, description="Starting cash."
    )
    sizing: Sizing = Field(
        default_factory=Sizing,
        description="How much one entry buys: quantity, notional, or equity_pct (default: all "
        "the equity), rounded down to `step` (default 1: whole units; 0.0001 for fractions of "
        "a crypto asset).",
    )
    slippage_bps: Amount = Field(
        Decimal(0), ge=0, le=10_000, description="Market and stop fills move this much against."
    )
    fee_bps: Amount = Field(Decimal(0), ge=0, le=10_000, description="Fee on filled notional.")
    margin_mode: MarginMode = Field(
        MarginMode.CASH,
        description="The account's buying power: `cash` borrows nothing, `margin` reaches "
        "max_leverage x equity. Orders and fills over it are refused and counted.",
    )
    max_leverage: Amount = Field(Decimal(1), ge=1, le=100, description="Margin accounts only.")
    allow_short: bool = Field(False, description="Whether sells may go below zero (shorts).")

    @field_validator("timeframe")
    @classmethod
    def _timeframe(cls, value: str) -> str:
        return Timeframe.parse(value).label

    @field_validator("start", "end")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @model_validator(mode="after")
    def _range(self) -> Self:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if self.margin_mode is MarginMode.CASH and self.max_leverage != 1:
            raise ValueError("a cash account borrows nothing: its max_leverage is 1")
        return self

    def base(self) -> BacktestRequest:
        """The plain backtest of this request: a grid's or an optimisation's without the fields
        of their own (a grid's `params` are the base of every combination)."""
        return BacktestRequest.model_validate(
            self.model_dump(include=set(BacktestRequest.model_fields))
        )


class GridRequest(BacktestRequest):
    """A grid search: the backtest of every combination of the `grid` values, each on top of
    `params`, ranked by one statistic once they have run."""

    grid: dict[str, list[Any]] = Field(
        min_length=1,
        description="Parameter name -> the values to try (at least one each); the cartesian "
        "product of these lists, on top of `params`, is the set of backtests.",
    )
    rank_by: RankBy = Field(
        "sharpe",
        description="The statistic that ranks the results: max_drawdown ascending, the others "
        "descending; NaN or infinite values rank last.",
    )

    @field_validator("grid")
    @classmethod
    def _values(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for name, values in grid.items():
            if not name:
                raise ValueError("a grid parameter needs a name")
            if not values:
                raise ValueError(f"grid parameter {name!r} has no values")
        return grid
