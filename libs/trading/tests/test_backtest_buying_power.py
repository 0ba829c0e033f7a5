"""The backtester under the buying-power rule: orders refused when placed and fills refused when
they come, counted in its statistics, and equity_pct sizing that leaves room for fees."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import pytest
from trademesh_events.marketdata import Bar
from trademesh_trading.backtest import Backtester, Sizing
from trademesh_trading.fills import FillModel
from trademesh_trading.strategy import Context, Strategy, StrategyConfig

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 5, tzinfo=UTC)
TEN_BPS = FillModel(slippage_bps=D(10), fee_bps=D(10))


def ohlc(day: int, o: str, h: str, lo: str, c: str) -> Bar:
    opens = T0 + timedelta(days=day)
    return Bar(
        instrument_id="test:X/USD",
        timeframe="1d",
        open_time=opens,
        close_time=opens + timedelta(days=1),
        open=D(o),
        high=D(h),
        low=D(lo),
        close=D(c),
        volume=D(1_000_000),
    )


class BuyOnBar1(Strategy[StrategyConfig]):
    """Targets the order size at the close of bar 1 and holds."""

    name = "buy-on-bar-1"
    config_class = StrategyConfig

    def on_bar(self, ctx: Context, bar: Any) -> None:
        if ctx.bar_index == 1:
            ctx.target_position(ctx.order_size())


def run(bars: list[Bar], sizing: Sizing, cash: str = "1000") -> Any:
    return Backtester(
        BuyOnBar1(StrategyConfig()),
        instrument_id="test:X/USD",
        timeframe="1d",
        cash=D(cash),
        fill_model=TEN_BPS,
        sizing=sizing,
    ).run(bars)


def test_an_order_over_the_cash_is_refused_when_placed_and_counted() -> None:
    bars = [ohlc(0, "100", "101", "99", "100"), ohlc(1, "100", "101", "99", "100")]
    bars += [ohlc(2, "100", "101", "99", "100")]
    # 10 at 100 + 1 % collar = 1010 + fee, over 1000.
    result = run(bars, Sizing(kind="quantity", value=D(10)))
    assert (result.stats.refused_orders, result.stats.refused_fills) == (1, 0)
    assert result.fills == [] and result.stats.final_equity == D(1000)


def test_a_fill_over_the_cash_after_a_gap_is_refused_and_counted() -> None:
    # 9 at 101 + fee fits when placed (918.09...); bar 2 gaps to 120: 9 x 120.12 does not.
    bars = [ohlc(0, "100", "101", "99", "100"), ohlc(1, "100", "101", "99", "100")]
    bars += [ohlc(2, "120", "121", "119", "120")]
    result = run(bars, Sizing(kind="quantity", value=D(9)))
    assert (result.stats.refused_orders, result.stats.refused_fills) == (0, 1)
    assert result.fills == []


def test_all_of_equity_leaves_room_for_the_collar_and_fees_and_fills() -> None:
    """100 % of 1000 at 100: 1000 / (100 x 1.01 x 1.001) = 9.89, so 9 whole units, which fit
    when placed and when they fill at 100.1 (900.9 + 0.9009)."""
    bars = [ohlc(0, "100", "101", "99", "100"), ohlc(1, "100", "101", "99", "100")]
    bars += [ohlc(2, "100", "101", "99", "100")]
    result = run(bars, Sizing(kind="equity_pct", value=D(100)))
    assert [f.quantity for f in result.fills] == [D(9)]
    assert (result.stats.refused_orders, result.stats.refused_fills) == (0, 0)
    assert Sizing(kind="equity_pct", value=D(100)).quantity(D(100), D(1000), D("1.01101")) == 9


def test_all_of_equity_on_goog_never_drives_cash_negative(goog_bars: list[Bar]) -> None:
    """Before the rule, "100 % of equity" on GOOG left cash negative in 14 of 47 entries."""
    from trademesh_trading.registry import StrategyRegistry

    strategy = StrategyRegistry(load_entry_points=False).create("sma_cross", {})
    result = Backtester(
        strategy,
        instrument_id="file:GOOG",
        timeframe="1d",
        cash=D(10_000),
        fill_model=TEN_BPS,
        sizing=Sizing(kind="equity_pct", value=D(100)),
    ).run(goog_bars)
    cash, lowest = D(10_000), D(10_000)
    for fill in result.fills:
        cash += (-fill.quantity if fill.side == "buy" else fill.quantity) * fill.price - fill.fee
        lowest = min(lowest, cash)
    assert len(result.fills) > 10
    assert lowest >= 0


class TwoLegs(Strategy[StrategyConfig]):
    """At the close of bar 1, a limit buy of 6 at 90 on leg "a" (it rests) and then a market buy
    of 6 on leg "b"; each leg alone fits the cash, both together do not."""

    name = "two-legs"
    config_class = StrategyConfig

    def on_bar(self, ctx: Context, bar: Any) -> None:
        if ctx.bar_index == 1:
            ctx.submit_order("buy", D(6), kind="limit", limit_price=D(90), leg="a")
            ctx.submit_order("buy", D(6), leg="b")


def test_an_order_placed_while_another_is_pending_counts_its_reservation() -> None:
    # Leg a reserves 6 x 90 + fee = 540.54; leg b needs 6 x 101 + fee = 606.606 of the 459.46
    # left: refused when placed. Alone, leg b fits (606.606 of 1000) and fills.
    bars = [ohlc(n, "100", "101", "99", "100") for n in range(3)]

    def run_with(strategy: Strategy[StrategyConfig]) -> Any:
        return Backtester(
            strategy,
            instrument_id="test:X/USD",
            timeframe="1d",
            cash=D(1000),
            fill_model=TEN_BPS,
        ).run(bars)

    both = run_with(TwoLegs(StrategyConfig()))
    assert (both.stats.refused_orders, both.stats.refused_fills) == (1, 0)
    assert both.fills == []  # the limit at 90 never fills in bars that stay above 99

    class LegBOnly(TwoLegs):
        def on_bar(self, ctx: Context, bar: Any) -> None:
            if ctx.bar_index == 1:
                ctx.submit_order("buy", D(6), leg="b")

    alone = run_with(LegBOnly(StrategyConfig()))
    assert alone.stats.refused_orders == 0
    assert [(f.side, f.quantity) for f in alone.fills] == [("buy", D(6))]
