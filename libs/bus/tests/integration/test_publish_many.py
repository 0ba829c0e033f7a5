"""The bulk publish path (aiokafka record batches) on the real broker."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from trademesh_bus import Bus, Delivery, PublishError
from trademesh_bus.bus import NewTrace
from trademesh_observability.metrics import REGISTRY
from trademesh_observability.tracing import configure_tracing
from trademesh_testing.samples import make_tick, read_all

pytestmark = pytest.mark.integration

INSTRUMENTS = ["binance:BTC/USDT", "binance:ETH/USDT", "kraken:XBT/EUR", "paper:ACME"]


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    configure_tracing("bus-tests", exporter=exporter)
    return exporter


def _ticks(n: int) -> list[Any]:
    base = make_tick(0)
    return [
        base.model_copy(
            update={
                "instrument_id": INSTRUMENTS[i % len(INSTRUMENTS)],
                "trade_id": f"t{i}",
                "ts": base.ts + timedelta(milliseconds=i),
            }
        )
        for i in range(n)
    ]


async def test_batches_keep_keys_partitions_order_envelopes_and_trace(
    service_settings: Any, tick_topic: Any, spans: InMemorySpanExporter
) -> None:
    spec = await tick_topic(partitions=3)
    # A tiny batch size forces many record batches per partition within one call.
    bus = Bus(service_settings(kafka_max_batch_size=1024), "md-svc", registry=REGISTRY)
    seen: list[tuple[Any, Delivery, int]] = []
    done = asyncio.Event()
    total = 200

    async def handler(event: Any, delivery: Delivery) -> None:
        seen.append((event, delivery, trace.get_current_span().get_span_context().trace_id))
        if len(seen) == total + len(INSTRUMENTS):
            done.set()

    bus.subscribe(spec, group=f"g-{uuid.uuid4().hex[:8]}", handler=handler)
    await bus.start()
    published_before = _sample("trademesh_bus_published_total", service="md-svc", topic=spec.name)
    try:
        events = _ticks(total)
        with trace.get_tracer("test").start_as_current_span("ingest") as parent:
            envelopes = await bus.publish_many(events, topic=spec)
        # publish() afterwards: each key must land in the partition publish_many chose.
        singles = [
            await bus.publish(
                make_tick(1000 + i).model_copy(update={"instrument_id": inst}), topic=spec
            )
            for i, inst in enumerate(INSTRUMENTS)
        ]
        await asyncio.wait_for(done.wait(), 60)
    finally:
        await bus.stop()

    assert len(envelopes) == total
    assert len({e.id for e in envelopes}) == total
    by_id = {d.envelope.id: (event, d, tid) for event, d, tid in seen}
    assert set(by_id) == {e.id for e in envelopes} | {e.id for e in singles}
    for event, envelope in zip(events, envelopes, strict=True):
        got, delivery, consumer_trace = by_id[envelope.id]
        assert got == event
        assert delivery.key == event.instrument_id.encode()
        assert delivery.envelope.type == "trademesh.md.tick"
        assert delivery.envelope.source == "md-svc"
        assert consumer_trace == parent.get_span_context().trace_id

    partitions: dict[str, set[int]] = {}
    order: dict[str, list[str]] = {}
    for event, delivery, _ in seen:
        partitions.setdefault(event.instrument_id, set()).add(delivery.partition)
        order.setdefault(event.instrument_id, []).append(event.trade_id)
    assert all(len(p) == 1 for p in partitions.values()), partitions
    for instrument in INSTRUMENTS:
        batch_ids = [t for t in order[instrument] if int(t[1:]) < total]
        assert batch_ids == sorted(batch_ids, key=lambda t: int(t[1:]))

    batch_spans = [s for s in spans.get_finished_spans() if s.name == f"{spec.name} send"]
    assert batch_spans, [s.name for s in spans.get_finished_spans()]
    attrs = batch_spans[-1].attributes or {}
    assert attrs["messaging.batch.message_count"] == total
    assert batch_spans[-1].parent is not None
    assert batch_spans[-1].parent.span_id == parent.get_span_context().span_id
    published_after = _sample("trademesh_bus_published_total", service="md-svc", topic=spec.name)
    assert published_after - published_before == total + len(INSTRUMENTS)


async def test_an_event_larger_than_a_batch_is_refused_and_the_others_are_published(
    service_settings: Any, tick_topic: Any, kafka_bootstrap: str
) -> None:
    spec = await tick_topic(partitions=1)
    bus = Bus(service_settings(kafka_max_request_size=4096), "md-svc", telemetry=False)
    await bus.start()
    labels = {"service": "md-svc", "topic": spec.name}
    errors_before = _sample("trademesh_bus_publish_errors_total", **labels)
    published_before = _sample("trademesh_bus_published_total", **labels)
    try:
        # model_copy skips validation: the bus must guard the size of whatever it is given.
        big = make_tick(1).model_copy(update={"trade_id": "x" * 5000})
        with pytest.raises(PublishError) as caught:
            await bus.publish_many([make_tick(0), big, make_tick(2)], topic=spec)
    finally:
        await bus.stop()
    assert (caught.value.failed, caught.value.total) == (1, 3)
    assert "exceeds kafka_max_request_size (4096)" in str(caught.value.__cause__)
    assert _sample("trademesh_bus_publish_errors_total", **labels) - errors_before == 1
    assert _sample("trademesh_bus_published_total", **labels) - published_before == 2
    records = await read_all(kafka_bootstrap, spec.name, expect=2)
    assert [spec.decode(r.value).trade_id for r in records] == ["t0", "t2"]


@pytest.mark.parametrize("mode", ["each", "batch"])
async def test_a_feed_s_events_start_traces_of_their_own_linked_to_the_caller(
    service_settings: Any, tick_topic: Any, spans: InMemorySpanExporter, mode: NewTrace
) -> None:
    spec = await tick_topic(partitions=2)
    bus = Bus(service_settings(), "md-svc", registry=REGISTRY)
    seen: dict[str, int] = {}
    done = asyncio.Event()
    total = 6

    async def handler(event: Any, delivery: Delivery) -> None:
        seen[event.trade_id] = trace.get_current_span().get_span_context().trace_id
        if len(seen) == total:
            done.set()

    bus.subscribe(spec, group=f"g-{uuid.uuid4().hex[:8]}", handler=handler)
    await bus.start()
    try:
        with trace.get_tracer("test").start_as_current_span("start the feed") as feed:
            await bus.publish_many(_ticks(total), topic=spec, new_trace=mode)
        await asyncio.wait_for(done.wait(), 60)
    finally:
        await bus.stop()

    feed_trace = feed.get_span_context().trace_id
    assert feed_trace not in seen.values()
    finished = spans.get_finished_spans()
    (send,) = [s for s in finished if s.name == f"{spec.name} send"]  # a topic of this test's
    assert send.context is not None
    if mode == "batch":
        # One new trace for the call: a root span linked to the caller's.
        assert send.parent is None
        assert [link.context.span_id for link in send.links] == [feed.get_span_context().span_id]
        assert set(seen.values()) == {send.context.trace_id}
    else:
        # A trace per event, each started by a root span linked to the call's span.
        assert len(set(seen.values())) == total
        roots = {
            s.context.trace_id: s
            for s in finished
            if s.name == f"{spec.name} publish" and s.context is not None
        }
        for trace_id in seen.values():
            root = roots[trace_id]
            assert root.parent is None
            assert [link.context.span_id for link in root.links] == [send.context.span_id]


def _sample(name: str, **labels: str) -> float:
    value = REGISTRY.get_sample_value(name, labels)
    return value or 0.0
