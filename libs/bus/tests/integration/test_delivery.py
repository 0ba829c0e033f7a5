"""Delivery guarantees on the real broker and Postgres: crash before commit, inbox, outbox."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from trademesh_bus import Bus, Delivery, OutboxRelay
from trademesh_db import Database
from trademesh_testing.samples import committed_offset, make_tick, read_all

pytestmark = pytest.mark.integration

PROCS = Path(__file__).parent / "procs"


def _env(infra: Any) -> dict[str, str]:
    from trademesh_testing.plugin import TEST_CONSUMER_SETTINGS

    env = {**os.environ, **infra.service_env()}
    env.update({f"TRADEMESH_{k.upper()}": str(v) for k, v in TEST_CONSUMER_SETTINGS.items()})
    return env


async def _wait_for(predicate: Any, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.1)
    raise TimeoutError("condition not met")


@pytest.mark.parametrize("crash", ["before_db_commit", "after_db_commit"])
async def test_consumer_killed_before_offset_commit_gets_the_message_again_and_applies_it_once(
    crash: str,
    infra: Any,
    db: Database,
    schema: str,
    service_settings: Any,
    tick_topic: Any,
    tmp_path: Path,
) -> None:
    spec = await tick_topic(partitions=1)
    producer = Bus(service_settings(), "producer", telemetry=False)
    await producer.start()
    # Published before the consumer starts, so it takes them as a batch (one transaction).
    envelopes = [await producer.publish(make_tick(n), topic=spec) for n in range(1, 6)]
    await producer.stop()

    group = f"g-{uuid.uuid4().hex[:8]}"
    argv = [
        sys.executable, str(PROCS / "crash_consumer.py"), "--topic", spec.name, "--group", group,
        "--schema", schema, "--marker", str(tmp_path / "crashed"),
    ]  # fmt: skip
    first = subprocess.Popen([*argv, "--crash", crash], env=_env(infra))
    assert first.wait(timeout=60) == -9  # SIGKILL, as planned
    assert (tmp_path / "crashed").exists()
    assert (
        await committed_offset(infra.kafka_bootstrap, group, spec.name) is None
    )  # nothing committed

    second = subprocess.Popen([*argv, "--crash", "none"], env=_env(infra))
    try:
        await _wait_for(lambda: _committed_is(infra.kafka_bootstrap, group, spec.name, 5))
    finally:
        second.terminate()
        second.wait(timeout=30)

    ids = [e.id for e in envelopes]
    deliveries = await db.pool.fetchval(
        "SELECT count(*) FROM deliveries WHERE event_id = ANY($1::uuid[])", ids
    )
    applied = await db.pool.fetch(
        "SELECT trade_id FROM applied WHERE event_id = ANY($1::uuid[]) ORDER BY trade_id", ids
    )
    # Every state change happened exactly once.
    assert [r["trade_id"] for r in applied] == ["t1", "t2", "t3", "t4", "t5"]
    # The second run consumed the messages again (the offset moved from none to 5). Killed after
    # the batch's transaction committed, the inbox skipped every redelivery before a handler
    # ran; killed in the batch's first handler, the batch rolled back and all five ran again.
    assert deliveries == (5 if crash == "after_db_commit" else 6)
    assert (
        await db.pool.fetchval("SELECT count(*) FROM inbox WHERE event_id = ANY($1::uuid[])", ids)
        == 5
    )


async def _committed_is(bootstrap: str, group: str, topic: str, offset: int) -> bool:
    return await committed_offset(bootstrap, group, topic) == offset


async def test_outbox_rolled_back_publishes_nothing(
    db: Database, service_settings: Any, tick_topic: Any, kafka_bootstrap: str
) -> None:
    spec = await tick_topic(partitions=1)
    bus = Bus(service_settings(), "outbox-svc", telemetry=False)
    await bus.start()
    try:
        with pytest.raises(RuntimeError):
            async with db.transaction() as conn:
                await conn.execute("INSERT INTO applied VALUES (gen_random_uuid(), 'state')")
                await bus.outbox.add(conn, make_tick(1), topic=spec)
                raise RuntimeError("business rule failed")
        assert await OutboxRelay(db, bus).relay_once() == 0
    finally:
        await bus.stop()
    assert await db.pool.fetchval("SELECT count(*) FROM outbox") == 0
    assert await read_all(kafka_bootstrap, spec.name, expect=0, timeout=1.0) == []


async def test_outbox_survives_a_relay_crash_between_publish_and_mark_and_inbox_applies_once(
    infra: Any, db: Database, schema: str, service_settings: Any, tick_topic: Any
) -> None:
    spec = await tick_topic(partitions=1)
    bus = Bus(service_settings(), "outbox-svc", telemetry=False)
    async with db.transaction() as conn:
        envelope = await bus.outbox.add(conn, make_tick(5), topic=spec)

    crashed = subprocess.run(
        [sys.executable, str(PROCS / "crash_relay.py"), schema],
        env=_env(infra),
        timeout=60,
        check=False,
    )
    assert crashed.returncode == -9
    published = await read_all(infra.kafka_bootstrap, spec.name, expect=1)
    assert len(published) == 1  # it reached the broker...
    assert (
        await db.pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 1
    )  # ...unmarked

    await bus.start()
    try:
        assert await OutboxRelay(db, bus).relay_once() == 1  # the restarted relay sends it again
        assert await db.pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0
        published = await read_all(infra.kafka_bootstrap, spec.name, expect=2)
        ids = {dict(r.headers)["ce_id"].decode() for r in published}
        assert len(published) == 2 and ids == {str(envelope.id)}  # at least once, same event id

        group = f"g-{uuid.uuid4().hex[:8]}"
        calls: list[str] = []

        async def handler(event: Any, delivery: Delivery) -> None:
            calls.append(event.trade_id)
            assert delivery.conn is not None
            await delivery.conn.execute(
                "INSERT INTO applied (event_id, trade_id) VALUES ($1, $2)",
                delivery.envelope.id,
                event.trade_id,
            )

        consumer = Bus(service_settings(), "inbox-svc", telemetry=False)
        consumer.subscribe(spec, group=group, handler=handler, db=db)
        await consumer.start()
        try:
            await _wait_for(lambda: _committed_is(infra.kafka_bootstrap, group, spec.name, 2))
        finally:
            await consumer.stop()
    finally:
        await bus.stop()
    assert calls == ["t5"]  # the duplicate never reached the handler
    assert (
        await db.pool.fetchval("SELECT count(*) FROM applied WHERE event_id = $1", envelope.id) == 1
    )


async def test_outbox_event_emitted_in_a_handler_transaction_is_relayed(
    db: Database, service_settings: Any, tick_topic: Any, kafka_bootstrap: str
) -> None:
    source = await tick_topic(partitions=1)
    sink = await tick_topic(partitions=1)
    bus = Bus(service_settings(), "pipeline-svc", telemetry=False)

    async def handler(event: Any, delivery: Delivery) -> None:
        assert delivery.conn is not None and delivery.outbox is not None
        await delivery.outbox.add(
            delivery.conn, event.model_copy(update={"trade_id": "derived"}), topic=sink
        )

    bus.subscribe(source, group=f"g-{uuid.uuid4().hex[:8]}", handler=handler, db=db)
    await bus.start()
    stop = asyncio.Event()
    relay = asyncio.create_task(OutboxRelay(db, bus, poll_interval=0.2).run(stop))
    try:
        await bus.publish(make_tick(9), topic=source)
        out = await read_all(kafka_bootstrap, sink.name, expect=1)
    finally:
        stop.set()
        await relay
        await bus.stop()
    assert len(out) == 1
    assert b'"trade_id":"derived"' in out[0].value
    assert dict(out[0].headers)["ce_source"] == b"pipeline-svc"


async def test_relay_keeps_rows_when_the_broker_is_unreachable(
    db: Database, service_settings: Any
) -> None:
    from trademesh_infra.ports import free_port

    dead = Bus(service_settings(kafka_bootstrap=f"127.0.0.1:{free_port()}", kafka_publish_retries=0,
                                kafka_request_timeout_ms=1000), "svc", telemetry=False)  # fmt: skip
    async with db.transaction() as conn:
        await dead.outbox.add(conn, make_tick(1))
    with pytest.raises(Exception):  # noqa: B017, PT011 - any connection error; the point is below
        await OutboxRelay(db, dead).relay_once()
    assert await db.pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 1


async def test_a_commit_during_a_relay_pass_is_relayed_without_waiting_for_the_poll(
    db: Database, service_settings: Any, tick_topic: Any, kafka_bootstrap: str
) -> None:
    """The wake-up of a commit that lands while a pass is publishing starts the next pass at once;
    with a 30 s poll interval, a wake-up lost to the pass would hold the event for 30 s."""
    sink = await tick_topic(partitions=1)
    bus = Bus(service_settings(), "relay-svc", telemetry=False)
    committed_during_pass = asyncio.Event()

    class CommitDuringPass(OutboxRelay):
        async def _after_publish(self, rows: list[Any]) -> None:
            if not committed_during_pass.is_set():
                async with db.transaction() as conn:  # another transaction commits meanwhile
                    await bus.outbox.add(conn, make_tick(2), topic=sink)
                committed_during_pass.set()
                await asyncio.sleep(0.2)  # its wake-up comes while this pass still runs

    await bus.start()
    async with db.transaction() as conn:
        await bus.outbox.add(conn, make_tick(1), topic=sink)
    stop = asyncio.Event()
    relay = asyncio.create_task(CommitDuringPass(db, bus, poll_interval=30).run(stop))
    try:
        out = await asyncio.wait_for(read_all(kafka_bootstrap, sink.name, expect=2), 10)
    finally:
        stop.set()
        await relay
        await bus.stop()
    assert committed_during_pass.is_set()
    assert [b'"trade_id":"t1"' in out[0].value, b'"trade_id":"t2"' in out[1].value] == [True, True]
