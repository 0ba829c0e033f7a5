"""The audit log on the real broker and the real Postgres: an order flow logged and chained,
tampering found by verify (with the key, and against the checkpoints), an upgraded unkeyed log,
append-only enforced by privileges and triggers, search, access."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from opentelemetry import propagate, trace
from trademesh_bus import Bus, Retention
from trademesh_db import Database, migrate
from trademesh_events import auth, bots, orders
from trademesh_events.base import Event
from trademesh_events.envelope import Envelope, new_envelope
from trademesh_events.topics import topic_for
from trademesh_keystore import keystore_from
from trademesh_testing.samples import build_sample
from trademesh_testing.waiting import eventually

from trademesh_audit.api.deps import Runtime
from trademesh_audit.app import MIGRATIONS
from trademesh_audit.config import Settings
from trademesh_audit.engine import (
    AuditRow,
    Entry,
    canonical_content,
    canonical_json,
    chain_hash,
    link,
)
from trademesh_audit.keys import ChainKeys
from trademesh_audit.store import WRITER_ROLE, AuditStore, Verification

pytestmark = pytest.mark.integration

T0 = datetime(2031, 3, 1, 12, 0, tzinfo=UTC)
CallerHeaders = Callable[[str | None], dict[str, str]]  # the conftest's caller_headers
Relink = Callable[..., Any]  # the conftest's relink


# ---- helpers --------------------------------------------------------------------------------


@pytest.fixture
async def peer(settings: Settings) -> AsyncIterator[Bus]:
    """The other services' side of the bus: strategy's intents, risk's approvals, execution's
    order events, auth's logins (each envelope names its source)."""
    bus = Bus(settings, "test-peer", telemetry=False)
    await bus.start()
    yield bus
    await bus.stop()


def runtime_of(app: FastAPI) -> Runtime:
    runtime = app.state.runtime
    assert isinstance(runtime, Runtime)
    return runtime


async def publish_as(peer: Bus, event: Event, source: str, traceparent: str) -> Envelope:
    """Publish `event` as `source` would, carrying `traceparent`."""
    spec = topic_for(event)
    envelope = replace(new_envelope(event, source), traceparent=traceparent)
    await peer.publish_raw(spec.name, spec.encode(event), spec.key_of(event), envelope.to_headers())
    return envelope


def entry(
    actor: str = "test-actor",
    action: str = "trademesh.order.intent",
    target: str = "test-order",
    occurred_at: datetime = T0,
) -> Entry:
    return Entry(
        event_id=uuid4(),
        topic="orders.intents.v1",
        action=action,
        actor_kind="user",
        actor=actor,
        target_kind="client_order_id",
        target=target,
        occurred_at=occurred_at,
        trace_id=None,
        event={"type": action, "note": "written by the test"},
    )


async def append(store: AuditStore, item: Entry | None = None) -> AuditRow:
    """Append in a transaction of its own, as a handler would in its delivery's."""
    async with store.db.transaction() as conn:
        row = await store.append(item or entry(), conn)
    assert row is not None
    return row


async def tamper(superuser: asyncpg.Connection, sql: str, *args: Any) -> None:
    """Run `sql` as the superuser with the log's triggers off: a tamperer with full rights."""
    await superuser.execute("ALTER TABLE audit_log DISABLE TRIGGER USER")
    try:
        await superuser.execute(sql, *args)
    finally:
        await superuser.execute("ALTER TABLE audit_log ENABLE TRIGGER USER")


async def search(
    client: httpx.AsyncClient, headers: dict[str, str], **params: Any
) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/audit", params=params, headers=headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


# ---- an order flow --------------------------------------------------------------------------


