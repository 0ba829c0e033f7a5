"""The strategy domain logic: bot states and one bot's strategy session. Pure, no I/O.

A `BotSession` holds one bot's strategy instance and its bar window. The service hands it each
final bar with the bot's position, cash and open orders as stored; the session runs the
strategy's `on_bar` against a live Context and returns the orders the strategy asked for, each
with a deterministic client order id (bot, bar time, leg). A strategy that raises is reported
as StrategyFailed: the service puts that bot, and only it, in ERROR.

Live `target_position` counts orders already on their way: the quantity to trade is the target
minus the position minus the unfilled remainder of this leg's open orders, so a bar that comes
before the previous order's fill does not double the position. (In a backtest, orders fill at
the next bar's open, before on_bar, so both rules give the same orders there.)
"""

from __future__ import annotations

import traceback
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from trademesh_events.bots import BotState
from trademesh_events.ids import (
    AccountId,
    BotId,
    ClientOrderId,
    InstrumentId,
    UserId,
    make_client_order_id,
)
from trademesh_events.marketdata import Bar
from trademesh_events.orders import CancelOrder, OrderType, SubmitOrder
from trademesh_trading.backtest import Sizing
from trademesh_trading.strategy import OrderKind, Side, Strategy, check_order

ZERO = Decimal(0)

Action = Literal["start", "pause", "resume", "stop"]

# action -> (states it may be taken from, state it leads to)
TRANSITIONS: dict[str, tuple[frozenset[BotState], BotState]] = {
    "start": (frozenset({BotState.STOPPED, BotState.ERROR}), BotState.RUNNING),
    "pause": (frozenset({BotState.RUNNING}), BotState.PAUSED),
    "resume": (frozenset({BotState.PAUSED}), BotState.RUNNING),
    "stop": (
        frozenset({BotState.STARTING, BotState.RUNNING, BotState.PAUSED, BotState.ERROR}),
        BotState.STOPPED,
    ),
}


class IllegalTransition(ValueError):
    """An action the bot's current state does not allow (e.g. resuming a running bot)."""


def transition(state: BotState, action: str) -> BotState:
    """The state after `action`, or IllegalTransition."""
    if action not in TRANSITIONS:
        raise IllegalTransition(f"unknown action {action!r}")
    allowed, target = TRANSITIONS[action]
    if state not in allowed:
        raise IllegalTransition(
            f"cannot {action} a bot that is {state.value}; allowed from: "
            + ", ".join(sorted(s.value for s in allowed))
        )
    return target


@dataclass(frozen=True)
class BotConfig:
    """What a session needs to know of its bot."""

    bot_id: BotId
    user_id: UserId
    account_id: AccountId
    instrument_id: InstrumentId
    timeframe: str
    sizing: Sizing


@dataclass(frozen=True)
class OpenOrder:
    """An order of the bot that is not finished yet, as stored."""

    client_order_id: ClientOrderId
    leg: str
    side: Side
    remaining: Decimal

    @property
    def signed(self) -> Decimal:
        return self.remaining if self.side == "buy" else -self.remaining


@dataclass(frozen=True)
class OrderRequest:
    """An order a strategy asked for."""

    client_order_id: ClientOrderId
    bar_time: datetime
    leg: str
    side: Side
    quantity: Decimal
    kind: OrderKind
    limit_price: Decimal | None
    stop_price: Decimal | None


@dataclass(frozen=True)
class CancelRequest:
    client_order_id: ClientOrderId


Request = OrderRequest | CancelRequest


class StrategyFailed(Exception):
    """The strategy's code raised; `detail` is what the bot records (type, message, where)."""

    def __init__(self, callback: str, exc: BaseException) -> None:
        frames = traceback.extract_tb(exc.__traceback__)[-3:]
        where = "; ".join(f"{f.name} line {f.lineno}" for f in frames)
        detail = f"{callback}: {type(exc).__name__}: {exc}"
        super().__init__((detail + (f" (at {where})" if where else ""))[:1000])
        self.detail = str(self)


