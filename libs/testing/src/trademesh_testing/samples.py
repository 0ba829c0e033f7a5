"""Sample events and Kafka reading helpers shared by the test suites."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from trademesh_events.marketdata import Tick


def make_tick(n: int = 0, instrument: str = "binance:BTC/USDT") -> Tick:
    """A valid Tick whose price and trade id follow `n`."""
    return Tick(
        instrument_id=instrument,
        ts=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        price=Decimal("43000.10") + n,
        size=Decimal("0.005"),
        side="buy",
        trade_id=f"t{n}",
    )


async def read_all(bootstrap: str, topic: str, *, expect: int, timeout: float = 20.0) -> list[Any]:
    """Every record of `topic` from the beginning, waiting (up to `timeout`) for `expect` of them."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        assigned = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        records: list[Any] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for part in batch.values():
                records.extend(part)
            if len(records) >= expect and not batch:
                break
        return records
    finally:
        await consumer.stop()
