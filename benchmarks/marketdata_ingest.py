"""Market data ingest on the embedded stack: synthetic feed -> checks and bars -> Kafka -> tick store.

Three figures, in one run on a fresh embedded Postgres and Tansu:
- events_per_s: ticks through the service's real path (FeedRunner: tick checks, 1m bars,
  Bus.publish_many with acks=all), N ticks in batches of BATCH;
- rows_per_s: the Postgres tick store (PostgresTickStore.write_ticks, COPY in batches of
  STORE_BATCH, the service's default, from Tick objects) storing the same N ticks;
- ratio: rows_per_s against a raw asyncpg COPY of the same rows, prepared as tuples before the
  clock starts, into the same table (emptied before each); best of ROUNDS alternating runs each.

Last line: BENCH marketdata_ingest events_per_s=... rows_per_s=... raw_rows_per_s=... ratio=...
(targets: events_per_s >= 50000; rows_per_s >= 200000 and ratio >= 0.8)
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from trademesh_bus import Bus
from trademesh_db import Database, migrate
from trademesh_infra.topics import ensure_topics, topic_plan
from trademesh_testing.infra import start_embedded
from trademesh_trading.timeframes import Timeframe

from trademesh_market_data.clock import ManualClock
from trademesh_market_data.config import Settings
from trademesh_market_data.feeds.synthetic import SyntheticFeed
from trademesh_market_data.tickstore import PostgresTickStore
from trademesh_market_data.usecases.runner import FeedRunner
from trademesh_market_data.writer import BufferedWriter

N = int(os.environ.get("BENCH_TICKS", "200000"))
BATCH = 5000
ROUNDS = 3
# The service's own batch size (one COPY per batch: each COPY costs a round of introspection).
STORE_BATCH = int(
    os.environ.get("BENCH_STORE_BATCH", Settings.model_fields["store_batch_rows"].default)
)
MIGRATIONS = (
    Path(__file__).resolve().parents[1]
    / "services/market-data/src/trademesh_market_data/migrations"
)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def main() -> None:
    infra = start_embedded(Path(tempfile.mkdtemp(prefix="bench-md-")))
    try:
        await ensure_topics(infra.kafka_bootstrap, topic_plan())
        await asyncio.to_thread(migrate, infra.database_url, "marketdata", [MIGRATIONS])
        settings = infra.settings()
        feed = SyntheticFeed(
            "bench:BTC/USD", ManualClock(T0), T0, count=N, rate=10_000, batch_size=BATCH
        )
        ticks = feed.ticks()
        db = Database(infra.database_url, schema="marketdata")
        await db.connect()
        bus = Bus(settings, "bench", telemetry=False)
        await bus.start()
        store = PostgresTickStore(db)
        discard: BufferedWriter[object] = BufferedWriter(
            _nowhere, service="bench", table="none", capacity=N * 2
        )
        runner = FeedRunner(
            feed="bench",
            instrument="bench:BTC/USD",
            timeframes=[Timeframe.parse("1m")],
            bus=bus,
            ticks_writer=discard,  # type: ignore[arg-type]
            bars_writer=discard,  # type: ignore[arg-type]
            service="bench",
            tolerance=timedelta(seconds=2),
        )
        await runner.ticks(ticks[:BATCH])  # warm up the producer and the partitions
        started = time.perf_counter()
        for i in range(BATCH, N, BATCH):
            await runner.ticks(ticks[i : i + BATCH])
        publish_s = time.perf_counter() - started
        events_per_s = (N - BATCH) / publish_s

        records = [(t.instrument_id, t.ts, t.price, t.size, t.side, t.trade_id) for t in ticks]
        store_rates, raw_rates = [], []
        for _ in range(ROUNDS):  # alternating, best of each: the two engines share 2 cores
            async with db.pool.acquire() as conn:
                await conn.execute("TRUNCATE ticks")
            started = time.perf_counter()
            for i in range(0, N, STORE_BATCH):
                await store.write_ticks(ticks[i : i + STORE_BATCH])
            store_rates.append(N / (time.perf_counter() - started))
            async with db.pool.acquire() as conn:
                await conn.execute("TRUNCATE ticks")
                started = time.perf_counter()
                await conn.copy_records_to_table(
                    "ticks",
                    records=records,
                    columns=("instrument_id", "ts", "price", "size", "side", "trade_id"),
                )
                raw_rates.append(N / (time.perf_counter() - started))
        rows_per_s, raw_per_s = max(store_rates), max(raw_rates)
        await bus.stop()
        await db.close()
    finally:
        infra.close()
    print(f"published {N - BATCH} ticks in {publish_s:.2f}s through FeedRunner (bars 1m, acks=all)")
    print(f"store {rows_per_s:,.0f} rows/s, raw COPY {raw_per_s:,.0f} rows/s")
    print(
        f"BENCH marketdata_ingest events_per_s={events_per_s:.0f} rows_per_s={rows_per_s:.0f} "
        f"raw_rows_per_s={raw_per_s:.0f} ratio={rows_per_s / raw_per_s:.2f}"
    )


async def _nowhere(rows: object) -> None:
    """The publish measurement leaves the store out (it is measured on its own below)."""


if __name__ == "__main__":
    asyncio.run(main())