async def test_an_order_flow_and_a_login_are_logged_and_the_chain_verifies(
    client: httpx.AsyncClient, peer: Bus, caller_headers: CallerHeaders
) -> None:
    admin = caller_headers("admin")
    account, user, bot = uuid4(), uuid4(), uuid4()
    order_id = f"t-{uuid4().hex[:20]}"
    mine = {"account_id": account, "user_id": user, "client_order_id": order_id}
    intent = build_sample(orders.SubmitOrder, **mine, bot_id=bot)
    assert isinstance(intent, orders.SubmitOrder)
    flow: list[tuple[Event, str]] = [
        (intent, "strategy"),
        (build_sample(orders.OrderApproved, account_id=account, order=intent), "risk"),
        (build_sample(orders.OrderSubmitted, **mine), "execution"),
        (build_sample(orders.OrderAccepted, **mine), "execution"),
        (build_sample(orders.OrderFilled, **mine), "execution"),
    ]
    with trace.get_tracer("test").start_as_current_span("place-order") as span:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        order_trace = f"{span.get_span_context().trace_id:032x}"
        sent = [
            await publish_as(peer, event, source, carrier["traceparent"]) for event, source in flow
        ]
    login = build_sample(auth.UserLoggedIn, user_id=user)
    login_trace = uuid4().hex
    login_sent = await publish_as(peer, login, "auth", f"00-{login_trace}-{uuid4().hex[:16]}-01")

    async def logged() -> list[dict[str, Any]] | None:
        items = await search(client, admin, actor=str(user))
        items += await search(client, admin, actor="risk", target=order_id)
        return items if len(items) == len(flow) + 1 else None

    rows = {UUID(item["event_id"]): item for item in await eventually(logged)}
    expected = [
        (sent[0], ("user", str(user)), "client_order_id", order_id, order_trace),
        (sent[1], ("service", "risk"), "client_order_id", order_id, order_trace),
        (sent[2], ("user", str(user)), "client_order_id", order_id, order_trace),
        (sent[3], ("user", str(user)), "client_order_id", order_id, order_trace),
        (sent[4], ("user", str(user)), "client_order_id", order_id, order_trace),
        (login_sent, ("user", str(user)), "user_id", str(user), login_trace),
    ]
    events = [event for event, _ in flow] + [login]
    for (envelope, actor, target_kind, target, trace_id), event in zip(
        expected, events, strict=True
    ):
        row = rows[envelope.id]
        assert (row["actor_kind"], row["actor"]) == actor
        assert (row["action"], row["topic"]) == (envelope.type, topic_for(event).name)
        assert (row["target_kind"], row["target"]) == (target_kind, target)
        assert row["trace_id"] == trace_id
        assert datetime.fromisoformat(row["occurred_at"]) == envelope.time
        assert row["event"] == json.loads(topic_for(event).encode(event))
    # Newest first: the whole order, by its target, in the reverse of the chain's order.
    by_target = await search(client, admin, target=order_id)
    assert [item["seq"] for item in by_target] == sorted(
        (item["seq"] for item in by_target), reverse=True
    )
    assert {UUID(item["event_id"]) for item in by_target} == {e.id for e in sent}

    verified = (await client.get("/api/v1/audit/verify", headers=admin)).json()
    assert verified["ok"] is True
    assert verified["first_broken"] is None
    assert verified["rows"] >= len(expected)


async def test_an_approval_requested_and_decided_are_logged_with_who_and_when(
    client: httpx.AsyncClient, peer: Bus, caller_headers: CallerHeaders
) -> None:
    admin = caller_headers("admin")
    user, bot, approval = uuid4(), uuid4(), uuid4()
    order_id = f"t-{uuid4().hex[:20]}"
    ids = {"approval_id": approval, "bot_id": bot, "user_id": user, "client_order_id": order_id}
    requested = build_sample(bots.ApprovalRequested, **ids)
    approved = build_sample(
        bots.ApprovalDecided, **ids, decision=bots.ApprovalDecision.APPROVED, decided_by=user
    )
    traceparent = f"00-{uuid4().hex}-{uuid4().hex[:16]}-01"
    sent = [await publish_as(peer, e, "strategy", traceparent) for e in (requested, approved)]

    async def logged() -> list[dict[str, Any]] | None:
        items = await search(client, admin, target=order_id)
        return items if len(items) == 2 else None

    rows = {UUID(item["event_id"]): item for item in await eventually(logged)}
    for envelope, event in zip(sent, (requested, approved), strict=True):
        row = rows[envelope.id]
        assert (row["actor_kind"], row["actor"]) == ("user", str(user))
        assert (row["topic"], row["action"]) == ("bots.events.v1", event.type)
        assert datetime.fromisoformat(row["occurred_at"]) == envelope.time
        assert row["event"] == json.loads(topic_for(event).encode(event))
    decided = rows[sent[1].id]["event"]
    assert decided["decided_by"] == str(user) and decided["decision"] == "approved"
    assert datetime.fromisoformat(decided["decided_at"]) == approved.decided_at  # type: ignore[attr-defined]
    assert (await client.get("/api/v1/audit/verify", headers=admin)).json()["ok"] is True


# ---- tampering ------------------------------------------------------------------------------


