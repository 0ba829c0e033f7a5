"""Batches on the real broker and Postgres: one transaction and one offset commit per batch, a
failing record isolated from its batch, duplicates in a batch, several topics on one consumer."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from trademesh_bus import Bus, Delivery, Route
from trademesh_db import Database
from trademesh_events.envelope import Envelope
from trademesh_testing.samples import committed_offset, make_tick, read_all
from trademesh_testing.waiting import eventually

pytestmark = pytest.mark.integration


async def _published(service_settings: Any, spec: Any, count: int) -> list[Any]:
    """`count` ticks on `spec`, all there before a consumer starts (so it takes them at once)."""
    producer = Bus(service_settings(), "producer", telemetry=False)
    await producer.start()
    try:
        return [await producer.publish(make_tick(n), topic=spec) for n in range(count)]
    finally:
        await producer.stop()


async def test_a_batch_is_handled_in_one_transaction_and_its_offsets_committed_together(
    db: Database, service_settings: Any, tick_topic: Any, kafka_bootstrap: str
) -> None:
    spec = await tick_topic(partitions=1)
    await _published(service_settings, spec, 20)
    transactions: list[int] = []

    async def handler(event: Any, delivery: Delivery) -> None:
        assert delivery.conn is not None
        transactions.append(await delivery.conn.fetchval("SELECT txid_current()"))
        await delivery.conn.execute(
            "INSERT INTO applied VALUES ($1, $2)", delivery.envelope.id, event.trade_id
        )

    group = f"g-{uuid.uuid4().hex[:8]}"
    bus = Bus(service_settings(), "batch-svc", telemetry=False)
    bus.subscribe(spec, group=group, handler=handler, db=db)
    await bus.start()
    try:
        assert await eventually(
            lambda: _is(committed_offset(kafka_bootstrap, group, spec.name), 20)
        )
    finally:
        await bus.stop()
    assert len(transactions) == 20
    assert len(set(transactions)) < 20  # records shared transactions: batches, not one each
    assert await db.pool.fetchval("SELECT count(DISTINCT trade_id) FROM applied") == 20
    assert await db.pool.fetchval("SELECT count(*) FROM inbox WHERE consumer = $1", group) == 20


async def test_a_failing_record_goes_to_the_dlq_and_the_rest_of_its_batch_is_applied_once(
    db: Database, service_settings: Any, tick_topic: Any, kafka_bootstrap: str
) -> None:
    spec = await tick_topic(partitions=1)
    envelopes = await _published(service_settings, spec, 10)
    calls: list[str] = []

    async def handler(event: Any, delivery: Delivery) -> None:
        calls.append(event.trade_id)
        assert delivery.conn is not None
        await delivery.conn.execute(
            "INSERT INTO applied VALUES ($1, $2)", delivery.envelope.id, event.trade_id
        )
        if event.trade_id == "t5":
            raise ValueError("strategy bug")

    group = f"g-{uuid.uuid4().hex[:8]}"
    bus = Bus(service_settings(), "batch-svc", telemetry=False)
    bus.subscribe(spec, group=group, handler=handler, db=db)
    await bus.start()
    try:
        assert await eventually(
            lambda: _is(committed_offset(kafka_bootstrap, group, spec.name), 10)
        )
    finally:
        await bus.stop()
    dead = await read_all(kafka_bootstrap, spec.dlq, expect=1)
    assert [dict(r.headers)["ce_id"].decode() for r in dead] == [str(envelopes[5].id)]
    assert [dict(r.headers)["dlq_reason"] for r in dead] == [b"handler_error"]
    applied = await db.pool.fetch("SELECT trade_id FROM applied ORDER BY trade_id")
    assert sorted(r["trade_id"] for r in applied) == sorted(f"t{n}" for n in range(10) if n != 5)
    assert await db.pool.fetchval("SELECT count(*) FROM inbox WHERE consumer = $1", group) == 9
    assert calls.count("t5") == 2  # in its batch, then alone; never more
    assert len(calls) > 10  # its batch mates ran again alone after the batch rolled back


async def test_an_event_twice_in_one_batch_is_applied_once(
    db: Database, service_settings: Any, tick_topic: Any, kafka_bootstrap: str
) -> None:
    spec = await tick_topic(partitions=1)
    producer = Bus(service_settings(), "producer", telemetry=False)
    await producer.start()
    try:
        event = make_tick(1)
        envelope = await producer.publish(event, topic=spec)
        # The outbox relay republishes a row after a crash: same event id, same bytes.
        await producer.publish_raw(
            spec.name, spec.encode(event), spec.key_of(event), envelope.to_headers()
        )
    finally:
        await producer.stop()
    calls: list[uuid.UUID] = []

    async def handler(_event: Any, delivery: Delivery) -> None:
        calls.append(delivery.envelope.id)

    group = f"g-{uuid.uuid4().hex[:8]}"
    bus = Bus(service_settings(), "batch-svc", telemetry=False)
    bus.subscribe(spec, group=group, handler=handler, db=db)
    await bus.start()
    try:
        assert await eventually(lambda: _is(committed_offset(kafka_bootstrap, group, spec.name), 2))
    finally:
        await bus.stop()
    assert calls == [envelope.id]


@pytest.mark.parametrize("form", ["mapping", "routes"])
async def test_one_consumer_reads_several_topics_each_with_its_handler(
    service_settings: Any, tick_topic: Any, form: str
) -> None:
    """The topics and their handlers given as a mapping, or as Routes (the typed form)."""
    first, second = await tick_topic(partitions=1), await tick_topic(partitions=2)
    seen: dict[str, list[str]] = {first.name: [], second.name: []}

    def handler_of(topic: str) -> Any:
        async def handler(event: Any, delivery: Delivery) -> None:
            assert delivery.topic == topic
            seen[topic].append(event.trade_id)

        return handler

    bus = Bus(service_settings(), "multi-svc", telemetry=False)
    handlers = {first: handler_of(first.name), second: handler_of(second.name)}
    bus.subscribe_many(
        handlers if form == "mapping" else [Route(t, h) for t, h in handlers.items()],
        group=f"g-{uuid.uuid4().hex[:8]}",
    )
    assert len(bus.broker.subscribers) == 1
    await bus.start()
    try:
        await bus.publish(make_tick(1), topic=first)
        await bus.publish(make_tick(2), topic=second)
        await bus.publish(make_tick(3), topic=first)
        assert await eventually(lambda: _true(sum(map(len, seen.values())) == 3))
    finally:
        await bus.stop()
    assert seen == {first.name: ["t1", "t3"], second.name: ["t2"]}


async def _is(value: Any, expected: Any) -> bool:
    return await value == expected


async def _true(value: bool) -> bool:
    await asyncio.sleep(0)
    return value


async def test_a_batch_handler_gets_the_whole_batch_once_and_a_bad_record_alone(
    db: Database, service_settings: Any, tick_topic: Any, kafka_bootstrap: str
) -> None:
    spec = await tick_topic(partitions=1)
    envelopes = await _published(service_settings, spec, 8)
    sizes: list[int] = []

    async def handler(received: list[tuple[Any, Delivery]], conn: Any) -> None:
        sizes.append(len(received))
        assert conn is not None
        await conn.execute(  # set-wise: the batch's rows in one statement
            "INSERT INTO applied SELECT * FROM unnest($1::uuid[], $2::text[])",
            [delivery.envelope.id for _, delivery in received],
            [event.trade_id for event, _ in received],
        )
        if any(event.trade_id == "t3" for event, _ in received):
            raise ValueError("strategy bug")

    group = f"g-{uuid.uuid4().hex[:8]}"
    bus = Bus(service_settings(), "batch-svc", telemetry=False)
    bus.subscribe_batches([spec], group=group, handler=handler, db=db)
    await bus.start()
    try:
        assert await eventually(lambda: _is(committed_offset(kafka_bootstrap, group, spec.name), 8))
    finally:
        await bus.stop()
    dead = await read_all(kafka_bootstrap, spec.dlq, expect=1)
    assert [dict(r.headers)["ce_id"].decode() for r in dead] == [str(envelopes[3].id)]
    applied = await db.pool.fetch("SELECT trade_id FROM applied")
    assert sorted(r["trade_id"] for r in applied) == sorted(f"t{n}" for n in range(8) if n != 3)
    assert sizes[0] == 8  # the batch, then each record alone after it failed
    assert sizes[1:] == [1] * 8


async def test_a_poison_record_of_a_batch_delivered_again_is_dead_lettered_once(
    db: Database, service_settings: Any, tick_topic: Any, kafka_bootstrap: str
) -> None:
    """The malformed record leaves its batch for the DLQ before the batch is handled; the batch
    then fails transiently, is not committed and comes again: the DLQ still has one copy."""
    spec = await tick_topic(partitions=1)
    producer = Bus(service_settings(), "producer", telemetry=False)
    await producer.start()
    try:
        await producer.publish(make_tick(0), topic=spec)
        headers = Envelope(
            id=uuid.uuid4(), type="trademesh.md.tick", source="x", time=make_tick().ts
        ).to_headers()
        await producer.publish_raw(spec.name, b"{not json", b"k", headers)
        await producer.publish(make_tick(1), topic=spec)
    finally:
        await producer.stop()
    attempts: list[str] = []

    async def handler(event: Any, delivery: Delivery) -> None:
        attempts.append(event.trade_id)
        if len(attempts) == 1:
            raise ConnectionError("the database went away for a moment")

    group = f"g-{uuid.uuid4().hex[:8]}"
    bus = Bus(service_settings(kafka_handler_retries=0), "batch-svc", telemetry=False)
    bus.subscribe(spec, group=group, handler=handler, db=db)
    await bus.start()
    try:
        assert await eventually(lambda: _is(committed_offset(kafka_bootstrap, group, spec.name), 3))
    finally:
        await bus.stop()
    assert attempts[0] == "t0" and attempts.count("t0") == 2  # the batch came again
    dead = await read_all(kafka_bootstrap, spec.dlq, expect=1)
    assert [r.value for r in dead] == [b"{not json"]
