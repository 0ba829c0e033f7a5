"""The outbox relay publishes at once after a commit; the retention prunes what is done."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from trademesh_bus import Bus, OutboxRelay, Outgoing, Retention
from trademesh_db import Database
from trademesh_events.marketdata import Tick
from trademesh_testing.samples import make_tick, read_all

pytestmark = pytest.mark.integration

_LOCK = "SELECT pg_advisory_xact_lock(hashtext('trademesh.outbox.' || current_schema()))"


async def _running(relay: OutboxRelay) -> tuple[asyncio.Task[None], asyncio.Event]:
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    await asyncio.sleep(0.3)  # its first pass found nothing; it waits for a wake-up now
    return task, stop


async def test_a_commit_that_wrote_events_wakes_the_relay_at_once(
    db: Database, service_settings: Any, tick_topic: Any, kafka_bootstrap: str
) -> None:
    sink = await tick_topic(partitions=1)
    bus = Bus(service_settings(), "relay-svc", telemetry=False)
    await bus.start()
    relay = OutboxRelay(db, bus, poll_interval=30)  # the poll cannot be what publishes
    task, stop = await _running(relay)
    try:
        committed = time.monotonic()
        async with db.transaction() as conn:
            await bus.outbox.add(conn, make_tick(1), topic=sink)
        out = await asyncio.wait_for(read_all(kafka_bootstrap, sink.name, expect=1), 10)
        waited = time.monotonic() - committed
    finally:
        stop.set()
        await task
        await bus.stop()
    assert len(out) == 1
    assert waited < 5  # read_all's own polling included; the poll interval is 30 s
    assert await db.pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0


async def test_a_rolled_back_transaction_neither_wakes_the_relay_nor_is_remembered(
    db: Database, service_settings: Any
) -> None:
    bus = Bus(service_settings(), "relay-svc", telemetry=False)
    relay = OutboxRelay(db, bus, poll_interval=30)
    with pytest.raises(RuntimeError):
        async with db.transaction() as conn:
            await bus.outbox.add(conn, make_tick(1))
            raise RuntimeError("business rule failed")
    assert not relay._wake.is_set()
    assert not bus.outbox._written  # nothing left behind for a later connection to inherit
    async with db.transaction() as conn:
        await conn.execute("SELECT 1")  # a transaction that wrote no event
    assert not relay._wake.is_set()
    async with db.transaction() as conn:
        await bus.outbox.add(conn, make_tick(2))
    assert relay._wake.is_set()


async def test_add_many_writes_events_in_their_order_with_their_traces_and_wakes_the_relay(
    db: Database, service_settings: Any, tick_topic: Any, kafka_bootstrap: str
) -> None:
    """A batch's events in one statement: stored in the order given, each under its own
    traceparent, published in that order, and the commit wakes the relay as add() does."""
    sink = await tick_topic(partitions=1)
    bus = Bus(service_settings(), "relay-svc", telemetry=False)
    await bus.start()
    relay = OutboxRelay(db, bus, poll_interval=30)
    task, stop = await _running(relay)
    traces = [f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01" for _ in range(3)]
    try:
        async with db.transaction() as conn:
            assert await bus.outbox.add_many(conn, []) == []
            envelopes = await bus.outbox.add_many(
                conn,
                [
                    Outgoing(make_tick(n), topic=sink, traceparent=trace)
                    for n, trace in zip((5, 3, 4), traces, strict=True)
                ],
            )
        out = await asyncio.wait_for(read_all(kafka_bootstrap, sink.name, expect=3), 10)
    finally:
        stop.set()
        await task
        await bus.stop()
    stored = await db.pool.fetch(
        "SELECT event_id, headers->>'traceparent' AS trace FROM outbox ORDER BY seq"
    )
    assert [(r["event_id"], r["trace"]) for r in stored] == [
        (e.id, trace) for e, trace in zip(envelopes, traces, strict=True)
    ]
    assert [dict(r.headers)["ce_id"].decode() for r in out] == [str(e.id) for e in envelopes]


async def test_a_relay_locked_out_by_another_replica_publishes_when_the_lock_is_freed(
    db: Database, service_settings: Any, tick_topic: Any, kafka_bootstrap: str
) -> None:
    """Another replica's pass that began before this commit holds the lock: this relay tries
    again shortly instead of leaving the event for its poll (30 s here)."""
    sink = await tick_topic(partitions=1)
    bus = Bus(service_settings(), "relay-svc", telemetry=False)
    await bus.start()
    relay = OutboxRelay(db, bus, poll_interval=30)
    task, stop = await _running(relay)
    try:
        async with db.transaction() as other_replica:
            await other_replica.execute(_LOCK)
            async with db.transaction() as conn:
                await bus.outbox.add(conn, make_tick(3), topic=sink)
            await asyncio.sleep(0.3)  # the woken relay is locked out meanwhile
            assert await read_all(kafka_bootstrap, sink.name, expect=0, timeout=0.2) == []
        out = await asyncio.wait_for(read_all(kafka_bootstrap, sink.name, expect=1), 10)
    finally:
        stop.set()
        await task
        await bus.stop()
    assert len(out) == 1


async def test_retention_deletes_old_inbox_ids_and_old_published_rows_only(db: Database) -> None:
    old, recent = uuid.uuid4(), uuid.uuid4()
    await db.pool.execute(
        "INSERT INTO inbox (consumer, event_id, topic, handled_at) VALUES "
        "('g', $1, 't', now() - interval '8 days'), ('g', $2, 't', now() - interval '6 days')",
        old,
        recent,
    )
    rows = [  # (published how long ago, or never; created long ago either way)
        ("published_old", "now() - interval '2 days'"),
        ("published_recent", "now() - interval '1 hour'"),
        ("pending_old", "NULL"),
    ]
    for name, published in rows:
        await db.pool.execute(
            "INSERT INTO outbox (event_id, topic, key, headers, payload, created_at, published_at) "
            f"VALUES (gen_random_uuid(), $1, NULL, '{{}}', '\\x00', now() - interval '3 days', "
            f"{published})",
            name,
        )
    retention = Retention(db, inbox_keep=timedelta(days=7), outbox_keep=timedelta(days=1), chunk=1)
    assert await retention.prune_once() == (1, 1)
    inbox = {r["event_id"] for r in await db.pool.fetch("SELECT event_id FROM inbox")}
    outbox = {r["topic"] for r in await db.pool.fetch("SELECT topic FROM outbox")}
    assert inbox == {recent}
    assert outbox == {"published_recent", "pending_old"}  # never a row not yet published
    assert await retention.prune_once() == (0, 0)


async def test_add_many_stores_a_batch_in_one_statement_each_event_with_or_without_a_trace(
    db: Database, service_settings: Any
) -> None:
    bus = Bus(service_settings(), "relay-svc", telemetry=False)
    relay = OutboxRelay(db, bus, poll_interval=30)
    ticks = [make_tick(n, instrument=f"test:T{n % 3}/USDT") for n in range(50)]
    traces = [f"00-{uuid.uuid4().hex}-{'1' * 16}-01" if n % 2 else None for n in range(50)]
    seen: list[Any] = []
    async with db.transaction() as conn:
        assert await bus.outbox.add_many(conn, []) == []
        # asyncpg looks up the array types on a connection's first use of them: not counted
        await conn.execute("SELECT $1::uuid[], $2::bytea[], $3::text[]", [], [], [])
        conn.add_query_logger(seen.append)
        envelopes = await bus.outbox.add_many(
            conn, [Outgoing(t, traceparent=trace) for t, trace in zip(ticks, traces, strict=True)]
        )
        conn.remove_query_logger(seen.append)
    await asyncio.sleep(0)  # the query logger is told on the next turn of the loop
    assert len(seen) == 1
    assert relay._wake.is_set()  # its commit wakes the relay, as add()'s does
    rows = await db.pool.fetch(
        "SELECT event_id, topic, key, headers, payload FROM outbox ORDER BY seq"
    )
    assert [r["event_id"] for r in rows] == [e.id for e in envelopes]
    assert [r["key"] for r in rows] == [t.instrument_id.encode() for t in ticks]
    assert [Tick.model_validate_json(r["payload"]) for r in rows] == ticks
    assert {r["topic"] for r in rows} == {"md.ticks.v1"}
    for row, trace in zip(rows, traces, strict=True):
        headers = json.loads(row["headers"])
        assert headers["ce_id"] == str(row["event_id"])
        assert headers.get("traceparent") == trace  # none of the caller's: telemetry is off