async def test_an_edited_row_is_reported_as_the_first_broken(
    client: httpx.AsyncClient,
    app: FastAPI,
    superuser: asyncpg.Connection,
    caller_headers: CallerHeaders,
) -> None:
    store = runtime_of(app).store
    rows = [await append(store) for _ in range(3)]
    admin = caller_headers("admin")
    assert (await client.get("/api/v1/audit/verify", headers=admin)).json()["ok"] is True

    edited = rows[1]
    await tamper(superuser, "UPDATE audit_log SET actor = 'mallory' WHERE seq = $1", edited.seq)

    report = (await client.get("/api/v1/audit/verify", headers=admin)).json()
    assert report["ok"] is False
    assert report["rows"] == edited.seq - 1
    broken = report["first_broken"]
    assert (broken["seq"], broken["event_id"], broken["stored_hash"], broken["reason"]) == (
        edited.seq,
        str(edited.event_id),
        edited.hash.hex(),
        "chain",
    )
    # The link the edited row would need is not given out: verify makes no links for anyone.
    assert broken["expected_hash"] is None


async def test_a_deleted_row_breaks_the_chain_at_the_row_after_it(
    client: httpx.AsyncClient,
    app: FastAPI,
    superuser: asyncpg.Connection,
    caller_headers: CallerHeaders,
) -> None:
    store = runtime_of(app).store
    rows = [await append(store) for _ in range(3)]
    await tamper(superuser, "DELETE FROM audit_log WHERE seq = $1", rows[1].seq)
    # Consumers may append meanwhile: the row after the deleted one is whichever comes next.
    after = await superuser.fetchrow(
        "SELECT seq, event_id, hash FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT 1",
        rows[1].seq,
    )
    assert after is not None

    report = (await client.get("/api/v1/audit/verify", headers=caller_headers("admin"))).json()
    assert report["ok"] is False
    assert report["rows"] == rows[1].seq - 1
    broken = report["first_broken"]
    assert (broken["seq"], broken["event_id"], broken["stored_hash"]) == (
        after["seq"],
        str(after["event_id"]),
        bytes(after["hash"]).hex(),
    )
    assert broken["expected_hash"] != broken["stored_hash"]


@pytest.mark.parametrize("drop_key_ids", [False, True], ids=["key-ids-kept", "key-ids-dropped"])
async def test_a_row_rewritten_with_every_later_link_recomputed_without_the_key_is_found(
    client: httpx.AsyncClient,
    peer: Bus,
    relink: Relink,
    caller_headers: CallerHeaders,
    drop_key_ids: bool,
) -> None:
    # Events written through the service: a user's orders, as strategy publishes them.
    admin = caller_headers("admin")
    user = uuid4()
    for _ in range(4):
        order = build_sample(
            orders.SubmitOrder, user_id=user, account_id=uuid4(), client_order_id=uuid4().hex
        )
        await publish_as(peer, order, "strategy", f"00-{uuid4().hex}-{uuid4().hex[:16]}-01")

    async def logged() -> list[dict[str, Any]] | None:
        items = await search(client, admin, actor=str(user))
        return items if len(items) == 4 else None

    seqs = sorted(item["seq"] for item in await eventually(logged))
    assert (await client.get("/api/v1/audit/verify", headers=admin)).json()["ok"] is True

    # As the database superuser: the second order given to someone else, and every link from
    # there to the head recomputed without the key (the formula is public, the key is not).
    forged = await relink(seqs[1], actor="mallory", drop_key_ids=drop_key_ids)
    assert forged[0].seq == seqs[1] and forged[0].actor == "mallory"
    # Self-consistent by the unkeyed formula: before the chain was keyed, verify checked exactly
    # this (each prev_hash the link before, each link SHA-256 over it and the row's content).
    for row in forged:
        assert row.hash == chain_hash(row.prev_hash, canonical_content(row))
    for earlier, later in pairwise(forged):
        assert later.prev_hash == earlier.hash

    report = (await client.get("/api/v1/audit/verify", headers=admin)).json()
    assert report["ok"] is False, report
    assert report["rows"] == seqs[1] - 1
    broken = report["first_broken"]
    assert (broken["seq"], broken["reason"]) == (seqs[1], "key" if drop_key_ids else "chain")
    assert broken["stored_hash"] == forged[0].hash.hex()
    assert broken["expected_hash"] is None  # a keyed link is never given out