_KINDS: dict[str, OrderType] = {
    "market": OrderType.MARKET,
    "limit": OrderType.LIMIT,
    "stop": OrderType.STOP,
    "stop_limit": OrderType.STOP_LIMIT,
}


@dataclass
class _LiveContext:
    """The Context a bot's strategy sees (trademesh_trading.strategy.Context)."""

    config: BotConfig
    clock: Callable[[], datetime]
    history: deque[Bar]
    position: Decimal = ZERO
    cash: Decimal = ZERO
    open_orders: list[OpenOrder] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    record: bool = True  # False while warming up: orders are computed, then dropped
    id_time: datetime | None = None  # the bar time client order ids are made from
    id_prefix: str = ""  # "" for bar orders; "@<client id>" for orders from an order event
    index: int = -1  # the current bar's number since the session's first bar
    used_legs: dict[str, int] = field(default_factory=dict)

    @property
    def instrument_id(self) -> InstrumentId:
        return self.config.instrument_id

    @property
    def timeframe(self) -> str:
        return self.config.timeframe

    def now(self) -> datetime:
        return self.clock()

    @property
    def bars(self) -> Sequence[Bar]:
        return self.history

    @property
    def bar_index(self) -> int:
        return self.index

    @property
    def equity(self) -> Decimal:
        last = self.history[-1].close if self.history else ZERO
        return self.cash + self.position * last

    def order_size(self) -> Decimal:
        if not self.history:
            return ZERO
        return self.config.sizing.quantity(self.history[-1].close, self.equity)

    def _next_id(self, leg: str) -> ClientOrderId:
        if self.id_time is None:
            raise RuntimeError("orders can only be placed from a callback with a bar")
        count = self.used_legs.get(leg, 0) + 1
        self.used_legs[leg] = count
        key = f"{leg}{self.id_prefix}" + (f"#{count}" if count > 1 else "")
        return make_client_order_id(self.config.bot_id, self.id_time, key)

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
        quantity = check_order(side, quantity, kind, limit_price, stop_price)
        client_order_id = self._next_id(leg)
        assert self.id_time is not None
        request = OrderRequest(
            client_order_id, self.id_time, leg, side, quantity, kind, limit_price, stop_price
        )
        if self.record:
            self.requests.append(request)
            self.open_orders.append(OpenOrder(client_order_id, leg, side, quantity))
        return client_order_id

    def cancel_order(self, client_order_id: ClientOrderId) -> None:
        if self.record and any(o.client_order_id == client_order_id for o in self.open_orders):
            self.requests.append(CancelRequest(client_order_id))

    def target_position(self, quantity: Decimal, *, leg: str = "main") -> ClientOrderId | None:
        coming = sum((o.signed for o in self.open_orders if o.leg == leg), ZERO)
        delta = Decimal(quantity) - self.position - coming
        if delta == 0:
            return None
        return self.submit_order("buy" if delta > 0 else "sell", abs(delta), leg=leg)


