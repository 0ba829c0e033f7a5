"""Publish -> consume through the bus on the real broker: envelope, keys, trace propagation, DLQ."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from trademesh_bus import Bus, Delivery
from trademesh_events.envelope import Envelope
from trademesh_observability.tracing import configure_tracing
from trademesh_testing.samples import make_tick, read_all

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    configure_tracing("bus-tests", exporter=exporter)
    return exporter


async def test_publish_consume_round_trip_keeps_envelope_key_and_trace(
    service_settings: Any, tick_topic: Any, spans: InMemorySpanExporter
) -> None:
    spec = await tick_topic(partitions=3)
    bus = Bus(service_settings(), "producer-svc")
    got: asyncio.Queue[tuple[Any, Delivery, int]] = asyncio.Queue()

    async def handler(event: Any, delivery: Delivery) -> None:
        consumer_trace = trace.get_current_span().get_span_context().trace_id
        await got.put((event, delivery, consumer_trace))

    bus.subscribe(spec, group=f"g-{uuid.uuid4().hex[:8]}", handler=handler)
    await bus.start()
    try:
        tick = make_tick(1)
        tracer = trace.get_tracer("test")
        with tracer.start_as_current_span("place-order") as span:
            envelope = await bus.publish(tick, topic=spec)
            producer_trace = span.get_span_context().trace_id
        event, delivery, consumer_trace = await asyncio.wait_for(got.get(), 30)
    finally:
        await bus.stop()

    assert event == tick
    assert event.price == tick.price  # Decimal, exactly
    assert delivery.envelope.id == envelope.id
    assert delivery.envelope.type == "trademesh.md.tick"
    assert delivery.envelope.source == "producer-svc"
    assert delivery.envelope.id.version == 7
    assert delivery.key == b"binance:BTC/USDT"
    assert delivery.envelope.traceparent is not None
    assert delivery.envelope.traceparent.split("-")[1] == f"{producer_trace:032x}"
    assert consumer_trace == producer_trace


async def test_same_key_goes_to_one_partition_in_order(
    service_settings: Any, tick_topic: Any
) -> None:
    spec = await tick_topic(partitions=3)
    bus = Bus(service_settings(), "producer-svc", telemetry=False)
    seen: list[tuple[int, str]] = []
    done = asyncio.Event()

    async def handler(event: Any, delivery: Delivery) -> None:
        seen.append((delivery.partition, event.trade_id))
        if len(seen) == 20:
            done.set()

    bus.subscribe(spec, group=f"g-{uuid.uuid4().hex[:8]}", handler=handler)
    await bus.start()
    try:
        await bus.publish_many([make_tick(n) for n in range(20)], topic=spec)
        await asyncio.wait_for(done.wait(), 30)
    finally:
        await bus.stop()
    assert len({p for p, _ in seen}) == 1
    assert [t for _, t in seen] == [f"t{n}" for n in range(20)]


async def test_malformed_messages_go_to_the_dlq_and_the_next_good_one_is_handled(
    service_settings: Any, tick_topic: Any, kafka_bootstrap: str
) -> None:
    spec = await tick_topic(partitions=1)
    bus = Bus(service_settings(), "consumer-svc", telemetry=False)
    handled: asyncio.Queue[Any] = asyncio.Queue()

    async def handler(event: Any, delivery: Delivery) -> None:
        await handled.put(event)

    group = f"g-{uuid.uuid4().hex[:8]}"
    bus.subscribe(spec, group=group, handler=handler)
    await bus.start()
    good_headers = Envelope(
        id=uuid.uuid4(), type="trademesh.md.tick", source="x", time=make_tick().ts
    ).to_headers()
    try:
        # 1: not JSON; 2: JSON breaking the schema (negative price); 3: no envelope; 4: good.
        await bus.publish_raw(spec.name, b"{not json", b"k1", good_headers)
        bad_price = make_tick(2).model_dump(mode="json") | {"price": "-5"}
        import json

        await bus.publish_raw(spec.name, json.dumps(bad_price).encode(), b"k2", good_headers)
        await bus.publish_raw(spec.name, spec.encode(make_tick(3)), b"k3", {})
        await bus.publish(make_tick(4), topic=spec)
        event = await asyncio.wait_for(handled.get(), 30)
    finally:
        await bus.stop()

    assert event.trade_id == "t4"
    assert handled.empty()
    dead = await read_all(kafka_bootstrap, spec.dlq, expect=3)
    assert len(dead) == 3
    reasons = [dict(r.headers)["dlq_reason"].decode() for r in dead]
    assert reasons == ["schema_validation", "schema_validation", "bad_envelope"]
    assert dead[0].value == b"{not json"  # the original bytes, untouched
    assert dead[0].key == b"k1"
    first = {k: v.decode() for k, v in dead[0].headers}
    assert first["dlq_source_topic"] == spec.name
    assert first["dlq_consumer"] == group
    assert first["dlq_offset"] == "0"
    assert "price" in {k: v.decode() for k, v in dead[1].headers}["dlq_error"]
    assert "-5" not in {k: v.decode() for k, v in dead[1].headers}["dlq_error"]  # no input echoed


async def test_a_handler_bug_sends_the_message_to_the_dlq_and_the_consumer_goes_on(
    service_settings: Any, tick_topic: Any, kafka_bootstrap: str
) -> None:
    spec = await tick_topic(partitions=1)
    bus = Bus(service_settings(), "consumer-svc", telemetry=False)
    handled: asyncio.Queue[Any] = asyncio.Queue()

    async def handler(event: Any, delivery: Delivery) -> None:
        if event.trade_id == "t1":
            raise ValueError("strategy bug")
        await handled.put(event)

    bus.subscribe(spec, group=f"g-{uuid.uuid4().hex[:8]}", handler=handler)
    await bus.start()
    try:
        await bus.publish(make_tick(1), topic=spec)
        await bus.publish(make_tick(2), topic=spec)
        event = await asyncio.wait_for(handled.get(), 30)
    finally:
        await bus.stop()
    assert event.trade_id == "t2"
    dead = await read_all(kafka_bootstrap, spec.dlq, expect=1)
    assert [dict(r.headers)["dlq_reason"] for r in dead] == [b"handler_error"]
    assert b"ValueError: strategy bug" in dict(dead[0].headers)["dlq_error"]


async def test_transient_errors_are_retried_in_place(
    service_settings: Any, tick_topic: Any
) -> None:
    spec = await tick_topic(partitions=1)
    bus = Bus(service_settings(kafka_handler_retries=3), "consumer-svc", telemetry=False)
    attempts: list[str] = []
    done = asyncio.Event()

    async def handler(event: Any, delivery: Delivery) -> None:
        attempts.append(event.trade_id)
        if len(attempts) < 3:
            raise ConnectionResetError("database went away")
        done.set()

    bus.subscribe(spec, group=f"g-{uuid.uuid4().hex[:8]}", handler=handler)
    await bus.start()
    try:
        await bus.publish(make_tick(7), topic=spec)
        await asyncio.wait_for(done.wait(), 30)
    finally:
        await bus.stop()
    assert attempts == ["t7", "t7", "t7"]
