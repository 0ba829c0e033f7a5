"""A backtest's result as plain data and per-bar series, the one shape the strategy service stores
and the command line writes: statistics (floats at full precision), trades (with the times of
their signals and whether they are still open), and for every bar the equity, its drawdown and a
buy-and-hold benchmark. Money (equity, PnL, fees) is at the places of the instrument's quote
currency (trademesh_trading.currencies, docs/decisions/0117-money-at-its-currency-places.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import numpy as np
from trademesh_events.marketdata import Bar
from trademesh_events.money import plain

from trademesh_trading.backtest import BacktestResult, Stats, Trade
from trademesh_trading.currencies import money_in
from trademesh_trading.strategy import float_closes


def json_number(value: Any) -> Any:
    """A statistic as strict JSON takes it: a non-finite float (a profit factor with no losing
    trade is infinite) as the string Python's float() and pydantic read back ("Infinity",
    "-Infinity", "NaN"), anything else as it is."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


def stats_data(stats: Stats, currency: str | None) -> dict[str, Any]:
    """The statistics as plain data: ratios as floats at full precision (non-finite ones stay
    floats: see json_number), the drawdown duration in seconds, the final equity a decimal
    string at the places of `currency`."""
    return {
        "total_return": stats.total_return,
        "annual_return": stats.annual_return,
        "sharpe": stats.sharpe,
        "sortino": stats.sortino,
        "max_drawdown": stats.max_drawdown,
        "max_drawdown_duration": stats.max_drawdown_duration.total_seconds(),
        "win_rate": stats.win_rate,
        "profit_factor": stats.profit_factor,
        "exposure": stats.exposure,
        "trades": stats.trades,
        "final_equity": money_in(stats.final_equity, currency),
        "refused_orders": stats.refused_orders,
        "refused_fills": stats.refused_fills,
        "buy_and_hold_return": stats.buy_and_hold_return,
        "zero_size_signals": stats.zero_size_signals,
    }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def trade_data(trade: Trade, currency: str | None) -> dict[str, Any]:
    """A trade as plain data: ISO times, decimal strings, PnL and fees at the places of
    `currency`. `open` is true for a trade still open at the end: its exit is empty and its PnL
    unrealised (marked at the last close)."""
    return {
        "side": trade.side,
        "quantity": plain(trade.quantity),
        "entry_signal_time": _iso(trade.entry_signal_time),
        "entry_time": trade.entry_time.isoformat(),
        "entry_price": plain(trade.entry_price),
        "exit_signal_time": _iso(trade.exit_signal_time),
        "exit_time": _iso(trade.exit_time),
        "exit_price": None if trade.exit_price is None else plain(trade.exit_price),
        "pnl": money_in(trade.pnl, currency),
        "fees": money_in(trade.fees, currency),
        "open": trade.open,
    }


@dataclass(frozen=True)
class EquitySeries:
    """Per bar (at its close): the backtest's equity, how far it is below its running peak, and
    what the starting cash would be worth had it bought at the first close and held."""

    times: list[datetime]
    equity: list[Decimal]  # exact, as the backtester keeps it
    drawdown: np.ndarray  # 1 - equity / running peak: 0 at a peak, 0.25 a quarter below it
    buy_and_hold: list[Decimal]  # cash * close / first close

    def rows(self, currency: str | None) -> list[tuple[str, str, float, str]]:
        """(close time ISO, equity, drawdown, buy and hold), money at the places of `currency`."""
        return [
            (moment.isoformat(), money_in(value, currency), float(down), money_in(held, currency))
            for moment, value, down, held in zip(
                self.times, self.equity, self.drawdown.tolist(), self.buy_and_hold, strict=True
            )
        ]


def equity_series(result: BacktestResult, bars: Sequence[Bar], cash: Decimal) -> EquitySeries:
    """The series of a backtest of `bars` that started with `cash`. The drawdown is computed as
    the statistics compute it, so its largest value is `stats.max_drawdown`."""
    closes = float_closes(bars)
    values = result.equity.floats(closes)
    peak = np.maximum.accumulate(values)
    with np.errstate(divide="ignore", invalid="ignore"):
        drawdown = np.where(peak > 0, 1 - values / peak, 0.0)
    first = bars[0].close
    held = [cash * bar.close / first for bar in bars] if first > 0 else [cash] * len(bars)
    points = list(result.equity)
    return EquitySeries(
        times=[moment for moment, _ in points],
        equity=[value for _, value in points],
        drawdown=drawdown,
        buy_and_hold=held,
    )