class BotSession:
    """One bot's strategy instance, its bar window, and the last bar it saw."""

    def __init__(
        self,
        config: BotConfig,
        strategy: Strategy[Any],
        *,
        clock: Callable[[], datetime],
        window: int = 500,
    ) -> None:
        self.config = config
        self.strategy = strategy
        self.clock = clock
        self.history: deque[Bar] = deque(maxlen=max(window, strategy.warmup(), 1))
        self.last_bar_time: datetime | None = None
        self.last_bar_close: datetime | None = None  # the market time of the bot's decisions
        self.seen = 0  # bars the strategy has seen (warm-up included): ctx.bar_index + 1
        self.started = False

    def _context(
        self,
        *,
        position: Decimal,
        cash: Decimal,
        open_orders: Sequence[OpenOrder],
        record: bool,
        id_time: datetime | None,
        id_prefix: str = "",
        clock: Callable[[], datetime] | None = None,
    ) -> _LiveContext:
        return _LiveContext(
            self.config,
            clock or self.clock,
            self.history,
            position,
            cash,
            list(open_orders),
            record=record,
            id_time=id_time,
            id_prefix=id_prefix,
            index=self.seen - 1,
        )

    def _start(self, ctx: _LiveContext) -> None:
        if not self.started:
            self.started = True
            try:
                self.strategy.on_start(ctx)
            except Exception as exc:
                raise StrategyFailed("on_start", exc) from exc

    def warm(self, bars: Sequence[Bar], *, position: Decimal, cash: Decimal) -> None:
        """Replay bars the bot has already seen (or history before its start) through on_bar,
        with a simulated clock, dropping the orders they ask for."""
        for bar in bars:
            if self.last_bar_time is not None and bar.open_time <= self.last_bar_time:
                continue
            self.seen += 1
            ctx = self._context(
                position=position,
                cash=cash,
                open_orders=(),
                record=False,
                id_time=bar.open_time,
                clock=lambda b=bar: b.close_time,  # type: ignore[misc]
            )
            self._start(ctx)
            self.history.append(bar)
            self.last_bar_time, self.last_bar_close = bar.open_time, bar.close_time
            try:
                self.strategy.on_bar(ctx, bar)
            except Exception as exc:
                raise StrategyFailed("on_bar (warm-up)", exc) from exc

    def on_bar(
        self,
        bar: Bar,
        *,
        position: Decimal,
        cash: Decimal,
        open_orders: Sequence[OpenOrder],
    ) -> list[Request]:
        """The orders the strategy asks for on this bar. A bar that is not after the last one
        seen asks for nothing (it was handled before)."""
        if self.last_bar_time is not None and bar.open_time <= self.last_bar_time:
            return []
        self.seen += 1
        ctx = self._context(
            position=position,
            cash=cash,
            open_orders=open_orders,
            record=True,
            id_time=bar.open_time,
        )
        self._start(ctx)
        self.history.append(bar)
        self.last_bar_time, self.last_bar_close = bar.open_time, bar.close_time
        try:
            self.strategy.on_bar(ctx, bar)
        except Exception as exc:
            raise StrategyFailed("on_bar", exc) from exc
        return ctx.requests

    def on_order_event(
        self,
        event: Any,
        *,
        position: Decimal,
        cash: Decimal,
        open_orders: Sequence[OpenOrder],
    ) -> list[Request]:
        """Tell the strategy about one of its order events; orders it asks for get ids from
        the bot's last bar and the event's order (so a redelivered event asks for the same)."""
        ctx = self._context(
            position=position,
            cash=cash,
            open_orders=open_orders,
            record=True,
            id_time=self.last_bar_time,
            id_prefix=f"@{event.client_order_id}",
        )
        try:
            self.strategy.on_order_event(ctx, event)
        except Exception as exc:
            raise StrategyFailed("on_order_event", exc) from exc
        return ctx.requests

    def on_stop(
        self, *, position: Decimal, cash: Decimal, open_orders: Sequence[OpenOrder]
    ) -> list[Request]:
        ctx = self._context(
            position=position,
            cash=cash,
            open_orders=open_orders,
            record=True,
            id_time=self.last_bar_time,
            id_prefix="@stop",
        )
        try:
            self.strategy.on_stop(ctx)
        except Exception as exc:
            raise StrategyFailed("on_stop", exc) from exc
        return ctx.requests


def intent(
    config: BotConfig, request: Request, now: datetime, decided_at: datetime | None = None
) -> SubmitOrder | CancelOrder:
    """The event on orders.intents.v1 for a strategy's request; `decided_at` is the close time
    of the last bar the strategy saw (SubmitOrder.decided_at)."""
    if isinstance(request, CancelRequest):
        return CancelOrder(
            account_id=config.account_id,
            user_id=config.user_id,
            client_order_id=request.client_order_id,
            created_at=now,
        )
    return SubmitOrder(
        account_id=config.account_id,
        user_id=config.user_id,
        client_order_id=request.client_order_id,
        instrument_id=config.instrument_id,
        side=request.side,
        order_type=_KINDS[request.kind],
        quantity=request.quantity,
        limit_price=request.limit_price,
        stop_price=request.stop_price,
        bot_id=config.bot_id,
        source="bot",
        created_at=now,
        decided_at=decided_at,
    )
