"""A backtest's outputs: signal times and open trades, entries sized to nothing (counted) or to
fractions (a unit step), the buy-and-hold benchmark, and the plain data and per-bar series the
service stores and the command line writes."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from decimal import Decimal as D
from typing import Any

import pytest
from trademesh_events.marketdata import Bar
from trademesh_trading.backtest import Backtester, BacktestResult, Sizing
from trademesh_trading.builtin import SmaCross, SmaCrossConfig
from trademesh_trading.currencies import money_in
from trademesh_trading.results import equity_series, json_number, stats_data, trade_data
from trademesh_trading.strategy import Context, Strategy, StrategyConfig

pytestmark = pytest.mark.unit

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def daily(closes: list[str], instrument: str = "test:BTC/USD") -> list[Bar]:
    """Bars opening at the previous close, a point either side of it."""
    made: list[Bar] = []
    previous = D(closes[0])
    for n, text in enumerate(closes):
        close = D(text)
        made.append(
            Bar(
                instrument_id=instrument,
                timeframe="1d",
                open_time=T0 + timedelta(days=n),
                close_time=T0 + timedelta(days=n + 1),
                open=previous,
                high=max(previous, close) + 1,
                low=min(previous, close) - 1,
                close=close,
                volume=D(1000),
            )
        )
        previous = close
    return made


class _InAndOut(Strategy[StrategyConfig]):
    """Enters the order size at the close of bar 1, goes flat at bar 3, enters again at bar 5."""

    name = "in_and_out"
    config_class = StrategyConfig

    def on_bar(self, ctx: Context, bar: Any) -> None:
        index = len(ctx.bars) - 1
        if index in (1, 5):
            ctx.target_position(ctx.order_size())
        elif index == 3:
            ctx.target_position(D(0))


def backtest(bars: list[Bar], sizing: Sizing, cash: str = "1000") -> BacktestResult:
    return Backtester(
        _InAndOut(StrategyConfig()),
        instrument_id="test:BTC/USD",
        timeframe="1d",
        cash=D(cash),
        sizing=sizing,
    ).run(bars)


BTC = ["30000", "30100", "30500", "31000", "30800", "30900", "31500", "32000"]


def test_trades_keep_their_signal_times_and_say_when_they_are_still_open() -> None:
    bars = daily(BTC)
    result = backtest(bars, Sizing(kind="quantity", value=D("0.01"), step=D("0.001")))
    closed, still = result.trades
    # The signal comes at a bar's close, the fill at the next bar's open.
    assert closed.entry_signal_time == bars[1].close_time == bars[2].open_time
    assert closed.entry_time == bars[2].open_time
    assert closed.exit_signal_time == bars[3].close_time
    assert closed.exit_time == bars[4].open_time
    assert not closed.open
    assert still.open and still.exit_time is None and still.exit_signal_time is None
    assert still.entry_signal_time == bars[5].close_time
    assert still.quantity == D("0.01")


def test_whole_units_size_a_bitcoin_entry_to_zero_and_it_is_counted() -> None:
    result = backtest(daily(BTC), Sizing())  # all the equity, whole units: 1,000 buys no BTC
    assert result.trades == [] and result.fills == []
    assert result.stats.zero_size_signals == 2  # the two entries; going flat needs no size
    assert result.stats.final_equity == D(1000)


def test_a_fractional_step_buys_what_the_cash_affords() -> None:
    result = backtest(daily(BTC), Sizing(step=D("0.0001")))
    assert result.stats.zero_size_signals == 0
    first = result.trades[0]
    # 1,000 at the close of bar 1 (30,100), room left for the 1 % market-order collar
    assert first.quantity == D("0.0328")
    assert first.quantity % D("0.0001") == 0
    assert result.stats.final_equity != D(1000)


def test_buy_and_hold_is_the_last_close_over_the_first() -> None:
    result = backtest(daily(BTC), Sizing(step=D("0.0001")))
    assert result.stats.buy_and_hold_return == 32000 / 30000 - 1


def test_the_series_hold_equity_drawdown_and_buy_and_hold_per_bar() -> None:
    bars = daily(["100", "104", "110", "95", "90", "99", "120", "118", "121", "80", "85", "90"])
    result = Backtester(
        SmaCross(SmaCrossConfig(fast=2, slow=3)),
        instrument_id="test:X/USD",
        timeframe="1d",
        cash=D(10_000),
    ).run(bars)
    assert result.trades, "the closes are meant to make the strategy trade"
    series = equity_series(result, bars, D(10_000))
    assert series.times == [b.close_time for b in bars]
    assert series.equity == [v for _, v in result.equity]
    assert max(series.drawdown) == result.stats.max_drawdown > 0
    assert min(series.drawdown) == 0.0
    assert series.buy_and_hold[0] == D(10_000)
    assert series.buy_and_hold[-1] == D(10_000) * D(90) / D(100)
    rows = series.rows("USD")
    assert rows[0] == (bars[0].close_time.isoformat(), "10000", 0.0, "10000")  # plain decimals
    assert rows[-1][3] == "9000"


def test_plain_data_has_money_at_the_currency_places_and_every_statistic() -> None:
    result = backtest(daily(BTC), Sizing(step=D("0.0001")))
    stats = stats_data(result.stats, "USD")
    assert stats["final_equity"] == money_in(result.stats.final_equity, "USD")
    assert Decimal(stats["final_equity"]) == round(result.stats.final_equity, 2)
    assert stats["buy_and_hold_return"] == result.stats.buy_and_hold_return
    assert stats["zero_size_signals"] == 0
    assert stats["max_drawdown_duration"] == result.stats.max_drawdown_duration.total_seconds()
    closed, still = (trade_data(t, "USD") for t in result.trades)
    assert (closed["open"], still["open"]) == (False, True)
    signal = result.trades[0].entry_signal_time
    assert signal is not None and closed["entry_signal_time"] == signal.isoformat()
    assert still["exit_time"] is None and still["exit_signal_time"] is None
    # 1,000 + 0.0328 x (31,000 - 30,100) = 1,029.52 at the close of bar 5 (30,900), 1 % collar
    assert still["quantity"] == "0.0329"
    json.dumps([closed, still])


@pytest.mark.parametrize(
    ("value", "written"),
    [(math.inf, "Infinity"), (-math.inf, "-Infinity"), (0.1 + 0.2, 0.1 + 0.2), (3, 3)],
)
def test_non_finite_statistics_become_strings_and_the_rest_stay_exact(
    value: float, written: Any
) -> None:
    assert json_number(value) == written
    assert json_number(math.nan) == "NaN"
