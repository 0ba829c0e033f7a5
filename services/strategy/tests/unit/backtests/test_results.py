"""The worker process's function against the library's Backtester, its result as stored, and a
strategy's error as recorded."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from trademesh_events.marketdata import Bar
from trademesh_events.money import DECIMAL_PATTERN, plain, to_places
from trademesh_trading.backtest import Backtester
from trademesh_trading.builtin import SmaCross, SmaCrossConfig
from trademesh_trading.fills import FillModel
from trademesh_trading.strategy import Context, Strategy, StrategyConfig

from trademesh_strategy.backtests.jobs import describe_error
from trademesh_strategy.backtests.requests import BacktestRequest
from trademesh_strategy.backtests.results import encode_result, run_backtest

pytestmark = pytest.mark.unit

DailyBars = Callable[..., list[Bar]]


def library(request: dict[str, Any], data: list[Bar]) -> Any:
    spec = BacktestRequest.model_validate(request)
    backtester = Backtester(
        SmaCross(SmaCrossConfig.model_validate(spec.params)),
        instrument_id=spec.instrument_id,
        timeframe=spec.timeframe,
        cash=spec.cash,
        fill_model=FillModel(slippage_bps=spec.slippage_bps, fee_bps=spec.fee_bps),
        sizing=spec.sizing,
    )
    return backtester.run(data)


@pytest.mark.parametrize(
    "change",
    [
        {},
        {
            "params": {"fast": 4, "slow": 10, "short": True},
            "cash": "2500.50",
            "fee_bps": "7.5",
            "slippage_bps": "3",
            "sizing": {"kind": "quantity", "value": "7", "step": "1"},
        },
    ],
)
def test_the_process_function_gives_what_the_backtester_gives(
    backtest: dict[str, Any], daily_bars: DailyBars, change: dict[str, Any]
) -> None:
    request = json.loads(BacktestRequest.model_validate(backtest | change).model_dump_json())
    data = daily_bars()
    expected = library(request, data)
    assert expected.trades, "the data is meant to make the strategy trade"

    got = run_backtest(request, data)
    assert got == run_backtest(request, data, SmaCross)  # the service's class, or the registry's
    json.dumps(got)  # plain data, picklable and storable
    assert got["bars"] == len(data)
    # the range it covered: the open times of the first and the last bar
    assert got["first_bar_at"] == data[0].open_time.isoformat()
    assert got["last_bar_at"] == data[-1].open_time.isoformat()
    assert got["stats"]["buy_and_hold_return"] == expected.stats.buy_and_hold_return
    assert got["stats"]["zero_size_signals"] == expected.stats.zero_size_signals
    assert [(t["entry_signal_time"], t["exit_signal_time"], t["open"]) for t in got["trades"]] == [
        (
            t.entry_signal_time.isoformat() if t.entry_signal_time else None,
            t.exit_signal_time.isoformat() if t.exit_signal_time else None,
            t.open,
        )
        for t in expected.trades
    ]
    # money is stored as the API returns it: rounded to the places of the instrument's quote
    # currency (USD: 2), written plain
    assert got["stats"]["final_equity"] == plain(to_places(expected.stats.final_equity, 2))
    assert Decimal(got["stats"]["final_equity"]) == to_places(expected.equity[-1][1], 2)
    assert got["stats"]["trades"] == len(expected.trades)
    for name in ("total_return", "sharpe", "sortino", "max_drawdown", "win_rate", "exposure"):
        assert got["stats"][name] == getattr(expected.stats, name), name
    assert got["stats"]["max_drawdown_duration"] == (
        expected.stats.max_drawdown_duration.total_seconds()
    )
    assert [
        (
            t["side"],
            Decimal(t["quantity"]),
            datetime.fromisoformat(t["entry_time"]),
            Decimal(t["entry_price"]),
            t["exit_time"] and datetime.fromisoformat(t["exit_time"]),
            t["exit_price"] and Decimal(t["exit_price"]),
            Decimal(t["pnl"]),
            Decimal(t["fees"]),
        )
        for t in got["trades"]
    ] == [
        (
            t.side,
            t.quantity,
            t.entry_time,
            t.entry_price,
            t.exit_time,
            t.exit_price,
            to_places(t.pnl, 2),
            to_places(t.fees, 2),
        )
        for t in expected.trades
    ]
    assert [(datetime.fromisoformat(t), Decimal(v)) for t, v in got["equity"]] == [
        (t, to_places(v, 2)) for t, v in expected.equity
    ]
    assert all(re.fullmatch(DECIMAL_PATTERN, v) for _, v in got["equity"])


def test_the_stored_json_keeps_non_finite_statistics_as_strings(
    backtest: dict[str, Any], daily_bars: DailyBars
) -> None:
    request = json.loads(BacktestRequest.model_validate(backtest).model_dump_json())
    bars = daily_bars()
    data = run_backtest(request, bars)
    data["stats"] |= {"profit_factor": math.inf, "sortino": -math.inf, "sharpe": math.nan}
    encoded = encode_result(data)
    stats = json.loads(encoded.stats)  # strict JSON: jsonb refuses NaN and Infinity
    assert (stats["profit_factor"], stats["sortino"], stats["sharpe"]) == (
        "Infinity",
        "-Infinity",
        "NaN",
    )
    assert stats["total_return"] == data["stats"]["total_return"]
    assert json.loads(encoded.trades) == data["trades"]
    assert json.loads(encoded.equity) == data["equity"]
    assert encoded.bars == len(bars)
    assert (encoded.first_bar_at, encoded.last_bar_at) == (bars[0].open_time, bars[-1].open_time)


class _BoomConfig(StrategyConfig):
    after: int = 3


class _Boom(Strategy[_BoomConfig]):
    name = "boom"
    config_class = _BoomConfig

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        if len(ctx.bars) > self.config.after:
            raise ZeroDivisionError("the strategy divided by zero")


def test_a_strategy_error_propagates_and_reads_type_colon_message(
    backtest: dict[str, Any], daily_bars: DailyBars
) -> None:
    request = json.loads(
        BacktestRequest.model_validate(
            backtest | {"strategy": "boom", "params": {}}
        ).model_dump_json()
    )
    with pytest.raises(ZeroDivisionError) as raised:
        run_backtest(request, daily_bars(10), _Boom)
    assert describe_error(raised.value) == "ZeroDivisionError: the strategy divided by zero"
    assert describe_error(KeyError()) == "KeyError"
