"""The backtester: a strategy over a list of bars, in process, with the shared fill model.

Each bar t: orders placed before it are tried against it (fills, fees, position and cash
change), then the bar joins the history and the strategy's on_bar runs, possibly placing
orders for bar t+1; equity is marked at the bar's close. Orders still open at the end are
dropped; a position still open is valued at the last close (and its trade left open).

Buying power (trademesh_trading.buying_power), as live trading applies it: an order the account
cannot pay for is refused when placed, as risk denies it (valued at the last close, moved by the
collar for a market order, plus fees, against cash less what pending orders reserve), and a fill
it can no longer pay for when the bar comes cancels its order, as the paper venue does. Both are
counted in the statistics (`refused_orders`, `refused_fills`).

A signal is the strategy asking for an order on a bar (it fills on a later one): each trade keeps
the close time of the bars whose signals opened and closed it. An entry the sizing rounds down to
nothing (one unit costs more than the sizing allows, at a step of whole units) places no order;
those are counted (`zero_size_signals`), so that a backtest that never traded says why.
"""

from __future__ import annotations

import gc
import math
from bisect import bisect_right
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Literal, overload

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from trademesh_events.ids import ClientOrderId, InstrumentId
from trademesh_events.marketdata import Bar
from trademesh_events.money import Amount

from trademesh_trading import buying_power
from trademesh_trading.buying_power import AccountTerms, Shortfall
from trademesh_trading.fills import BPS, Fill, FillModel, SimOrder
from trademesh_trading.strategy import OrderKind, Side, Strategy, check_order, sharing_closes

ZERO = Decimal(0)


