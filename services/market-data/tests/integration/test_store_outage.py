"""The Postgres tick store behind its buffer, while Postgres goes away and comes back."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from trademesh_db import Database, migrate
from trademesh_events.marketdata import Tick

from trademesh_market_data.clock import ManualClock
from trademesh_market_data.feeds.synthetic import SyntheticFeed
from trademesh_market_data.tickstore import PostgresTickStore
from trademesh_market_data.writer import BufferedWriter

pytestmark = pytest.mark.integration

MIGRATIONS = Path(__file__).parents[2] / "src" / "trademesh_market_data" / "migrations"
T0 = datetime(2026, 2, 1, tzinfo=UTC)


def ticks(count: int, seed: int) -> list[Tick]:
    feed = SyntheticFeed("test:OUT/AGE", ManualClock(T0), T0, seed=seed, count=count, rate=1000)
    return feed.ticks()


async def drained(writer: BufferedWriter[Tick], timeout: float) -> None:
    """Wait until the buffer is empty, or `timeout` seconds."""
    for _ in range(int(timeout / 0.05)):
        if not writer.pending:
            return
        await asyncio.sleep(0.05)


async def stored(url: str) -> int:
    conn = await asyncpg.connect(url, server_settings={"search_path": "marketdata"})
    try:
        return int(await conn.fetchval("SELECT count(*) FROM ticks"))
    finally:
        await conn.close()


async def test_a_store_outage_buffers_then_flushes(private_infra: Any) -> None:
    url = private_infra.database_url
    await asyncio.to_thread(migrate, url, "marketdata", [MIGRATIONS])
    db = Database(url, schema="marketdata")
    await db.connect()
    store = PostgresTickStore(db)
    writer = BufferedWriter[Tick](
        store.write_ticks,
        service="test",
        table="ticks",
        batch_size=2000,
        flush_interval=0.05,
        max_backoff=0.3,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(writer.run(stop))
    try:
        writer.offer(ticks(3000, seed=1))
        await drained(writer, 20)
        assert await stored(url) == 3000

        private_infra.postgres.stop()
        writer.offer(ticks(5000, seed=2))  # accepted while the store is away
        await asyncio.sleep(1.0)
        assert writer.pending == 5000 and writer.dropped == 0  # kept, retried, not lost

        private_infra.postgres.start()
        await drained(writer, 30)
        assert writer.pending == 0
        assert await stored(url) == 8000
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await db.close()
