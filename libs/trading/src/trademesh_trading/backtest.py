"""The backtester: a strategy over a list of bars, in process, with the shared fill model.

Each bar t: orders placed before it are tried against it (fills, fees, position and cash
change), then the bar joins the history and the strategy's on_bar runs, possibly placing
orders for bar t+1; equity is marked at the bar's close. Orders still open at the end are
dropped; a position still open is valued at the last close (and its trade left open).
"""

from __future__ import annotations

import gc
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from trademesh_events.marketdata import Bar

from trademesh_trading.fills import Fill, FillModel, SimOrder
from trademesh_trading.strategy import OrderKind, Side, Strategy

ZERO = Decimal(0)


class Sizing(BaseModel):
    """How much one entry buys: a fixed quantity, a fixed notional, or a share of equity;
    rounded down to `step` (1 = whole units)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["quantity", "notional", "equity_pct"] = "equity_pct"
    value: Decimal = Field(Decimal(100), gt=0)
    step: Decimal = Field(Decimal(1), gt=0)

    def quantity(self, price: Decimal, equity: Decimal) -> Decimal:
        if self.kind == "quantity":
            raw = self.value
        elif self.kind == "notional":
            raw = self.value / price
        else:
            raw = equity * self.value / 100 / price
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
    pnl: Decimal  # after fees; for an open trade, marked at the last close
    fees: Decimal


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


@dataclass
class BacktestResult:
    trades: list[Trade]
    equity: list[tuple[datetime, Decimal]]
    fills: list[Fill]
    stats: Stats


@dataclass
class _Open:
    side: Literal["long", "short"]
    quantity: Decimal
    entry_time: datetime
    cost: Decimal  # signed cash spent opening, for the average entry price
    fees: Decimal


@dataclass
class _SimContext:
    instrument_id: str
    timeframe: str
    sizing: Sizing
    cash: Decimal
    window: int
    position: Decimal = ZERO
    history: deque[Bar] = field(default_factory=deque)
    pending: list[SimOrder] = field(default_factory=list)
    sequence: int = 0

    @property
    def bars(self) -> Sequence[Bar]:
        return self.history

    @property
    def equity(self) -> Decimal:
        last = self.history[-1].close if self.history else ZERO
        return self.cash + self.position * last

    def now(self) -> datetime:
        return self.history[-1].close_time

    def order_size(self) -> Decimal:
        return self.sizing.quantity(self.history[-1].close, self.equity)

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
        if quantity <= 0:
            raise ValueError("order quantity must be positive")
        self.sequence += 1
        client_order_id = f"bt-{self.history[-1].open_time:%Y%m%d%H%M%S}-{leg}-{self.sequence}"
        self.pending.append(
            SimOrder(client_order_id, side, quantity, kind, limit_price, stop_price, leg)
        )
        return client_order_id

    def cancel_order(self, client_order_id: str) -> None:
        self.pending = [o for o in self.pending if o.client_order_id != client_order_id]

    def target_position(self, quantity: Decimal, *, leg: str = "main") -> str | None:
        # The newest target wins: this leg's orders not filled yet are dropped.
        self.pending = [o for o in self.pending if o.leg != leg]
        delta = quantity - self.position
        if delta == 0:
            return None
        return self.submit_order("buy" if delta > 0 else "sell", abs(delta), leg=leg)


class Backtester:
    def __init__(
        self,
        strategy: Strategy,  # type: ignore[type-arg]
        *,
        instrument_id: str,
        timeframe: str,
        cash: Decimal = Decimal(10_000),
        fill_model: FillModel | None = None,
        sizing: Sizing | None = None,
        window: int = 500,
        precompute: bool = True,
    ) -> None:
        self.strategy = strategy
        self.fill_model = fill_model or FillModel()
        self.ctx = _SimContext(instrument_id, timeframe, sizing or Sizing(), cash, window)
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
        ctx.history = deque(maxlen=max(ctx.window, self.strategy.warmup(), 1))
        trades: list[Trade] = []
        fills: list[Fill] = []
        equity: list[tuple[datetime, Decimal]] = []
        exposed = 0
        current: _Open | None = None
        if self.precompute:
            self.strategy.prepare(bars)
        self.strategy.on_start(ctx)
        for bar in bars:
            still: list[SimOrder] = []
            for order in ctx.pending:
                fill = self.fill_model.fill(order, bar)
                if fill is not None:
                    fills.append(fill)
                    current = self._apply(fill, bar.open_time, current, trades)
                if order.remaining > 0:  # resting, or capped by the bar's volume
                    still.append(order)
            ctx.pending = still
            if ctx.position != 0:
                exposed += 1
            ctx.history.append(bar)
            self.strategy.on_bar(ctx, bar)
            equity.append((bar.close_time, ctx.equity))
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
                )
            )
        return BacktestResult(trades, equity, fills, _stats(equity, trades, exposed, self.initial))

    def _apply(
        self, fill: Fill, at: datetime, current: _Open | None, trades: list[Trade]
    ) -> _Open | None:
        ctx = self.ctx
        signed = fill.quantity if fill.side == "buy" else -fill.quantity
        ctx.cash -= signed * fill.price + fill.fee
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
    equity: list[tuple[datetime, Decimal]], trades: list[Trade], exposed: int, initial: Decimal
) -> Stats:
    values = [float(v) for _, v in equity]
    final = equity[-1][1]
    total = float(final / initial) - 1
    elapsed = (equity[-1][0] - equity[0][0]).total_seconds() or 1.0
    years = elapsed / (365.25 * 86400)
    annual = (1 + total) ** (1 / years) - 1 if total > -1 and years > 0 else -1.0
    returns = [values[i] / values[i - 1] - 1 for i in range(1, len(values)) if values[i - 1] > 0]
    per_year = (len(values) - 1) / years if years > 0 else 0.0
    mean = sum(returns) / len(returns) if returns else 0.0
    std = (
        math.sqrt(sum((r - mean) ** 2 for r in returns) / (len(returns) - 1))
        if len(returns) > 1
        else 0.0
    )
    downside = [min(r, 0.0) for r in returns]
    down = math.sqrt(sum(d * d for d in downside) / len(downside)) if downside else 0.0
    sharpe = mean / std * math.sqrt(per_year) if std > 0 else 0.0
    sortino = mean / down * math.sqrt(per_year) if down > 0 else 0.0
    peak, peak_time, worst, longest = values[0], equity[0][0], 0.0, timedelta(0)
    for (moment, _), value in zip(equity, values, strict=True):
        if value >= peak:
            peak, peak_time = value, moment
        else:
            worst = max(worst, 1 - value / peak)
            longest = max(longest, moment - peak_time)
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
        exposure=exposed / len(equity),
        trades=len(trades),
        final_equity=final,
    )