class Sizing(BaseModel):
    """How much one entry buys: a fixed quantity, a fixed notional, or a share of equity;
    rounded down to `step`: 1 (the default) trades whole units, as shares are; a crypto asset
    takes fractions (0.0001 BTC, or the venue's lot step)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["quantity", "notional", "equity_pct"] = "equity_pct"
    value: Amount = Field(Decimal(100), gt=0)
    step: Amount = Field(
        Decimal(1), gt=0, description="Quantities round down to a multiple of it: 1 = whole units."
    )

    def quantity(self, price: Decimal, equity: Decimal, cost: Decimal = Decimal(1)) -> Decimal:
        """`cost` is what one unit at `price` costs as a share of the price (collar and fees
        included: 1.0201 for 1 % and 1 %), so that a share of equity leaves room for them."""
        if self.kind == "quantity":
            raw = self.value
        elif self.kind == "notional":
            raw = self.value / price
        else:
            raw = equity * self.value / 100 / (price * cost)
        return max((raw / self.step).to_integral_value(ROUND_DOWN) * self.step, ZERO)


@dataclass(frozen=True)
class Trade:
    """A round trip: from opening a position to bringing it back to zero (or the end)."""

    side: Literal["long", "short"]
    quantity: Decimal
    entry_time: datetime
    entry_price: Decimal
    exit_time: datetime | None
    exit_price: Decimal | None
    pnl: Decimal  # after fees; for an open trade, marked at the last close (unrealised)
    fees: Decimal
    entry_signal_time: datetime | None = None  # close of the bar whose signal opened it
    exit_signal_time: datetime | None = None  # close of the bar whose signal closed it

    @property
    def open(self) -> bool:
        """Still open at the end: its PnL is unrealised, marked at the last close."""
        return self.exit_time is None


@dataclass(frozen=True)
class Stats:
    total_return: float
    annual_return: float
    sharpe: float
    sortino: float
    max_drawdown: float  # as a positive fraction of the peak
    max_drawdown_duration: timedelta
    win_rate: float
    profit_factor: float
    exposure: float  # share of bars with a position
    trades: int
    final_equity: Decimal
    refused_orders: int = 0  # over the buying power when placed (as risk denies them)
    refused_fills: int = 0  # over it when they would fill (as the paper venue cancels them)
    buy_and_hold_return: float = 0.0  # last close / first close - 1: the benchmark
    zero_size_signals: int = 0  # entries the sizing rounded down to no quantity at all


class EquityCurve(Sequence[tuple[datetime, Decimal]]):
    """(bar close time, equity) for every bar: cash + position * close, exact in Decimal.

    Kept as the stretches over which cash and position stayed the same (they change only when
    an order fills), and computed when read: a backtest of millions of bars does not build
    millions of Decimals that nobody reads. Compares equal to any sequence of the same pairs."""

    __slots__ = ("_bars", "_cash", "_held", "_starts")

    def __init__(self, bars: Sequence[Bar], cash: Decimal) -> None:
        self._bars = bars
        self._starts = [0]
        self._cash = [cash]
        self._held = [ZERO]

    def mark(self, index: int, cash: Decimal, held: Decimal) -> None:
        """From bar `index` on, cash and position are these."""
        if cash == self._cash[-1] and held == self._held[-1]:
            return
        if self._starts[-1] == index:
            self._cash[-1], self._held[-1] = cash, held
        else:
            self._starts.append(index)
            self._cash.append(cash)
            self._held.append(held)

    def __len__(self) -> int:
        return len(self._bars)

    def time(self, index: int) -> datetime:
        """The close time of bar `index`, without working out its equity."""
        return self._bars[index].close_time

    def _point(self, index: int) -> tuple[datetime, Decimal]:
        k = bisect_right(self._starts, index) - 1
        bar = self._bars[index]
        return bar.close_time, self._cash[k] + self._held[k] * bar.close

    @overload
    def __getitem__(self, item: int) -> tuple[datetime, Decimal]: ...

    @overload
    def __getitem__(self, item: slice) -> Sequence[tuple[datetime, Decimal]]: ...

    def __getitem__(
        self, item: int | slice
    ) -> tuple[datetime, Decimal] | Sequence[tuple[datetime, Decimal]]:
        if isinstance(item, slice):
            return [self._point(i) for i in range(*item.indices(len(self)))]
        size = len(self)
        if not -size <= item < size:
            raise IndexError("equity index out of range")
        return self._point(item if item >= 0 else size + item)

    def __iter__(self) -> Iterator[tuple[datetime, Decimal]]:
        ends = [*self._starts[1:], len(self._bars)]
        for start, end, cash, held in zip(self._starts, ends, self._cash, self._held, strict=True):
            for index in range(start, end):
                bar = self._bars[index]
                yield bar.close_time, cash + held * bar.close

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"EquityCurve({len(self)} bars, {len(self._starts)} stretches)"

    def floats(self, closes: np.ndarray) -> np.ndarray:
        """The curve as floats (for statistics), from the closes as floats."""
        # One stretch per fill: spread each stretch's cash and position over its bars in one go
        # rather than a slice per stretch (the same float operations, bar by bar).
        lengths = np.diff(np.append(self._starts, len(self._bars)))
        cash = np.repeat(np.array([float(c) for c in self._cash]), lengths)
        held = np.repeat(np.array([float(h) for h in self._held]), lengths)
        out: np.ndarray = cash + held * closes
        return out


@dataclass
class BacktestResult:
    trades: list[Trade]
    equity: EquityCurve
    fills: list[Fill]
    stats: Stats


@dataclass
class _Open:
    side: Literal["long", "short"]
    quantity: Decimal
    entry_time: datetime
    cost: Decimal  # signed cash spent opening, for the average entry price
    fees: Decimal
    signal_time: datetime | None


@dataclass
class _SimContext:
    instrument_id: InstrumentId
    timeframe: str
    sizing: Sizing
    cash: Decimal
    window: int
    position: Decimal = ZERO
    history: Sequence[Bar] = field(default_factory=deque)
    pending: list[SimOrder] = field(default_factory=list)
    sequence: int = 0
    index: int = -1
    terms: AccountTerms = field(default_factory=AccountTerms)
    reserved: dict[str, Decimal] = field(default_factory=dict)  # by client order id, as placed
    refused_orders: int = 0
    refused_fills: int = 0
    signals: dict[str, datetime] = field(default_factory=dict)  # placed orders' signal times
    zero_size_signals: int = 0
    entry_cost: Decimal = field(init=False)  # one unit's cost as a share of the close

    def __post_init__(self) -> None:
        # A market order is valued at the close moved by the collar, plus fees: room for both.
        collar = 1 + buying_power.DEFAULT_COLLAR_BPS / BPS
        self.entry_cost = collar * (1 + self.terms.fee_bps / BPS)

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

    def now(self) -> datetime:
        return self.history[-1].close_time

    def order_size(self) -> Decimal:
        last = self.history[-1].close
        size = self.sizing.quantity(last, self.cash + self.position * last, self.entry_cost)
        if size == 0:
            self.zero_size_signals += 1
        return size

    def check(
        self, side: Side, quantity: Decimal, price: Decimal, mark: Decimal, *, pending: bool
    ) -> tuple[Shortfall | None, Decimal]:
        """The buying-power rule for an order of `quantity` valued at `price`, the position at
        `mark`; with what pending orders reserve, sell and buy (as risk sees it) or without (as
        the venue does when a fill comes). The shortfall, or None and what the order reserves."""
        reserved = selling = buying = ZERO
        if pending and self.pending:
            reserved = sum(
                (
                    self.reserved.get(o.client_order_id, ZERO) * o.remaining / o.quantity
                    for o in self.pending
                ),
                ZERO,
            )
            selling = sum((o.remaining for o in self.pending if o.side == "sell"), ZERO)
            buying = sum((o.remaining for o in self.pending if o.side == "buy"), ZERO)
        return buying_power.check_and_reserve_alone(
            self.terms,
            cash=self.cash,
            position=self.position,
            mark=mark,
            reserved=reserved,
            selling=selling,
            buying=buying,
            side=side,
            quantity=quantity,
            price=price,
        )

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
        self.sequence += 1
        bar = self.history[-1]
        client_order_id = f"bt-{_stamp(bar.open_time)}-{leg}-{self.sequence}"
        last = bar.close
        price = buying_power.order_price(
            side=side, order_type=kind, limit_price=limit_price, stop_price=stop_price, last=last
        )
        assert price is not None  # a last close is always there
        short, reserved = self.check(side, quantity, price, last, pending=True)
        if short is not None:
            self.refused_orders += 1  # denied, as risk would: nothing is placed
            return client_order_id
        self.reserved[client_order_id] = reserved
        self.pending.append(
            SimOrder(client_order_id, side, quantity, kind, limit_price, stop_price, leg)
        )
        self.signals[client_order_id] = bar.close_time
        return client_order_id

    def cancel_order(self, client_order_id: ClientOrderId) -> None:
        self.pending = [o for o in self.pending if o.client_order_id != client_order_id]

    def target_position(self, quantity: Decimal, *, leg: str = "main") -> ClientOrderId | None:
        # The newest target wins: this leg's orders not filled yet are dropped.
        self.pending = [o for o in self.pending if o.leg != leg]
        delta = quantity - self.position
        if delta == 0:
            return None
        return self.submit_order("buy" if delta > 0 else "sell", abs(delta), leg=leg)


def _stamp(at: datetime) -> str:
    """`at` as %Y%m%d%H%M%S (for client order ids), without strftime's cost (a few µs)."""
    if at.year < 1000:  # strftime does not pad such a year to 4 digits on every platform
        return f"{at:%Y%m%d%H%M%S}"
    # 14 digits, each field in its own two (the year in four): a third of the f-string's cost.
    return str(
        ((((at.year * 100 + at.month) * 100 + at.day) * 100 + at.hour) * 100 + at.minute) * 100
        + at.second
    )


