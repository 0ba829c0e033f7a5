"""The worker process's function: one backtest run to plain data, and that data as stored."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from trademesh_events.marketdata import Bar
from trademesh_trading.backtest import Backtester, BacktestResult
from trademesh_trading.buying_power import AccountTerms
from trademesh_trading.currencies import money_in, quote_currency
from trademesh_trading.fills import FillModel
from trademesh_trading.registry import StrategyRegistry
from trademesh_trading.results import json_number, stats_data, trade_data
from trademesh_trading.strategy import Strategy

from trademesh_strategy.backtests.requests import BacktestRequest


def run_backtest(
    request: Mapping[str, Any],
    bars: Sequence[Bar],
    strategy: type[Strategy[Any]] | None = None,
) -> dict[str, Any]:
    """Run one backtest and return its result as plain data: the worker pool's job.

    Pure (no I/O, no clock) and picklable in and out, so that it runs in a spawned process.
    `request` is a BacktestRequest as JSON data; the strategy is built through a
    StrategyRegistry: of `strategy` (the class the service's registry resolved, so a strategy
    known to the service is the one that runs) or, without it, of the installed strategies.
    A strategy's exception propagates (the worker records it as the backtest's error)."""
    spec = BacktestRequest.model_validate(request)
    registry = StrategyRegistry(load_entry_points=strategy is None)
    if strategy is not None:
        registry.register(strategy)
    instance = registry.create(spec.strategy, spec.params)
    backtester = Backtester(
        instance,
        instrument_id=spec.instrument_id,
        timeframe=spec.timeframe,
        cash=spec.cash,
        fill_model=FillModel(slippage_bps=spec.slippage_bps, fee_bps=spec.fee_bps),
        sizing=spec.sizing,
        terms=AccountTerms(spec.margin_mode, spec.max_leverage, spec.allow_short),
    )
    return result_data(backtester.run(bars), bars, quote_currency(spec.instrument_id))


def result_data(
    result: BacktestResult, bars: Sequence[Bar], currency: str | None
) -> dict[str, Any]:
    """A BacktestResult of `bars` as plain data (trademesh_trading.results): statistics as floats
    (the duration in seconds, the final equity a decimal string), trades and the equity curve
    with decimal strings and ISO times, and the bars it covered (their number, the open times of
    the first and the last). Money (equity, PnL, fees) is at the places of `currency`, the
    instrument's quote currency (trademesh_trading.currencies: USD 2, a crypto asset 8)."""
    return {
        "stats": stats_data(result.stats, currency),
        "trades": [trade_data(trade, currency) for trade in result.trades],
        "equity": [
            [moment.isoformat(), money_in(value, currency)] for moment, value in result.equity
        ],
        "bars": len(bars),
        "first_bar_at": bars[0].open_time.isoformat(),
        "last_bar_at": bars[-1].open_time.isoformat(),
    }


@dataclass(frozen=True)
class EncodedResult:
    """A result as the JSON texts stored: made in the worker process, so that the service's
    event loop neither serialises nor unpickles an equity curve of millions of points."""

    stats: str
    trades: str
    equity: str
    bars: int
    first_bar_at: datetime
    last_bar_at: datetime


def encode_result(data: Mapping[str, Any]) -> EncodedResult:
    """`run_backtest`'s plain data as the JSON stored: jsonb has no NaN or Infinity, so
    non-finite statistics are the strings float() and pydantic read back (json_number)."""
    stats = {name: json_number(value) for name, value in data["stats"].items()}
    return EncodedResult(
        stats=json.dumps(stats, allow_nan=False),
        trades=json.dumps(data["trades"], allow_nan=False),
        equity=json.dumps(data["equity"], allow_nan=False),
        bars=int(data["bars"]),
        first_bar_at=datetime.fromisoformat(data["first_bar_at"]),
        last_bar_at=datetime.fromisoformat(data["last_bar_at"]),
    )


def run_backtest_encoded(
    request: Mapping[str, Any],
    bars: Sequence[Bar],
    strategy: type[Strategy[Any]] | None = None,
) -> EncodedResult:
    """The worker pool's job: `run_backtest`, its result encoded in the worker process."""
    return encode_result(run_backtest(request, bars, strategy))
