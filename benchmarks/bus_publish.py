"""Bus publish throughput against raw aiokafka with pre-serialised bytes, on the embedded broker.

Both sides publish the same N events to the same 6-partition topic with the same producer
settings (acks=all, linger 5 ms, 256 KiB batches) and wait for every acknowledgement. The raw
side gets its keys, bytes and CloudEvents headers prepared before the clock starts and sends
them one `send()` per message in windows of WINDOW, as an application using aiokafka directly
would. The bus side starts from event objects and does everything a service does, in windows of
WINDOW events per `Bus.publish_many` call: JSON encoding, envelope with a UUIDv7 id, the
topic's key rule, one OpenTelemetry producer span per call with its traceparent on every
message, Prometheus counters, and aiokafka record batches per partition.

A third figure is `Bus.publish()` one event at a time, each awaited until acknowledged (the
order-flow path, through FastStream's telemetry and Prometheus middlewares): its rate and p99
latency, over SINGLE_N events.

Last line: BENCH bus_publish bus_per_s=... raw_per_s=... ratio=... single_per_s=...
single_p99_ms=...   (target: ratio >= 0.7)
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from aiokafka import AIOKafkaProducer
from trademesh_bus import Bus
from trademesh_config import KafkaSettings
from trademesh_events.envelope import new_envelope
from trademesh_events.marketdata import Tick
from trademesh_events.topics import MD_TICKS, get_topic
from trademesh_infra.topics import ensure_topics, topic_plan
from trademesh_observability.metrics import REGISTRY
from trademesh_observability.tracing import configure_tracing
from trademesh_testing.infra import start_embedded

N = int(os.environ.get("BENCH_N", "100000"))
SINGLE_N = int(os.environ.get("BENCH_SINGLE_N", "2000"))
WINDOW = 2000
INSTRUMENTS = [f"bench:SYM{i}/USD" for i in range(12)]


def make_events(n: int) -> list[Tick]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        Tick(
            instrument_id=INSTRUMENTS[i % len(INSTRUMENTS)],
            ts=start + timedelta(milliseconds=i),
            price=Decimal("100.00") + Decimal(i % 500) / 100,
            size=Decimal("1.5"),
            side="buy" if i % 2 else "sell",
            trade_id=str(i),
        )
        for i in range(n)
    ]


async def raw_publish(bootstrap: str, topic: str, events: list[Tick]) -> float:
    spec = get_topic(MD_TICKS)
    prepared = []
    for event in events:
        headers = [(k, v.encode()) for k, v in new_envelope(event, "bench").to_headers().items()]
        prepared.append((spec.key_of(event), spec.encode(event), headers))
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=False,
        linger_ms=5,
        max_batch_size=262144,
    )
    await producer.start()
    try:
        started = time.perf_counter()
        for offset in range(0, len(prepared), WINDOW):
            futures = [
                await producer.send(topic, value=value, key=key, headers=headers)
                for key, value, headers in prepared[offset : offset + WINDOW]
            ]
            await asyncio.gather(*futures)
        return len(prepared) / (time.perf_counter() - started)
    finally:
        await producer.stop()


async def bus_publish(bootstrap: str, events: list[Tick]) -> float:
    settings = KafkaSettings(kafka_bootstrap=bootstrap, kafka_idempotence=False, kafka_linger_ms=5)
    bus = Bus(settings, "bench", registry=REGISTRY)
    await bus.start()
    try:
        started = time.perf_counter()
        for offset in range(0, len(events), WINDOW):
            await bus.publish_many(events[offset : offset + WINDOW])
        return len(events) / (time.perf_counter() - started)
    finally:
        await bus.stop()


async def bus_publish_single(bootstrap: str, events: list[Tick]) -> tuple[float, float]:
    settings = KafkaSettings(kafka_bootstrap=bootstrap, kafka_idempotence=False, kafka_linger_ms=0)
    bus = Bus(settings, "bench", registry=REGISTRY)
    await bus.start()
    latencies: list[float] = []
    try:
        started = time.perf_counter()
        for event in events:
            sent = time.perf_counter()
            await bus.publish(event)
            latencies.append(time.perf_counter() - sent)
        rate = len(events) / (time.perf_counter() - started)
    finally:
        await bus.stop()
    latencies.sort()
    return rate, latencies[int(len(latencies) * 0.99) - 1] * 1000


async def main() -> None:
    configure_tracing("bench")  # as a service runs: spans recorded, exported only if OTLP is set
    infra = start_embedded()
    try:
        await ensure_topics(infra.kafka_bootstrap, topic_plan())
        events = make_events(N)
        # Warm both paths (connections, metadata) before measuring.
        await raw_publish(infra.kafka_bootstrap, MD_TICKS, events[:2000])
        await bus_publish(infra.kafka_bootstrap, events[:2000])
        raw = await raw_publish(infra.kafka_bootstrap, MD_TICKS, events)
        bus = await bus_publish(infra.kafka_bootstrap, events)
        single, p99 = await bus_publish_single(infra.kafka_bootstrap, events[:SINGLE_N])
    finally:
        infra.close()
    print(f"events: {N}, window: {WINDOW}, partitions: {get_topic(MD_TICKS).partitions}")
    print(f"raw aiokafka (pre-serialised): {raw:,.0f} events/s")
    print(f"trademesh bus:                {bus:,.0f} events/s")
    print(f"bus publish() one at a time:  {single:,.0f} events/s, p99 {p99:.2f} ms")
    print(
        f"BENCH bus_publish bus_per_s={bus:.0f} raw_per_s={raw:.0f} ratio={bus / raw:.2f} "
        f"single_per_s={single:.0f} single_p99_ms={p99:.2f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