class _Window(Sequence[Bar]):
    """bars[start:stop] without copying: ctx.bars for the bars the fast path visits."""

    __slots__ = ("_bars", "_start", "_stop")

    def __init__(self, bars: Sequence[Bar], start: int, stop: int) -> None:
        self._bars, self._start, self._stop = bars, start, stop

    def __len__(self) -> int:
        return self._stop - self._start

    @overload
    def __getitem__(self, item: int) -> Bar: ...

    @overload
    def __getitem__(self, item: slice) -> Sequence[Bar]: ...

    def __getitem__(self, item: int | slice) -> Bar | Sequence[Bar]:
        if isinstance(item, slice):
            return list(self._bars[self._start : self._stop])[item]
        size = self._stop - self._start
        if not -size <= item < size:
            raise IndexError("bar window index out of range")
        return self._bars[self._start + (item if item >= 0 else size + item)]


class Backtester:
    def __init__(
        self,
        strategy: Strategy,  # type: ignore[type-arg]
        *,
        instrument_id: InstrumentId,
        timeframe: str,
        cash: Decimal = Decimal(10_000),
        fill_model: FillModel | None = None,
        sizing: Sizing | None = None,
        window: int = 500,
        precompute: bool = True,
        terms: AccountTerms | None = None,
    ) -> None:
        self.strategy = strategy
        self.fill_model = fill_model or FillModel()
        # The account's fee rate is the fill model's: what it charges is what orders cost.
        given = terms or AccountTerms()
        account = AccountTerms(
            given.mode, given.max_leverage, given.allow_short, self.fill_model.fee_bps
        )
        self.ctx = _SimContext(
            instrument_id, timeframe, sizing or Sizing(), cash, window, terms=account
        )
        self.initial = cash
        self.precompute = precompute

    def run(self, bars: Sequence[Bar]) -> BacktestResult:
        if not bars:
            raise ValueError("no bars: the range is empty")
        # The loop makes many small objects and no reference cycles: the cyclic collector
        # would only rescan the (possibly millions of) bars again and again.
        collecting = gc.isenabled()
        gc.disable()
        try:
            return self._run(bars)
        finally:
            if collecting:
                gc.enable()

    def _run(self, bars: Sequence[Bar]) -> BacktestResult:
        ctx = self.ctx
        trades: list[Trade] = []
        fills: list[Fill] = []
        curve = EquityCurve(bars, ctx.cash)
        active: Sequence[int] | None = None
        with sharing_closes(bars) as closes:
            if self.precompute:
                self.strategy.prepare(bars)
                active = self.strategy.active_bars()
        self.strategy.on_start(ctx)
        if active is None:
            exposed, current = self._every_bar(bars, trades, fills, curve)
        else:
            exposed, current = self._active_bars(bars, active, trades, fills, curve)
        self.strategy.on_stop(ctx)
        if current is not None:
            last = bars[-1]
            value = ctx.position * last.close
            trades.append(
                Trade(
                    current.side,
                    current.quantity,
                    current.entry_time,
                    abs(current.cost) / current.quantity,
                    None,
                    None,
                    value - current.cost - current.fees,
                    current.fees,
                    current.signal_time,
                )
            )
        stats = replace(
            _stats(curve, closes, trades, exposed, self.initial),
            refused_orders=ctx.refused_orders,
            refused_fills=ctx.refused_fills,
            zero_size_signals=ctx.zero_size_signals,
        )
        return BacktestResult(trades, curve, fills, stats)

    def _fill(
        self, bar: Bar, current: _Open | None, trades: list[Trade], fills: list[Fill]
    ) -> _Open | None:
        """Try the open orders against `bar`; the open trade after their fills."""
        ctx = self.ctx
        still: list[SimOrder] = []
        for order in ctx.pending:
            fill = self.fill_model.fill(order, bar)
            if fill is not None:
                short, _ = ctx.check(
                    fill.side, fill.quantity, fill.price, fill.price, pending=False
                )
                if short is not None:
                    ctx.refused_fills += 1  # cancelled, as the paper venue does
                    ctx.reserved.pop(order.client_order_id, None)
                    ctx.signals.pop(order.client_order_id, None)
                    continue
                fills.append(fill)
                current = self._apply(fill, bar.open_time, current, trades)
            if order.remaining > 0:  # resting, or capped by the bar's volume
                still.append(order)
            else:
                ctx.reserved.pop(order.client_order_id, None)
                ctx.signals.pop(order.client_order_id, None)
        ctx.pending = still
        return current

    def _every_bar(
        self, bars: Sequence[Bar], trades: list[Trade], fills: list[Fill], curve: EquityCurve
    ) -> tuple[int, _Open | None]:
        """The plain loop: every bar fills orders and reaches on_bar."""
        ctx = self.ctx
        history: deque[Bar] = deque(maxlen=max(ctx.window, self.strategy.warmup(), 1))
        ctx.history = history
        exposed = 0
        current: _Open | None = None
        on_bar = self.strategy.on_bar
        for index, bar in enumerate(bars):
            if ctx.pending:
                current = self._fill(bar, current, trades, fills)
                curve.mark(index, ctx.cash, ctx.position)
            if ctx.position != 0:
                exposed += 1
            history.append(bar)
            ctx.index = index
            on_bar(ctx, bar)
        return exposed, current

    def _active_bars(
        self,
        bars: Sequence[Bar],
        active: Sequence[int],
        trades: list[Trade],
        fills: list[Fill],
        curve: EquityCurve,
    ) -> tuple[int, _Open | None]:
        """The same backtest when the strategy named the only bars its on_bar acts on: between
        them, while no order is open, cash and position cannot change, so a stretch of bars
        costs nothing but its exposure count (the equity curve is kept by stretches)."""
        ctx = self.ctx
        window = max(ctx.window, self.strategy.warmup(), 1)
        exposed = 0
        current: _Open | None = None
        on_bar = self.strategy.on_bar
        count = len(bars)
        stops = iter([*active, count])
        next_active = next(stops)
        index = 0
        while index < count:
            if not ctx.pending and index < next_active:
                if ctx.position != 0:
                    exposed += next_active - index
                index = next_active
                continue
            bar = bars[index]
            if ctx.pending:
                current = self._fill(bar, current, trades, fills)
                curve.mark(index, ctx.cash, ctx.position)
            if ctx.position != 0:
                exposed += 1
            if index == next_active:
                ctx.history = _Window(bars, max(index + 1 - window, 0), index + 1)
                ctx.index = index
                on_bar(ctx, bar)
                while next_active <= index:  # the next one (repeated indices skipped)
                    next_active = next(stops, count)
            index += 1
        if count:
            ctx.history = _Window(bars, max(count - window, 0), count)
        return exposed, current

    def _apply(
        self, fill: Fill, at: datetime, current: _Open | None, trades: list[Trade]
    ) -> _Open | None:
        ctx = self.ctx
        signed = fill.quantity if fill.side == "buy" else -fill.quantity
        ctx.cash -= signed * fill.price + fill.fee
        signal = ctx.signals.get(fill.client_order_id)
        remaining_fee = fill.fee
        quantity = signed
        while quantity != 0:
            if current is None:
                current = _Open(
                    "long" if quantity > 0 else "short",
                    abs(quantity),
                    at,
                    quantity * fill.price,
                    remaining_fee,
                    signal,
                )
                ctx.position += quantity
                return current
            same = (quantity > 0) == (ctx.position > 0)
            if same:
                current.quantity += abs(quantity)
                current.cost += quantity * fill.price
                current.fees += remaining_fee
                ctx.position += quantity
                return current
            closing = min(abs(quantity), abs(ctx.position))
            share = closing / current.quantity
            cost = current.cost * share
            fee_in = current.fees * share
            fee_out = remaining_fee * closing / abs(quantity)
            proceeds = (closing if ctx.position > 0 else -closing) * fill.price
            trades.append(
                Trade(
                    current.side,
                    closing,
                    current.entry_time,
                    abs(cost) / closing,
                    at,
                    fill.price,
                    proceeds - cost - fee_in - fee_out,
                    fee_in + fee_out,
                    current.signal_time,
                    signal,
                )
            )
            current.quantity -= closing
            current.cost -= cost
            current.fees -= fee_in
            remaining_fee -= fee_out
            step = closing if quantity > 0 else -closing
            ctx.position += step
            quantity -= step
            if current.quantity == 0:
                current = None
        return current


