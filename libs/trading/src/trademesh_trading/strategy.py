"""The strategy SDK: a frozen config and a class with callbacks, run against a Context.

The same strategy object runs in the backtester and in the strategy service: it only sees its
Context (position, cash, bar history, order calls, clock), never a broker or a database.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar, Generic, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict
from trademesh_events.marketdata import Bar


class StrategyConfig(BaseModel):
    """Base of every strategy's parameters: frozen, unknown parameters refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


Side = Literal["buy", "sell"]
OrderKind = Literal["market", "limit", "stop", "stop_limit"]


class Context(Protocol):
    """What a strategy sees of the world while it runs."""

    @property
    def instrument_id(self) -> str: ...

    @property
    def timeframe(self) -> str: ...

    def now(self) -> datetime:
        """The injected clock: bar time in a backtest, wall time live."""

    @property
    def position(self) -> Decimal:
        """Signed quantity held: positive long, negative short."""

    @property
    def cash(self) -> Decimal: ...

    @property
    def equity(self) -> Decimal:
        """Cash plus the position at the last close."""

    @property
    def bars(self) -> Sequence[Bar]:
        """The most recent bars, oldest first, the current one last (a bounded window)."""

    def order_size(self) -> Decimal:
        """The quantity one entry takes under the bot's sizing rule (fixed quantity, fixed
        notional, or a share of equity) at the last close."""

    def submit_order(
        self,
        side: Side,
        quantity: Decimal,
        *,
        kind: OrderKind = "market",
        limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
        leg: str = "main",
    ) -> str:
        """Ask for an order; returns its client order id (deterministic: bot, bar time, leg)."""

    def cancel_order(self, client_order_id: str) -> None: ...

    def target_position(self, quantity: Decimal, *, leg: str = "main") -> str | None:
        """Trade to hold `quantity` (signed); returns the order's id, or None if already there."""


C = TypeVar("C", bound=StrategyConfig)


class Strategy(Generic[C]):
    """Subclass with `name`, `config_class` and the callbacks you need; state lives on self.

    Callbacks run one at a time per strategy instance; an exception from one is the bot's
    error (the runtime isolates it), not the platform's.
    """

    name: ClassVar[str]
    config_class: ClassVar[type[StrategyConfig]]

    def __init__(self, config: C) -> None:
        self.config = config

    def warmup(self) -> int:
        """Bars of history the strategy wants replayed through on_bar before trading."""
        return 0

    def prepare(self, bars: Sequence[Bar]) -> None:
        """Optional, for speed: every bar the strategy will see, before the first on_bar (a
        backtest knows them). A strategy may precompute its indicators here in one batch; it
        must then behave exactly as without (the built-ins' tests check they do)."""

    def on_start(self, ctx: Context) -> None:
        """Called once before the first bar."""

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        """Called for every final bar of the bot's instrument and timeframe."""

    def on_order_event(self, ctx: Context, event: Any) -> None:
        """Called for each lifecycle event of the strategy's orders (fills included)."""

    def on_stop(self, ctx: Context) -> None:
        """Called once when the bot stops."""


def close_of(bar: Bar) -> float:
    """A bar's close as a float, for indicators."""
    return float(bar.close)
