"""The strategy SDK: a frozen config and a class with callbacks, run against a Context.

The same strategy object runs in the backtester and in the strategy service: it only sees its
Context (position, cash, bar history, order calls, clock), never a broker or a database.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar, Generic, Literal, Protocol, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict
from trademesh_events.ids import ClientOrderId, InstrumentId
from trademesh_events.marketdata import Bar


class StrategyConfig(BaseModel):
    """Base of every strategy's parameters: frozen, unknown parameters refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


Side = Literal["buy", "sell"]
OrderKind = Literal["market", "limit", "stop", "stop_limit"]


class Context(Protocol):
    """What a strategy sees of the world while it runs."""

    @property
    def instrument_id(self) -> InstrumentId: ...

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

    @property
    def bar_index(self) -> int:
        """The current bar's number in the series this strategy instance has seen, from 0. In a
        backtest it is the bar's index in the list prepare() was given."""

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
    ) -> ClientOrderId:
        """Ask for an order; returns its client order id (deterministic: bot, bar time, leg)."""

    def cancel_order(self, client_order_id: ClientOrderId) -> None: ...

    def target_position(self, quantity: Decimal, *, leg: str = "main") -> ClientOrderId | None:
        """Trade to hold `quantity` (signed); returns the order's id, or None if already there."""


_KINDS = ("market", "limit", "stop", "stop_limit")


def check_order(
    side: str,
    quantity: Decimal,
    kind: str,
    limit_price: Decimal | None,
    stop_price: Decimal | None,
) -> Decimal:
    """The quantity of a valid order as a Decimal; ValueError naming what is wrong otherwise.
    Every Context's submit_order checks its order with this, live and in a backtest alike."""
    if side not in ("buy", "sell"):
        raise ValueError(f"side must be buy or sell, not {side!r}")
    if kind not in _KINDS:
        raise ValueError(f"unknown order kind {kind!r}; one of {', '.join(_KINDS)}")
    quantity = Decimal(quantity)
    if not quantity > 0:
        raise ValueError("order quantity must be positive")
    if (kind in ("limit", "stop_limit")) != (limit_price is not None):
        raise ValueError(
            f"a {kind} order {'needs' if limit_price is None else 'takes no'} limit_price"
        )
    if (kind in ("stop", "stop_limit")) != (stop_price is not None):
        raise ValueError(
            f"a {kind} order {'needs' if stop_price is None else 'takes no'} stop_price"
        )
    return quantity


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

    def active_bars(self) -> Sequence[int] | None:
        """Optional, for speed, after prepare(): the indices (into prepare's bars, ascending) of
        the only bars on which on_bar may place or cancel an order. The backtester then calls
        on_bar on those bars alone (ctx.bars and ctx.bar_index stay right), and on the others
        only fills orders and marks equity; on_bar must therefore not need to see every bar
        (read precomputed values by ctx.bar_index). None, the default: every bar."""
        return None

    def on_start(self, ctx: Context) -> None:
        """Called once before the first bar."""

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        """Called for every final bar of the bot's instrument and timeframe."""

    def on_order_event(self, ctx: Context, event: Any) -> None:
        """Called for each lifecycle event of the strategy's orders (fills included). Keep no
        state here that on_bar needs: a restarted bot is rebuilt by replaying bars only, and
        reads its position, cash and open orders from the context."""

    def on_stop(self, ctx: Context) -> None:
        """Called once when the bot stops."""


def close_of(bar: Bar) -> float:
    """A bar's close as a float, for indicators."""
    return float(bar.close)


_SHARED_CLOSES: ContextVar[tuple[Sequence[Bar], np.ndarray] | None] = ContextVar(
    "trademesh_shared_closes", default=None
)


def float_closes(bars: Sequence[Bar]) -> np.ndarray:
    """The closes of `bars` as a float array, for batch indicators in prepare(). A Decimal
    becomes a float through its text (about 0.2 µs), so the backtester converts a series once
    and shares it with the strategy (sharing_closes); each caller gets its own copy."""
    shared = _SHARED_CLOSES.get()
    if shared is not None and shared[0] is bars:
        return shared[1].copy()
    return np.fromiter((b.close for b in bars), dtype=float, count=len(bars))


@contextmanager
def sharing_closes(bars: Sequence[Bar]) -> Iterator[np.ndarray]:
    """While open, float_closes(bars) hands out copies of one conversion of `bars`."""
    closes = np.fromiter((b.close for b in bars), dtype=float, count=len(bars))
    token = _SHARED_CLOSES.set((bars, closes))
    try:
        yield closes
    finally:
        _SHARED_CLOSES.reset(token)
