"""The shared fill model's rules, and a backtest whose fills, trades and equity are worked out by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import numpy as np
import pytest
from trademesh_events.marketdata import Bar
from trademesh_trading.backtest import Backtester, Sizing
from trademesh_trading.buying_power import AccountTerms
from trademesh_trading.fills import FillModel, SimOrder
from trademesh_trading.strategy import Context, Strategy, StrategyConfig

pytestmark = pytest.mark.unit

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def ohlc(n: int, o: str, h: str, lo: str, c: str, v: str = "1000") -> Bar:
    return Bar(
        instrument_id="test:X/USD",
        timeframe="1d",
        open_time=T0 + timedelta(days=n),
        close_time=T0 + timedelta(days=n + 1),
        open=D(o),
        high=D(h),
        low=D(lo),
        close=D(c),
        volume=D(v),
    )


TEN_BPS = FillModel(slippage_bps=D(10), fee_bps=D(10))


def test_a_market_order_fills_at_the_open_with_slippage_and_fee() -> None:
    buy = SimOrder("a", "buy", D(10))
    fill = TEN_BPS.fill(buy, ohlc(0, "100", "101", "99", "100"))
    assert fill is not None
    assert (fill.price, fill.fee) == (D("100.1"), D("1.001"))
    sell = TEN_BPS.fill(SimOrder("b", "sell", D(10)), ohlc(0, "100", "101", "99", "100"))
    assert sell is not None and sell.price == D("99.9")


def test_limit_orders_fill_when_the_bar_crosses_at_the_limit_or_a_better_open() -> None:
    model = FillModel()
    assert (
        model.fill(SimOrder("a", "buy", D(1), "limit", D(99)), ohlc(0, "100", "101", "99.5", "100"))
        is None
    )
    crossed = model.fill(
        SimOrder("a", "buy", D(1), "limit", D(99)), ohlc(0, "100", "101", "98.5", "100")
    )
    gapped = model.fill(SimOrder("a", "buy", D(1), "limit", D(99)), ohlc(0, "98", "99", "97", "98"))
    assert crossed is not None and crossed.price == D(99)
    assert gapped is not None and gapped.price == D(98)
    sold = model.fill(
        SimOrder("s", "sell", D(1), "limit", D(101)), ohlc(0, "100", "102", "99", "100")
    )
    assert sold is not None and sold.price == D(101)


def test_stops_trigger_through_the_bar_and_slip() -> None:
    stop = SimOrder("s", "sell", D(1), "stop", stop_price=D(95))
    assert TEN_BPS.fill(stop, ohlc(0, "97", "98", "95.5", "96")) is None
    fill = TEN_BPS.fill(stop, ohlc(1, "97", "98", "94", "95"))
    assert fill is not None and fill.price == D("94.905")  # 95 - 10 bps
    gap = TEN_BPS.fill(
        SimOrder("s", "sell", D(1), "stop", stop_price=D(95)), ohlc(0, "90", "91", "89", "90")
    )
    assert gap is not None and gap.price == D("89.91")  # opened through the stop: 90 - 10 bps


def test_a_stop_limit_fills_within_its_limit_or_rests() -> None:
    model = FillModel()
    order = SimOrder("b", "buy", D(1), "stop_limit", limit_price=D(106), stop_price=D(105))
    fill = model.fill(order, ohlc(0, "104", "107", "103", "106"))
    assert fill is not None and fill.price == D(105)
    gapped = SimOrder("b", "buy", D(1), "stop_limit", limit_price=D(106), stop_price=D(105))
    assert model.fill(gapped, ohlc(0, "108", "109", "107", "108")) is None  # opened past the limit
    assert gapped.triggered
    later = model.fill(gapped, ohlc(1, "107", "108", "105.5", "106"))
    assert later is not None and later.price == D(106)


def test_volume_caps_split_a_large_order_over_bars() -> None:
    model = FillModel(max_volume_share=D("0.1"), quantity_step=D(1))
    order = SimOrder("a", "buy", D(8))
    first = model.fill(order, ohlc(0, "100", "101", "99", "100", v="55"))
    second = model.fill(order, ohlc(1, "100", "101", "99", "100", v="55"))
    assert first is not None and second is not None
    assert (first.quantity, second.quantity, order.remaining) == (D(5), D(3), D(0))


class Scripted(Strategy[StrategyConfig]):
    """Buys the order size at the close of bar 1, goes flat at the close of bar 3."""

    name = "scripted"
    config_class = StrategyConfig

    def on_bar(self, ctx: Context, bar: Any) -> None:
        index = len(ctx.bars) - 1
        if index == 1:
            ctx.target_position(ctx.order_size())
        elif index == 3:
            ctx.target_position(D(0))


def test_a_small_backtest_computed_by_hand() -> None:
    bars = [
        ohlc(0, "100", "101", "99", "100"),
        ohlc(1, "100", "102", "99", "101"),  # signal: buy 10
        ohlc(2, "102", "104", "101", "103"),  # buy fills at 102 + 0.102 = 102.102, fee 1.02102
        ohlc(3, "103", "105", "102", "104"),  # signal: flat
        ohlc(4, "106", "107", "105", "106"),  # sell fills at 106 - 0.106 = 105.894, fee 1.05894
    ]
    result = Backtester(
        Scripted(StrategyConfig()),
        instrument_id="test:X/USD",
        timeframe="1d",
        cash=D(10_000),
        fill_model=TEN_BPS,
        sizing=Sizing(kind="quantity", value=D(10)),
    ).run(bars)
    assert [(f.side, f.quantity, f.price, f.fee) for f in result.fills] == [
        ("buy", D(10), D("102.102"), D("1.02102")),
        ("sell", D(10), D("105.894"), D("1.05894")),
    ]
    [trade] = result.trades
    # 1058.94 - 1021.02 - (1.02102 + 1.05894)
    assert (trade.side, trade.entry_price, trade.exit_price, trade.pnl) == (
        "long",
        D("102.102"),
        D("105.894"),
        D("35.84004"),
    )
    assert [v for _, v in result.equity] == [
        D(10_000),
        D(10_000),
        D("10007.95898"),  # 10000 - 1021.02 - 1.02102 + 10 * 103
        D("10017.95898"),  # ... + 10 * 104
        D("10035.84004"),
    ]
    stats = result.stats
    assert stats.final_equity == D("10035.84004")
    assert stats.total_return == pytest.approx(0.003584004)
    assert (stats.trades, stats.win_rate, stats.exposure) == (1, 1.0, 0.4)
    assert stats.max_drawdown == 0.0


def test_client_order_ids_name_the_signal_bars_open_time_leg_and_sequence() -> None:
    start = datetime(2024, 3, 5, 7, 21, 39, tzinfo=UTC)
    bars = [
        b.model_copy(
            update={
                "open_time": start + timedelta(hours=n),
                "close_time": start + timedelta(hours=n + 1),
            }
        )
        for n, b in enumerate(ohlc(n, "100", "101", "99", "100") for n in range(5))
    ]
    result = Backtester(
        Scripted(StrategyConfig()),
        instrument_id="test:X/USD",
        timeframe="1h",
        sizing=Sizing(kind="quantity", value=D(10)),
    ).run(bars)
    assert [f.client_order_id for f in result.fills] == [
        f"bt-{bars[1].open_time:%Y%m%d%H%M%S}-main-1",  # bt-20240305082139-main-1
        f"bt-{bars[3].open_time:%Y%m%d%H%M%S}-main-2",
    ]


def test_the_longest_drawdown_runs_from_the_last_bar_at_the_peak() -> None:
    bars = [
        ohlc(0, "100", "101", "99", "100"),
        ohlc(1, "100", "102", "99", "101"),  # signal: buy 10; equity 10,000 (the peak)
        ohlc(2, "102", "103", "98", "99"),  # bought at 102: 8,980 + 990 = 9,970
        ohlc(3, "98", "99", "96", "97"),  # 9,950, the bottom; signal: flat
        ohlc(4, "99", "100", "98", "99"),  # sold at 99: 9,970, still below the peak
    ]
    result = Backtester(
        Scripted(StrategyConfig()),
        instrument_id="test:X/USD",
        timeframe="1d",
        sizing=Sizing(kind="quantity", value=D(10)),
    ).run(bars)
    assert [v for _, v in result.equity] == [D(10_000), D(10_000), D(9_970), D(9_950), D(9_970)]
    assert result.stats.max_drawdown == pytest.approx(0.005)
    assert result.stats.max_drawdown_duration == bars[4].close_time - bars[1].close_time


def test_sizing_rules() -> None:
    assert Sizing(kind="quantity", value=D("2.5"), step=D("0.1")).quantity(D(100), D(0)) == D("2.5")
    assert Sizing(kind="notional", value=D(1000)).quantity(D(300), D(0)) == D(3)
    assert Sizing(kind="equity_pct", value=D(50)).quantity(D(30), D(1000)) == D(16)


def test_an_empty_range_is_refused() -> None:
    with pytest.raises(ValueError, match="no bars"):
        Backtester(Scripted(StrategyConfig()), instrument_id="x:Y", timeframe="1d").run([])


@pytest.mark.parametrize(
    ("name", "parameters"),
    [
        ("rsi_cross", {}),
        ("sma_cross", {"fast": 10, "slow": 20, "short": True}),
        ("bollinger_reversion", {"short": True}),
        ("donchian_breakout", {"short": True}),
    ],
)
def test_a_precomputed_backtest_is_the_same_backtest(
    name: str, parameters: dict[str, Any], goog_bars: list[Bar]
) -> None:
    """The batch (TA-Lib) indicators of prepare() change the speed, never the result."""
    from trademesh_trading.registry import StrategyRegistry

    registry = StrategyRegistry(load_entry_points=False)

    def run(precompute: bool) -> Any:
        return Backtester(
            registry.create(name, parameters),
            instrument_id="file:GOOG",
            timeframe="1d",
            fill_model=TEN_BPS,
            precompute=precompute,
            terms=AccountTerms(allow_short=parameters.get("short", False)),
        ).run(goog_bars)

    fast, slow = run(True), run(False)
    assert fast.trades == slow.trades and fast.equity == slow.equity
    assert fast.fills == slow.fills and fast.stats == slow.stats
    assert len(fast.trades) > 5  # the series trades: the comparison means something


class _Acting(Strategy[StrategyConfig]):
    """Buys on bar 2, sells on bar 5 with a resting limit, and says so through active_bars()."""

    name = "acting"
    config_class = StrategyConfig

    def __init__(self) -> None:
        super().__init__(StrategyConfig())
        self.calls: list[tuple[int, int, datetime]] = []

    def active_bars(self) -> list[int]:
        return [2, 5]

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        self.calls.append((ctx.bar_index, len(ctx.bars), ctx.bars[-1].open_time))
        assert ctx.bars[-1] is bar
        if ctx.bar_index == 2:
            ctx.target_position(D(3))
        elif ctx.bar_index == 5:
            ctx.submit_order("sell", D(3), kind="limit", limit_price=D("104"))


def test_on_bar_runs_only_on_the_active_bars_with_the_same_result() -> None:
    bars = [ohlc(n, str(100 + n), str(101 + n), str(99 + n), str(100 + n)) for n in range(10)]

    def run(precompute: bool) -> tuple[Any, _Acting]:
        strategy = _Acting()
        backtester = Backtester(
            strategy,
            instrument_id="x:Y",
            timeframe="1d",
            fill_model=TEN_BPS,
            window=3,
            precompute=precompute,
        )
        return backtester.run(bars), strategy

    (fast, acting), (slow, every) = run(True), run(False)
    assert [c[0] for c in acting.calls] == [2, 5]
    assert acting.calls[0][1:] == (3, bars[2].open_time)  # ctx.bars: the window up to bar 2
    assert [c[0] for c in every.calls] == list(range(10))
    assert (fast.trades, fast.equity, fast.fills, fast.stats) == (
        slow.trades,
        slow.equity,
        slow.fills,
        slow.stats,
    )
    # Bought 3 at bar 3's open (+10 bps); the sell limit at 104 from bar 5 fills at bar 6's
    # better open, 106 (the fast path tries open orders on every bar until they fill).
    assert [(f.side, f.price) for f in fast.fills] == [("buy", D("103.103")), ("sell", D("106"))]
    assert fast.stats.exposure == 3 / 10  # held on bars 3, 4 and 5


def test_the_bar_window_is_a_read_only_view() -> None:
    from trademesh_trading.backtest import _Window

    bars = [ohlc(n, "100", "101", "99", "100") for n in range(6)]
    window = _Window(bars, 2, 5)
    assert len(window) == 3
    assert (window[0], window[-1], window[-3]) == (bars[2], bars[4], bars[2])
    assert list(window) == bars[2:5] and window[1:] == bars[3:5]
    for outside in (3, -4):
        with pytest.raises(IndexError):
            window[outside]


def test_the_equity_curve_as_floats_is_each_bars_cash_plus_position_at_its_close() -> None:
    from trademesh_trading.backtest import EquityCurve

    closes = ["100.1", "101.3", "99.7", "102.9", "104.3", "103.1", "98.9"]
    bars = [ohlc(n, c, "200", "50", c) for n, c in enumerate(closes)]
    curve = EquityCurve(bars, D("1000.01"))
    curve.mark(2, D("-1.7"), D("3.3"))  # stretches: [0, 2), [2, 5), [5, 7)
    curve.mark(5, D("1333.333"), D("-0.1"))
    stretch = [(D("1000.01"), D(0))] * 2 + [(D("-1.7"), D("3.3"))] * 3
    stretch += [(D("1333.333"), D("-0.1"))] * 2
    floats = curve.floats(np.array([float(c) for c in closes]))
    assert floats.tolist() == [
        float(cash) + float(held) * float(close)
        for (cash, held), close in zip(stretch, closes, strict=True)
    ]
