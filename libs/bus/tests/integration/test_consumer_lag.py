"""trademesh_bus_consumer_lag on the real broker: what a consumer has not read yet, per partition,
and the consumer-side counters that exist from the subscription on."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from trademesh_bus import Bus, Delivery
from trademesh_bus.bus import DLQ_REASONS
from trademesh_observability.metrics import REGISTRY
from trademesh_testing.samples import make_tick
from trademesh_testing.waiting import eventually

pytestmark = pytest.mark.integration


def lag(service: str, topic: str, partition: int) -> float | None:
    return REGISTRY.get_sample_value(
        "trademesh_bus_consumer_lag",
        {"service": service, "topic": topic, "partition": str(partition)},
    )


async def test_lag_counts_what_a_stuck_handler_has_not_read_and_drops_to_zero(
    service_settings: Any, tick_topic: Any
) -> None:
    spec = await tick_topic(partitions=1)
    service = f"lag-{uuid.uuid4().hex[:8]}"
    producer = Bus(service_settings(), "producer", telemetry=False)
    await producer.start()
    try:
        for n in range(5):  # one batch each: the broker's end offset is exact
            await producer.publish(make_tick(n), topic=spec)
    finally:
        await producer.stop()

    release = asyncio.Event()
    handled: list[int] = []

    async def handler(_event: Any, delivery: Delivery) -> None:
        await release.wait()
        handled.append(delivery.offset)

    bus = Bus(service_settings(), service, lag_interval=0.2)
    bus.subscribe(spec, group=f"g-{uuid.uuid4().hex[:8]}", handler=handler)
    assert {
        REGISTRY.get_sample_value(
            "trademesh_bus_dlq_total", {"service": service, "topic": spec.name, "reason": reason}
        )
        for reason in DLQ_REASONS
    } == {0.0}, "every dead-letter reason is counted from 0"
    await bus.start()
    try:
        # The handler holds the batch of all five (they were there before the consumer
        # started): none of them is handled, so all five are the lag.
        assert await eventually(lambda: _equals(lag(service, spec.name, 0), 5.0))
        release.set()
        assert await eventually(lambda: _equals(lag(service, spec.name, 0), 0.0))
        assert handled == [0, 1, 2, 3, 4]
    finally:
        await bus.stop()
    assert lag(service, spec.name, 0) is None, "a stopped consumer holds no partition"


async def _equals(value: float | None, expected: float) -> bool:
    return value == expected