async def test_rows_deleted_from_the_end_are_found_by_the_chain_head(
    log: AuditStore, superuser: asyncpg.Connection
) -> None:
    rows = [await append(log) for _ in range(4)]
    assert await log.verify() == Verification(ok=True, rows=4, first_broken=None)
    await tamper(superuser, "DELETE FROM audit_log WHERE seq >= 3")
    result = await log.verify()
    assert (result.ok, result.rows) == (False, 2)
    assert result.first_broken is not None
    broken = result.first_broken
    assert (broken.seq, broken.event_id, broken.expected_hash, broken.stored_hash) == (
        4,
        None,
        rows[3].hash,
        rows[1].hash,
    )
    assert broken.reason == "head"


async def test_verify_walks_a_chain_longer_than_one_batch(log: AuditStore) -> None:
    rows = [await append(log) for _ in range(7)]
    assert await log.verify(batch=3) == Verification(ok=True, rows=7, first_broken=None)
    assert [row.seq for row in rows] == list(range(1, 8))


# ---- an upgraded log: rows from before the chain was keyed ----------------------------------


async def _old_append(db: Database, item: Entry) -> AuditRow:
    """An append as the service did before the chain was keyed: SHA-256 links, no key id."""
    async with db.transaction() as conn:
        head = await conn.fetchrow("SELECT seq, hash FROM chain_head FOR UPDATE")
        assert head is not None
        now = await conn.fetchval("SELECT clock_timestamp()")
        row = link(
            item, seq=head["seq"] + 1, recorded_at=now, prev_hash=bytes(head["hash"]), key=None
        )
        await conn.execute(
            "INSERT INTO audit_log (seq, event_id, topic, action, actor_kind, actor, target_kind, "
            "target, occurred_at, recorded_at, trace_id, event, prev_hash, hash) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            row.seq,
            row.event_id,
            row.topic,
            row.action,
            row.actor_kind,
            row.actor,
            row.target_kind,
            row.target,
            row.occurred_at,
            row.recorded_at,
            row.trace_id,
            canonical_json(dict(row.event)),
            row.prev_hash,
            row.hash,
        )
        await conn.execute("UPDATE chain_head SET seq = $1, hash = $2", row.seq, row.hash)
    return row


@pytest.fixture
async def upgraded(
    database_url: str, schema: str, settings: Settings, tmp_path: Path
) -> AsyncIterator[tuple[AuditStore, list[AuditRow]]]:
    """A log that had three rows before it was keyed: the first migration alone, three appends
    as the code of then made them, then every migration and the first start's key."""
    first = sorted(MIGRATIONS.glob("*.sql"))[0]
    shutil.copy(first, tmp_path / first.name)
    await asyncio.to_thread(migrate, database_url, schema, [tmp_path])
    db = Database(database_url, schema, session_role=WRITER_ROLE)
    await db.connect()
    old = [await _old_append(db, entry()) for _ in range(3)]
    await asyncio.to_thread(migrate, database_url, schema, [MIGRATIONS])
    keystore = keystore_from(settings)
    assert keystore is not None
    keys = ChainKeys(db, keystore)
    await keys.ensure()
    yield AuditStore(db, lambda: keys.keyring), old
    await db.close()


async def test_an_upgraded_log_keeps_its_unkeyed_prefix_and_keys_every_row_after_it(
    upgraded: tuple[AuditStore, list[AuditRow]],
) -> None:
    store, old = upgraded
    new = [await append(store) for _ in range(2)]
    assert [row.key_id is None for row in old] == [True] * 3
    assert all(row.key_id == store.keyring().current for row in new)
    assert new[0].prev_hash == old[-1].hash  # the keyed chain goes on from the unkeyed one
    assert await store.verify() == Verification(ok=True, rows=5, first_broken=None, keyed_from=4)


async def test_after_the_upgrade_an_unkeyed_append_is_refused_as_a_retriable_error(
    upgraded: tuple[AuditStore, list[AuditRow]],
) -> None:
    # A replica still running the code of before: its append fails, and the bus retries it
    # (a serialization failure is transient) rather than dead-lettering the event.
    store, _ = upgraded
    with pytest.raises(asyncpg.SerializationError, match="keyed"):
        await _old_append(store.db, entry())
    assert await store.verify() == Verification(ok=True, rows=3, first_broken=None, keyed_from=4)


