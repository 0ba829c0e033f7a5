"""The replay and synthetic feeds on their own: what they read, what they refuse, their pacing."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from trademesh_events.marketdata import Bar, Tick
from trademesh_trading.files import parse_time

from trademesh_market_data.clock import ManualClock
from trademesh_market_data.feeds.replay import ReplayFeed
from trademesh_market_data.feeds.synthetic import SyntheticFeed

pytestmark = pytest.mark.unit

GOOG = Path(__file__).parents[2] / "src" / "trademesh_market_data" / "data" / "GOOG.csv"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Recorder:
    """A FeedOutput that keeps everything it is given."""

    def __init__(self) -> None:
        self.got_ticks: list[Tick] = []
        self.got_bars: list[Bar] = []
        self.refused: list[tuple[str, str]] = []
        self.connections: list[bool] = []

    async def ticks(self, ticks: Sequence[Tick]) -> None:
        self.got_ticks += ticks

    async def bars(self, bars: Sequence[Bar]) -> None:
        self.got_bars += bars

    def rejected(self, reason: str, detail: str) -> None:
        self.refused.append((reason, detail))

    def connected(self, up: bool) -> None:
        self.connections.append(up)


def play(feed: Any) -> Recorder:
    out = Recorder()
    asyncio.run(feed.run(out, asyncio.Event()))
    return out


def test_the_goog_fixture_replays_every_row_as_a_daily_bar() -> None:
    out = play(ReplayFeed(GOOG, "nasdaq:GOOG", ManualClock(T0)))
    assert len(out.got_bars) == 2148 and out.refused == []
    first, last = out.got_bars[0], out.got_bars[-1]
    assert (first.open_time, first.open, first.high, first.low, first.close, first.volume) == (
        datetime(2004, 8, 19, tzinfo=UTC),
        Decimal("100"),
        Decimal("104.06"),
        Decimal("95.96"),
        Decimal("100.34"),
        Decimal("22351900"),
    )
    assert last.open_time == datetime(2013, 3, 1, tzinfo=UTC) and last.close == Decimal("806.19")
    assert all(b.final and b.timeframe == "1d" for b in out.got_bars)
    assert out.connections == [True, False]


def test_bad_rows_are_reported_and_skipped(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text(
        "date,open,high,low,close,volume\n"
        "2024-01-01,10,11,9,10.5,100\n"
        "2024-01-02,-10,11,9,10.5,100\n"  # negative open
        "2024-01-03,10,11,9,NaN,100\n"  # NaN close
        "not a date,10,11,9,10.5,100\n"
        "2024-01-05,10,9,9.5,10.5,100\n"  # high below low
        "2024-01-06,,11,9,10.5,100\n"  # empty open
        "2024-01-07,10,11,9,10.5,100\n"
    )
    out = play(ReplayFeed(path, "test:X/Y", ManualClock(T0)))
    assert [b.open_time.day for b in out.got_bars] == [1, 7]
    assert [reason for reason, _ in out.refused] == ["bad_row"] * 5
    assert [detail.split(":")[0] for _, detail in out.refused] == [
        f"bars.csv row {n}" for n in (3, 4, 5, 6, 7)
    ]


def test_a_trades_file_replays_ticks(tmp_path: Path) -> None:
    path = tmp_path / "trades.csv"
    path.write_text(
        "timestamp,price,amount,side,id\n"
        "1767225600000,64000.5,0.01,buy,a1\n"
        "1767225601500,64001,0.2,SELL,a2\n"
    )
    out = play(ReplayFeed(path, "test:BTC/USD", ManualClock(T0), data="trades"))
    assert [(t.ts, t.price, t.size, t.side, t.trade_id) for t in out.got_ticks] == [
        (T0, Decimal("64000.5"), Decimal("0.01"), "buy", "a1"),
        (T0 + timedelta(seconds=1.5), Decimal("64001"), Decimal("0.2"), "sell", "a2"),
    ]


def test_parquet_replays_like_csv_with_floats_kept_decimal(tmp_path: Path) -> None:
    path = tmp_path / "bars.parquet"
    table = pa.table(
        {
            "date": [datetime(2024, 1, 1), datetime(2024, 1, 2)],
            "open": [10.1, 10.2],
            "high": [11.0, 11.0],
            "low": [9.9, 9.8],
            "close": [10.3, 10.4],
            "volume": [100, 200],
        }
    )
    pq.write_table(table, path)
    out = play(ReplayFeed(path, "test:X/Y", ManualClock(T0)))
    assert [(b.open, b.close) for b in out.got_bars] == [
        (Decimal("10.1"), Decimal("10.3")),
        (Decimal("10.2"), Decimal("10.4")),
    ]


def test_speed_paces_rows_on_the_clock() -> None:
    clock = ManualClock(T0)
    out = play(ReplayFeed(GOOG, "nasdaq:GOOG", clock, speed=86400.0))  # a day per second
    assert len(out.got_bars) == 2148
    # one sleep per gap between rows; weekends and holidays are longer gaps
    assert len(clock.slept) == 2147 and clock.slept[0] == pytest.approx(1.0)
    assert max(clock.slept) >= 3.0


def test_stopping_a_replay_stops_it() -> None:
    stop = asyncio.Event()

    class StopAfterTen(Recorder):
        async def bars(self, bars: Sequence[Bar]) -> None:
            await super().bars(bars)
            if len(self.got_bars) >= 10:
                stop.set()

    out = StopAfterTen()
    feed = ReplayFeed(GOOG, "nasdaq:GOOG", ManualClock(T0), speed=86400.0)
    asyncio.run(feed.run(out, stop))
    assert len(out.got_bars) == 10
    assert out.connections == [True, False]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-01-02", datetime(2024, 1, 2, tzinfo=UTC)),
        ("2024-01-02T03:04:05Z", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2024-01-02T05:04:05+02:00", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        (1704164645, datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("1704164645000", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
    ],
)
def test_times_in_files(value: object, expected: datetime) -> None:
    assert parse_time(value) == expected


def test_the_synthetic_feed_is_deterministic_per_seed() -> None:
    def feed(seed: int) -> SyntheticFeed:
        return SyntheticFeed("test:SYN/USD", ManualClock(T0), T0, seed=seed, count=2500, rate=100)

    first, again, other = feed(7).ticks(), feed(7).ticks(), feed(8).ticks()
    assert first == again and first != other
    assert len(first) == 2500 and all(t.price > 0 and t.size > 0 for t in first)
    assert first[-1].ts == T0 + timedelta(seconds=24.99)
    out = play(feed(7))
    assert out.got_ticks == first


def test_a_realtime_synthetic_feed_sleeps_at_its_rate() -> None:
    clock = ManualClock(T0)
    feed = SyntheticFeed("test:SYN/USD", clock, T0, count=3000, rate=1000, realtime=True)
    play(feed)
    assert sum(clock.slept) == pytest.approx(3.0)
    assert max(clock.slept) == pytest.approx(0.1)  # paced in tenths of a second, not in bursts
