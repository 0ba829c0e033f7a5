"""Timeframes, tick checks and bar aggregation: pure, with known ticks and known bars."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from trademesh_events.marketdata import Tick
from trademesh_trading.timeframes import Timeframe

from trademesh_market_data.engine import BarAggregator, TickGuard, TickRejected
from trademesh_market_data.tickstore import bar_window, base_timeframe

pytestmark = pytest.mark.unit

INSTRUMENT = "test:BTC/USD"
T0 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)  # a Monday


def tick(seconds: float, price: str, size: str = "1") -> Tick:
    return Tick(
        instrument_id=INSTRUMENT,
        ts=T0 + timedelta(seconds=seconds),
        price=Decimal(price),
        size=Decimal(size),
    )


def ohlcv(bar: object) -> tuple[object, ...]:
    return tuple(
        getattr(bar, f)
        for f in ("open_time", "open", "high", "low", "close", "volume", "trades", "final")
    )


def test_aggregation_of_a_known_sequence_gives_known_bars() -> None:
    bars = BarAggregator(INSTRUMENT, [Timeframe.parse("1m")])
    out = []
    # minute 0: four ticks, one out of order inside the minute; minute 1: nothing (a gap);
    # minute 2: one tick; minute 3: one tick that closes minute 2.
    for t in [
        tick(1, "100", "1"),
        tick(20, "105", "2"),
        tick(10, "99", "0.5"),
        tick(59, "101", "1"),
    ]:
        out += bars.add(t).bars
    assert out == []
    out += bars.add(tick(125, "110", "3")).bars
    out += bars.add(tick(185, "111", "1")).bars
    assert [ohlcv(b) for b in out] == [
        (
            T0,
            Decimal("100"),
            Decimal("105"),
            Decimal("99"),
            Decimal("101"),
            Decimal("4.5"),
            4,
            True,
        ),
        (T0 + timedelta(minutes=2), *(Decimal("110"),) * 4, Decimal("3"), 1, True),
    ]
    assert all(b.close_time - b.open_time == timedelta(minutes=1) for b in out)
    last = bars.close_all()
    assert [ohlcv(b) for b in last] == [
        (T0 + timedelta(minutes=3), *(Decimal("111"),) * 4, Decimal("1"), 1, True)
    ]


def test_open_is_the_earliest_tick_and_close_the_latest_whatever_the_arrival_order() -> None:
    bars = BarAggregator(INSTRUMENT, [Timeframe.parse("1m")])
    for t in [tick(30, "102"), tick(5, "100"), tick(50, "104"), tick(40, "103")]:
        bars.add(t)
    [bar] = bars.close_all()
    assert (bar.open, bar.close, bar.high, bar.low) == (
        Decimal("100"),
        Decimal("104"),
        Decimal("104"),
        Decimal("100"),
    )


def test_several_timeframes_at_once() -> None:
    bars = BarAggregator(INSTRUMENT, [Timeframe.parse("5m"), Timeframe.parse("1m")])
    out = []
    for n in range(11):  # one tick a minute for 11 minutes
        out += bars.add(tick(60 * n, str(100 + n))).bars
    minutes = [b for b in out if b.timeframe == "1m"]
    fives = [b for b in out if b.timeframe == "5m"]
    assert len(minutes) == 10 and len(fives) == 2  # T0 is 09:30, a 5-minute boundary
    assert (fives[0].open, fives[0].close, fives[0].volume) == (Decimal("100"), Decimal("104"), 5)


def test_a_late_tick_is_not_applied_to_a_final_bar() -> None:
    bars = BarAggregator(INSTRUMENT, [Timeframe.parse("1m")])
    bars.add(tick(10, "100"))
    closed = bars.add(tick(70, "101")).bars  # minute 0 is final now
    late = bars.add(tick(30, "999"))
    assert late.late and late.bars == []
    assert closed[0].high == Decimal("100")
    [current] = bars.close_all()
    assert current.high == Decimal("101")


def test_close_due_closes_bars_once_their_end_and_the_tolerance_passed() -> None:
    bars = BarAggregator(INSTRUMENT, [Timeframe.parse("1m")], tolerance=timedelta(seconds=2))
    bars.add(tick(10, "100"))
    assert bars.close_due(T0 + timedelta(seconds=61)) == []
    [bar] = bars.close_due(T0 + timedelta(seconds=62))
    assert bar.final and bars.close_due(T0 + timedelta(hours=1)) == []


def test_in_progress_bars_when_asked() -> None:
    bars = BarAggregator(INSTRUMENT, [Timeframe.parse("1m")], partial_every=timedelta(seconds=20))
    updates = [b for t in [tick(0, "1"), tick(10, "2"), tick(25, "3")] for b in bars.add(t).bars]
    assert [(b.final, b.close) for b in updates] == [(False, Decimal("1")), (False, Decimal("3"))]


def test_the_guard_refuses_unknown_instruments_and_ticks_too_far_back() -> None:
    guard = TickGuard({INSTRUMENT}, tolerance=timedelta(seconds=2))
    guard.check(tick(10, "1"))
    guard.check(tick(8.5, "1"))  # within tolerance
    with pytest.raises(TickRejected) as raised:
        guard.check(tick(7, "1"))
    assert raised.value.reason == "out_of_order"
    other = tick(20, "1").model_copy(update={"instrument_id": "test:ETH/USD"})
    with pytest.raises(TickRejected) as raised:
        guard.check(other)
    assert raised.value.reason == "unknown_instrument"


def test_a_history_window_covers_whole_bars_opening_in_the_range() -> None:
    week = Timeframe.parse("1w")
    wednesday, next_wednesday = datetime(2026, 1, 7, tzinfo=UTC), datetime(2026, 1, 14, tzinfo=UTC)
    # The week of 5 Jan opens before the range: not returned; the week of 12 Jan opens in it.
    assert bar_window(week, wednesday, next_wednesday) == (
        datetime(2026, 1, 12, tzinfo=UTC),
        datetime(2026, 1, 19, tzinfo=UTC),
    )
    monday = datetime(2026, 1, 5, tzinfo=UTC)
    assert bar_window(week, monday, monday + timedelta(days=7)) == (
        monday,
        monday + timedelta(days=7),
    )


def test_history_uses_the_coarsest_stored_bars_that_add_up() -> None:
    assert base_timeframe(Timeframe.parse("1h"), ["1m", "5m", "7m", "1d"]) == Timeframe.parse("5m")
    assert base_timeframe(Timeframe.parse("1w"), ["1d", "1w"]) == Timeframe.parse("1w")
    assert base_timeframe(Timeframe.parse("1d"), ["1w"]) is None
    assert base_timeframe(Timeframe.parse("7s"), ["5s", "1m"]) is None