async def test_moving_the_keyed_chain_start_by_relinking_rows_unkeyed_is_found(
    upgraded: tuple[AuditStore, list[AuditRow]], relink: Relink
) -> None:
    store, _ = upgraded
    await append(store)
    await append(store)
    await relink(4, drop_key_ids=True)  # rows 4-5 made to look as if from before the keying
    result = await store.verify()
    assert (result.ok, result.rows, result.keyed_from) == (False, 3, 4)
    assert result.first_broken is not None
    assert (result.first_broken.seq, result.first_broken.reason) == (4, "key")


async def test_a_rewritten_unkeyed_prefix_is_found_at_the_first_keyed_row(
    upgraded: tuple[AuditStore, list[AuditRow]], relink: Relink
) -> None:
    # Anyone can recompute unkeyed links, but the first keyed row's link covers the last
    # unkeyed one, and cannot be redone without the key.
    store, _ = upgraded
    await append(store)
    await relink(2, actor="mallory", through=3)
    result = await store.verify()
    assert (result.ok, result.rows) == (False, 3)
    assert result.first_broken is not None
    assert (result.first_broken.seq, result.first_broken.reason) == (4, "chain")
    assert result.first_broken.expected_hash is None


# ---- serialisation and idempotency ----------------------------------------------------------


async def test_concurrent_appends_from_two_replicas_form_one_linear_chain(
    log: AuditStore, database_url: str, schema: str
) -> None:
    other = Database(database_url, schema, max_size=5, session_role=WRITER_ROLE)
    await other.connect()
    try:
        replicas = [log, AuditStore(other, log.keyring)]
        rows = await asyncio.gather(*(append(replicas[n % 2]) for n in range(40)))
    finally:
        await other.close()
    assert sorted(row.seq for row in rows) == list(range(1, 41))
    assert await log.verify() == Verification(ok=True, rows=40, first_broken=None)


async def test_an_event_id_already_logged_adds_nothing(log: AuditStore) -> None:
    item = entry()
    first = await append(log, item)

    async def again() -> AuditRow | None:
        async with log.db.transaction() as conn:
            return await log.append(item, conn)

    # However it comes back (another consumer group, another replica, at the same time).
    assert await asyncio.gather(*(again() for _ in range(5))) == [None] * 5
    assert await log.db.fetchval("SELECT count(*) FROM audit_log") == 1
    assert await log.db.fetchval("SELECT seq FROM chain_head") == first.seq


# ---- append-only ----------------------------------------------------------------------------

CHANGES = (
    "UPDATE audit_log SET actor = 'mallory'",
    "DELETE FROM audit_log",
    "TRUNCATE audit_log",
)


