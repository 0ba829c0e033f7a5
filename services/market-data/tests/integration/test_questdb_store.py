"""The QuestDB tick store against a real QuestDB: ticks and bars in by ILP, history out by SQL.

Runs when TRADEMESH_TEST_QUESTDB_ILP (an ILP client conf, e.g. `http::addr=localhost:9000;`) and
TRADEMESH_TEST_QUESTDB_PG (e.g. `postgresql://admin:quest@localhost:8812/qdb`) are set, or with
TRADEMESH_TEST_INFRA=containers (the questdb_urls fixture of trademesh_testing).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TypeVar
from uuid import uuid4

import pytest
from trademesh_events.marketdata import Bar, Tick
from trademesh_trading.timeframes import Timeframe

from trademesh_market_data.questdb import QuestDbTickStore
from trademesh_market_data.tickstore import Ohlcv

pytestmark = pytest.mark.integration

T0 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)  # a Monday
Result = TypeVar("Result")


@pytest.fixture
async def store(questdb_urls: tuple[str, str]) -> AsyncIterator[QuestDbTickStore]:
    questdb = QuestDbTickStore(*questdb_urls)
    await questdb.connect()
    try:
        yield questdb
    finally:
        await questdb.close()


def instrument() -> str:
    """An instrument of this test's own: the tables are shared and rows are never deleted."""
    return f"test:{uuid4().hex}"


async def eventually(
    read: Callable[[], Awaitable[Result]], done: Callable[[Result], bool], timeout: float = 30.0
) -> Result:
    """The first result of `read` that is `done`: WAL tables show rows shortly after a flush."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await read()
        if done(result):
            return result
        assert loop.time() < deadline, f"not there in time; last read {result!r}"
        await asyncio.sleep(0.2)


def tick(name: str, at: datetime, price: str, size: str, **fields: object) -> Tick:
    return Tick.model_validate(
        {"instrument_id": name, "ts": at, "price": price, "size": size, **fields}
    )


async def test_ticks_come_back_as_ohlcv_and_the_latest_price(store: QuestDbTickStore) -> None:
    name = instrument()
    minute = Timeframe.parse("1m")
    ticks = [
        tick(name, T0 + timedelta(seconds=5), "100.5", "0.1", side="buy", trade_id="a"),
        tick(name, T0 + timedelta(seconds=1), "101", "0.2"),  # earlier, arrives later: the open
        tick(name, T0 + timedelta(seconds=40), "99.25", "0.3", side="sell"),
        tick(name, T0 + timedelta(minutes=2, seconds=1), "12345.678901234", "1.5"),  # gap at :31
    ]
    await store.write_ticks(ticks)

    bars = await eventually(
        lambda: store.ohlcv(name, minute, T0, T0 + timedelta(hours=1), 10),
        lambda bars: sum(bar.trades for bar in bars) == len(ticks),
    )
    assert bars == [
        Ohlcv(
            open_time=T0,
            close_time=T0 + timedelta(minutes=1),
            open=Decimal("101"),
            high=Decimal("101"),
            low=Decimal("99.25"),
            close=Decimal("99.25"),
            volume=Decimal("0.6"),  # 0.1 + 0.2 + 0.3 in doubles, rounded to 15 digits
            trades=3,
        ),
        Ohlcv(
            open_time=T0 + timedelta(minutes=2),
            close_time=T0 + timedelta(minutes=3),
            open=Decimal("12345.678901234"),
            high=Decimal("12345.678901234"),
            low=Decimal("12345.678901234"),
            close=Decimal("12345.678901234"),
            volume=Decimal("1.5"),
            trades=1,
        ),
    ]
    five = await store.ohlcv(name, Timeframe.parse("5m"), T0, T0 + timedelta(hours=1), 10)
    assert [(b.open_time, b.open, b.close, b.trades) for b in five] == [
        (T0, Decimal("101"), Decimal("12345.678901234"), 4)
    ]
    limited = await store.ohlcv(name, minute, T0, T0 + timedelta(hours=1), 1)
    assert [b.open_time for b in limited] == [T0]
    later = await store.ohlcv(name, minute, T0 + timedelta(minutes=1), T0 + timedelta(hours=1), 10)
    assert [b.open_time for b in later] == [T0 + timedelta(minutes=2)]

    assert await store.last_price(name) == (
        T0 + timedelta(minutes=2, seconds=1),
        Decimal("12345.678901234"),
    )
    assert await store.last_price(instrument()) is None


async def test_bars_are_resampled_and_a_rewritten_bar_replaces_the_stored_one(
    store: QuestDbTickStore,
) -> None:
    name = instrument()

    def bar(minute: int, open_: str, close: str, volume: str) -> Bar:
        start = T0 + timedelta(minutes=minute)
        low, high = sorted((Decimal(open_), Decimal(close)))
        return Bar(
            instrument_id=name,
            timeframe="1m",
            open_time=start,
            close_time=start + timedelta(minutes=1),
            open=Decimal(open_),
            high=high,
            low=low,
            close=Decimal(close),
            volume=Decimal(volume),
            trades=2,
        )

    await store.write_bars([bar(0, "10", "11", "1"), bar(1, "11", "12", "2")])
    # The minute-1 bar again, corrected (a replay run twice), and an in-progress update, ignored.
    await store.write_bars(
        [bar(1, "11", "13", "3"), bar(6, "1", "1", "1").model_copy(update={"final": False})]
    )

    five = Timeframe.parse("5m")
    result = await eventually(
        lambda: store.ohlcv(name, five, T0, T0 + timedelta(hours=1), 10),
        lambda bars: bool(bars) and bars[0].close == Decimal("13"),
    )
    assert result == [
        Ohlcv(
            open_time=T0,
            close_time=T0 + timedelta(minutes=5),
            open=Decimal("10"),
            high=Decimal("13"),
            low=Decimal("10"),
            close=Decimal("13"),
            volume=Decimal("4"),
            trades=4,
        )
    ]
    # No ticks for this instrument: the latest bar's close, at its close time.
    assert await store.last_price(name) == (T0 + timedelta(minutes=2), Decimal("13"))


async def test_weekly_bars_start_on_monday(store: QuestDbTickStore) -> None:
    name = instrument()
    # By the engine's rule (Mondays from 1970-01-05) a two-week bar opens on 2026-01-05. QuestDB's
    # own two-week buckets open on 2025-12-29 and 2026-01-12: this tick, on 2026-01-14, tells
    # the two apart.
    await store.write_ticks([tick(name, T0 + timedelta(days=9), "5", "1")])
    weeks = await eventually(
        lambda: store.ohlcv(
            name, Timeframe.parse("2w"), T0 - timedelta(days=30), T0 + timedelta(days=30), 10
        ),
        bool,
    )
    monday = datetime(2026, 1, 5, tzinfo=UTC)
    assert [(b.open_time, b.close_time) for b in weeks] == [(monday, monday + timedelta(weeks=2))]


async def test_check_ready_is_a_round_trip(store: QuestDbTickStore) -> None:
    await store.check_ready()
    unreachable = QuestDbTickStore("http::addr=127.0.0.1:1;", "postgresql://admin@127.0.0.1:1/qdb")
    with pytest.raises(ConnectionRefusedError):
        await unreachable.check_ready(timeout=1.0)
