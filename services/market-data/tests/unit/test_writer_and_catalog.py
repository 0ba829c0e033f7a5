"""The store buffer's rules (batches, retries, dropping the oldest) and the feed configuration checks."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from pydantic import ValidationError

from trademesh_market_data.catalog import FeedCreate
from trademesh_market_data.writer import BufferedWriter

pytestmark = pytest.mark.unit


class FlakyStore:
    def __init__(self) -> None:
        self.rows: list[int] = []
        self.down = False
        self.calls = 0

    async def write(self, rows: Sequence[int]) -> None:
        self.calls += 1
        if self.down:
            raise ConnectionError("store away")
        self.rows += rows


def test_rows_are_written_in_batches_in_order() -> None:
    store = FlakyStore()
    writer = BufferedWriter(store.write, service="t", table="x", batch_size=4, flush_interval=0.01)

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(writer.run(stop))
        writer.offer(range(10))
        await asyncio.sleep(0.05)
        stop.set()
        await task

    asyncio.run(main())
    assert store.rows == list(range(10)) and writer.pending == 0


def test_an_outage_keeps_the_rows_and_they_are_written_after_it() -> None:
    store = FlakyStore()
    writer = BufferedWriter(
        store.write, service="t", table="x", batch_size=100, flush_interval=0.01, max_backoff=0.02
    )

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(writer.run(stop))
        store.down = True
        writer.offer(range(50))
        await asyncio.sleep(0.1)
        assert store.calls >= 2 and writer.pending == 50  # retried, nothing lost
        writer.offer(range(50, 60))
        store.down = False
        await asyncio.sleep(0.1)
        stop.set()
        await task

    asyncio.run(main())
    assert store.rows == list(range(60))


def test_past_its_capacity_the_buffer_drops_the_oldest_rows() -> None:
    writer = BufferedWriter(FlakyStore().write, service="t", table="x", capacity=5)
    writer.offer(range(4))
    writer.offer(range(4, 8))
    assert (writer.pending, writer.dropped) == (5, 3)

    async def first_batch() -> list[int]:
        store = FlakyStore()
        writer._write = store.write
        await writer.write_once()
        return store.rows

    assert asyncio.run(first_batch()) == [3, 4, 5, 6, 7]


def test_a_feed_config_is_checked() -> None:
    ok = FeedCreate.model_validate(
        {
            "instrument_id": "nasdaq:GOOG",
            "timeframes": ["1d", "1d", "1w"],
            "config": {"kind": "replay"},
        }
    )
    assert ok.timeframes == ["1d", "1w"] and ok.config.kind == "replay"
    bad = [
        {"instrument_id": "GOOG", "config": {"kind": "replay"}},  # no venue prefix
        {"instrument_id": "x:Y", "timeframes": ["1y"], "config": {"kind": "replay"}},
        {"instrument_id": "x:Y", "config": {"kind": "replay", "file": "../../etc/passwd"}},
        {"instrument_id": "x:Y", "config": {"kind": "replay", "speed": 0}},
        {"instrument_id": "x:Y", "config": {"kind": "synthetic", "volatility": -1}},
        {
            "instrument_id": "x:Y",
            "config": {"kind": "ccxt", "exchange": "Binance!", "symbol": "BTC/USDT"},
        },
        {"instrument_id": "x:Y", "config": {"kind": "mystery"}},
        {"instrument_id": "x:Y", "config": {"kind": "replay", "extra": 1}},
        {  # an exchange's bars come in one timeframe
            "instrument_id": "binance:BTC/USDT",
            "timeframes": ["1m", "5m"],
            "config": {"kind": "ccxt", "exchange": "binance", "symbol": "BTC/USDT"},
        },
    ]
    for document in bad:
        with pytest.raises(ValidationError):
            FeedCreate.model_validate(document)