async def test_the_services_own_pool_may_not_change_the_log(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    runtime = runtime_of(app)
    await append(runtime.store)
    assert runtime.db is not None
    assert await runtime.db.fetchval("SELECT current_user") == WRITER_ROLE
    for sql in CHANGES:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await runtime.db.pool.execute(sql)


async def test_the_services_own_pool_prunes_its_inbox_but_not_the_log(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    runtime = runtime_of(app)
    await append(runtime.store)
    assert runtime.db is not None
    await runtime.db.pool.execute(
        "INSERT INTO inbox (consumer, event_id, topic, handled_at) "
        "VALUES ('audit.x', gen_random_uuid(), 'x', now() - interval '30 days')"
    )
    logged = await runtime.db.fetchval("SELECT count(*) FROM audit_log")
    pruned, _ = await Retention(runtime.db).prune_once()  # as the writer role
    assert pruned >= 1
    assert await runtime.db.fetchval("SELECT count(*) FROM audit_log") == logged


async def test_the_triggers_refuse_changes_even_to_a_superuser(
    client: httpx.AsyncClient, app: FastAPI, superuser: asyncpg.Connection
) -> None:
    row = await append(runtime_of(app).store)
    for sql in CHANGES:
        with pytest.raises(asyncpg.RaiseError, match="audit_log is append-only"):
            await superuser.execute(sql)
    assert await superuser.fetchval("SELECT actor FROM audit_log WHERE seq = $1", row.seq) == (
        "test-actor"
    )


# ---- search ---------------------------------------------------------------------------------


@pytest.fixture
async def sample_rows(app: FastAPI, client: httpx.AsyncClient) -> tuple[str, str, list[AuditRow]]:
    """Five rows of one actor of this test's own, an hour apart from T0: actions alternate
    intent / filled, the first three target order A, the last two order B."""
    actor, order_a, order_b = f"actor-{uuid4().hex[:10]}", uuid4().hex, uuid4().hex
    store = runtime_of(app).store
    rows = []
    for n in range(5):
        action = "trademesh.order.intent" if n % 2 == 0 else "trademesh.order.filled"
        target = order_a if n < 3 else order_b
        rows.append(await append(store, entry(actor, action, target, T0 + timedelta(hours=n))))
    return actor, order_b, rows


async def test_search_filters_by_actor_action_target_and_time(
    client: httpx.AsyncClient,
    sample_rows: tuple[str, str, list[AuditRow]],
    caller_headers: CallerHeaders,
) -> None:
    actor, order_b, rows = sample_rows
    admin = caller_headers("admin")

    def seqs(items: list[dict[str, Any]]) -> list[int]:
        return [item["seq"] for item in items]

    newest_first = [row.seq for row in reversed(rows)]
    assert seqs(await search(client, admin, actor=actor)) == newest_first
    filled = await search(client, admin, actor=actor, action="trademesh.order.filled")
    assert seqs(filled) == [rows[3].seq, rows[1].seq]
    assert seqs(await search(client, admin, target=order_b)) == [rows[4].seq, rows[3].seq]
    window = await search(
        client,
        admin,
        actor=actor,
        since=(T0 + timedelta(hours=1)).isoformat(),
        until=(T0 + timedelta(hours=3)).isoformat(),  # exclusive
    )
    assert seqs(window) == [rows[2].seq, rows[1].seq]
    assert await search(client, admin, actor=f"{actor}-nobody") == []


async def test_search_pages_newest_first_by_sequence(
    client: httpx.AsyncClient,
    sample_rows: tuple[str, str, list[AuditRow]],
    caller_headers: CallerHeaders,
) -> None:
    actor, _, rows = sample_rows
    admin = caller_headers("admin")
    pages: list[list[int]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"actor": actor, "limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        page = (await client.get("/api/v1/audit", params=params, headers=admin)).json()
        pages.append([item["seq"] for item in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    seqs = [row.seq for row in reversed(rows)]
    assert pages == [seqs[0:2], seqs[2:4], seqs[4:5]]


BAD_SEARCHES: list[tuple[dict[str, Any], int]] = [
    ({"limit": 501}, 422),
    ({"limit": 0}, 422),
    ({"cursor": "0"}, 400),  # not a cursor the service made
    ({"cursor": "seq-9"}, 400),
    ({"cursor": "x" * 513}, 422),
    ({"since": "2031-03-01T12:00:00"}, 422),  # no timezone
    ({"actor": ""}, 422),
    ({"since": T0.isoformat(), "until": T0.isoformat()}, 400),
]


async def test_bad_search_input_is_a_problem(
    client: httpx.AsyncClient, caller_headers: CallerHeaders
) -> None:
    admin = caller_headers("admin")
    for params, status in BAD_SEARCHES:
        response = await client.get("/api/v1/audit", params=params, headers=admin)
        assert response.status_code == status, (params, response.text)
        assert response.headers["content-type"] == "application/problem+json"


async def test_the_limit_cap_is_500(
    client: httpx.AsyncClient, app: FastAPI, caller_headers: CallerHeaders
) -> None:
    store = runtime_of(app).store
    actor = f"actor-{uuid4().hex[:10]}"
    async with store.db.transaction() as conn:
        for _ in range(501):
            assert await store.append(entry(actor), conn) is not None
    page = (
        await client.get(
            "/api/v1/audit", params={"actor": actor, "limit": 500}, headers=caller_headers("admin")
        )
    ).json()
    assert len(page["items"]) == 500
    assert page["next_cursor"] is not None
    rest = (
        await client.get(
            "/api/v1/audit",
            params={"actor": actor, "limit": 500, "cursor": page["next_cursor"]},
            headers=caller_headers("admin"),
        )
    ).json()
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None
    assert rest["items"][0]["seq"] < page["items"][-1]["seq"]


# ---- access ---------------------------------------------------------------------------------


async def test_only_admins_may_read_the_log(
    client: httpx.AsyncClient, caller_headers: CallerHeaders
) -> None:
    for path in ("/api/v1/audit", "/api/v1/audit/verify"):
        nobody = await client.get(path, headers=caller_headers(None))
        assert nobody.status_code == 401, path
        assert nobody.headers["content-type"] == "application/problem+json"
        for role in ("viewer", "trader"):
            response = await client.get(path, headers=caller_headers(role))
            assert response.status_code == 403, (path, role)
            assert response.headers["content-type"] == "application/problem+json"
        assert (await client.get(path, headers=caller_headers("admin"))).status_code == 200