def _stats(
    curve: EquityCurve, closes: np.ndarray, trades: list[Trade], exposed: int, initial: Decimal
) -> Stats:
    # numpy over the per-bar series (a backtest may have millions of bars).
    count = len(curve)
    values = curve.floats(closes)
    first_time, final_time, final = curve[0][0], curve[-1][0], curve[-1][1]
    total = float(final / initial) - 1
    elapsed = (final_time - first_time).total_seconds() or 1.0
    years = elapsed / (365.25 * 86400)
    annual = (1 + total) ** (1 / years) - 1 if total > -1 and years > 0 else -1.0
    before, after = values[:-1], values[1:]
    usable = before > 0
    returns = after[usable] / before[usable] - 1
    per_year = (count - 1) / years if years > 0 else 0.0
    mean = float(returns.mean()) if len(returns) else 0.0
    std = float(returns.std(ddof=1)) if len(returns) > 1 else 0.0
    down = float(np.sqrt(np.mean(np.minimum(returns, 0.0) ** 2))) if len(returns) else 0.0
    sharpe = mean / std * math.sqrt(per_year) if std > 0 else 0.0
    sortino = mean / down * math.sqrt(per_year) if down > 0 else 0.0
    # Drawdown: how far below the running peak; it lasts from the last bar at the peak. Times
    # only grow, so the longest one ends on the last bar before a new peak (or the last bar).
    peak = np.maximum.accumulate(values)
    worst = float(np.max(1 - values / peak)) if peak[0] > 0 else 0.0
    at_peak = values >= np.concatenate(([values[0]], peak[:-1]))
    last_peak = np.maximum.accumulate(np.where(at_peak, np.arange(count), 0))
    ends = np.flatnonzero(~at_peak & np.append(at_peak[1:], True))
    longest = max(
        (curve.time(int(i)) - curve.time(int(last_peak[i])) for i in ends.tolist()),
        default=timedelta(0),
    )
    closed = [t for t in trades if t.exit_time is not None]
    wins = [t.pnl for t in closed if t.pnl > 0]
    losses = [-t.pnl for t in closed if t.pnl < 0]
    return Stats(
        total_return=total,
        annual_return=annual,
        sharpe=sharpe,
        sortino=sortino,
        max_drawdown=worst,
        max_drawdown_duration=longest,
        win_rate=len(wins) / len(closed) if closed else 0.0,
        profit_factor=float(sum(wins) / sum(losses)) if losses else (math.inf if wins else 0.0),
        exposure=exposed / count,
        trades=len(trades),
        final_equity=final,
        buy_and_hold_return=float(closes[-1] / closes[0]) - 1 if closes[0] > 0 else 0.0,
    )
