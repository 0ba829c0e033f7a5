"""The chain's checkpoints on the real broker and the real Postgres: published signed, read back
from the topic, and what they catch that the keyed chain alone cannot: a whole chain rewritten
with the key itself, or rewritten unkeyed after its keys were destroyed; rows cut below one."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from trademesh_bus import Bus
from trademesh_events.audit import ChainCheckpointed
from trademesh_testing.http import app_client
from trademesh_testing.samples import decoded, read_all
from trademesh_testing.waiting import eventually

from trademesh_audit.api.deps import Runtime
from trademesh_audit.app import create_app
from trademesh_audit.config import Settings
from trademesh_audit.engine import CHECKPOINTS, AuditRow, check_checkpoint
from trademesh_audit.keys import ChainKeys
from trademesh_audit.store import AuditStore
from trademesh_audit.usecases.checkpoints import Checkpointer, HeadMismatch

pytestmark = pytest.mark.integration

CallerHeaders = Callable[[str | None], dict[str, str]]  # the conftest's caller_headers
Append = Callable[[AuditStore], Awaitable[AuditRow]]  # the conftest's append
Relink = Callable[..., Any]  # the conftest's relink


def runtime_of(app: FastAPI) -> Runtime:
    runtime = app.state.runtime
    assert isinstance(runtime, Runtime)
    return runtime


async def verify(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    response = await client.get("/api/v1/audit/verify", headers=headers)
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


async def checkpoint_now(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    response = await client.post("/api/v1/audit/checkpoints", headers=headers)
    assert response.status_code == 201, response.text
    made: dict[str, Any] = response.json()
    return made


async def seen(client: httpx.AsyncClient, headers: dict[str, str], seq: int) -> dict[str, Any]:
    """The verify report once the service has read back a checkpoint of row `seq` or later."""

    async def read_back() -> dict[str, Any] | None:
        report = await verify(client, headers)
        return report if (report["last_checkpoint"] or 0) >= seq else None

    return await eventually(read_back)


@pytest.fixture
async def quiet(chain_keys: ChainKeys, settings: Settings) -> AsyncIterator[Checkpointer]:
    """A checkpointer on a log no consumer appends to (the service's own log takes in every
    event the session's broker holds, so its head moves under a test)."""
    bus = Bus(settings, "test-audit", telemetry=False)
    await bus.start()
    store = AuditStore(chain_keys.db, lambda: chain_keys.keyring)
    yield Checkpointer(store, chain_keys, bus, chain=settings.database_schema)
    await bus.stop()


# ---- publishing -----------------------------------------------------------------------------


async def test_a_checkpoint_on_demand_is_published_signed_and_read_back(
    append: Append,
    client: httpx.AsyncClient,
    app: FastAPI,
    settings: Settings,
    caller_headers: CallerHeaders,
) -> None:
    admin = caller_headers("admin")
    runtime = runtime_of(app)
    row = await append(runtime.store)
    made = await checkpoint_now(client, admin)
    assert made["chain"] == settings.database_schema
    assert made["seq"] >= row.seq
    assert made["key_id"] == runtime.keys.keyring.current

    # On the topic, as anyone can read it, and signed by the log's key.
    def ours(records: list[Any]) -> list[ChainCheckpointed]:
        found = decoded(CHECKPOINTS, records)
        return [c for c in found if c.chain == settings.database_schema]

    async def published() -> list[ChainCheckpointed] | None:
        records = await read_all(settings.kafka_bootstrap, CHECKPOINTS, expect=1)
        return [c for c in ours(records) if c.signature == made["signature"]] or None

    (found,) = await eventually(published)
    stored = await runtime.store.row(found.seq)
    assert stored is not None
    assert check_checkpoint(found, runtime.keys.keyring, stored.hash) is None

    report = await seen(client, admin, made["seq"])
    assert report["ok"] is True, report
    assert report["checkpoints"] >= 1


async def test_the_chain_is_checkpointed_on_its_own_when_it_grows(
    append: Append, settings: Settings, caller_headers: CallerHeaders
) -> None:
    app = create_app(settings.model_copy(update={"checkpoint_interval_s": 0.2}))
    admin = caller_headers("admin")
    async with app_client(app) as client:
        row = await append(runtime_of(app).store)
        report = await seen(client, admin, row.seq)
        assert report["ok"] is True, report


async def test_an_empty_log_has_nothing_to_checkpoint(quiet: Checkpointer) -> None:
    assert await quiet.checkpoint() is None
    assert quiet.last_seq == 0


async def test_a_chain_head_set_by_hand_is_never_checkpointed(
    append: Append, quiet: Checkpointer, superuser: asyncpg.Connection
) -> None:
    await append(quiet.store)
    await superuser.execute("UPDATE chain_head SET hash = $1", b"\x07" * 32)
    with pytest.raises(HeadMismatch, match="does not match the log"):
        await quiet.checkpoint()
    assert quiet.last_seq == 0


# ---- what checkpoints catch -----------------------------------------------------------------


async def test_a_whole_tail_relinked_with_the_key_itself_is_caught_by_the_checkpoint(
    append: Append,
    client: httpx.AsyncClient,
    app: FastAPI,
    relink: Relink,
    caller_headers: CallerHeaders,
) -> None:
    # Someone who has the chain key (it leaked) rewrites the log: a chain that verifies on its
    # own. The checkpoint on the bus still pins the old link.
    admin = caller_headers("admin")
    runtime = runtime_of(app)
    first = await append(runtime.store)
    await append(runtime.store)
    made = await checkpoint_now(client, admin)
    await seen(client, admin, made["seq"])

    await relink(first.seq, actor="mallory", key=runtime.keys.keyring.current_key)

    alone = await runtime.store.verify()  # the walk of the keyed chain, without checkpoints
    assert alone.ok is True
    report = await verify(client, admin)
    assert report["ok"] is False, report
    broken = report["first_broken"]
    assert (broken["seq"], broken["reason"]) == (made["seq"], "checkpoint")
    assert broken["expected_hash"] == made["link"]
    assert broken["stored_hash"] != made["link"]
    assert report["rows"] == made["seq"] - 1


async def test_keys_destroyed_and_the_log_rewritten_unkeyed_are_caught_by_the_checkpoint(
    append: Append,
    settings: Settings,
    superuser: asyncpg.Connection,
    relink: Relink,
    caller_headers: CallerHeaders,
) -> None:
    # A database superuser without the master key: deletes the chain keys, rewrites the whole
    # log with unkeyed links and waits for a restart, which keys the chain afresh after the
    # forged rows. The keyed chain alone then says "all rows before keyed_from are unkeyed".
    admin = caller_headers("admin")
    before = create_app(settings)
    async with app_client(before) as client:
        runtime = runtime_of(before)
        await append(runtime.store)
        made = await checkpoint_now(client, admin)
        old_key = runtime.keys.keyring.current
    await superuser.execute("ALTER TABLE chain_keys DISABLE TRIGGER USER")
    await superuser.execute("DELETE FROM chain_keys")
    await superuser.execute("ALTER TABLE chain_keys ENABLE TRIGGER USER")
    await relink(1, actor="mallory", drop_key_ids=True)

    after = create_app(settings)
    async with app_client(after) as client:
        runtime = runtime_of(after)
        assert runtime.keys.keyring.keyed_from > made["seq"]  # a fresh key, after the forgery
        alone = await runtime.store.verify()
        assert alone.ok is True  # the walk alone is fooled
        report = await seen(client, admin, made["seq"])
        assert report["ok"] is False, report
        assert report["unkeyed_rows"] >= made["seq"]
        broken = report["first_broken"]
        assert broken["reason"] == "checkpoint"
        assert broken["seq"] == made["seq"]
        assert old_key in broken["detail"]


async def test_rows_cut_below_a_checkpoint_are_found(
    append: Append,
    client: httpx.AsyncClient,
    app: FastAPI,
    superuser: asyncpg.Connection,
    caller_headers: CallerHeaders,
) -> None:
    # Rows removed from the end and the chain head set back to the row before: the chain
    # verifies, the checkpoint of a removed row does not (the rows appended since then take the
    # removed rows' places with other links).
    admin = caller_headers("admin")
    runtime = runtime_of(app)
    kept = await append(runtime.store)
    await append(runtime.store)
    made = await checkpoint_now(client, admin)
    await seen(client, admin, made["seq"])
    async with superuser.transaction():
        await superuser.execute("SELECT seq FROM chain_head FOR UPDATE")
        await superuser.execute("ALTER TABLE audit_log DISABLE TRIGGER USER")
        await superuser.execute("DELETE FROM audit_log WHERE seq > $1", kept.seq)
        await superuser.execute("UPDATE chain_head SET seq = $1, hash = $2", kept.seq, kept.hash)
        await superuser.execute("ALTER TABLE audit_log ENABLE TRIGGER USER")

    assert (await runtime.store.verify()).ok is True  # the walk alone is fooled
    report = await verify(client, admin)
    assert report["ok"] is False, report
    broken = report["first_broken"]
    assert broken["reason"] == "checkpoint"
    assert kept.seq < broken["seq"] <= made["seq"]


# ---- access ---------------------------------------------------------------------------------


async def test_only_admins_may_checkpoint(
    client: httpx.AsyncClient, caller_headers: CallerHeaders
) -> None:
    nobody = await client.post("/api/v1/audit/checkpoints", headers=caller_headers(None))
    assert nobody.status_code == 401
    for role in ("trader", "viewer"):
        refused = await client.post("/api/v1/audit/checkpoints", headers=caller_headers(role))
        assert refused.status_code == 403, role
        assert refused.headers["content-type"] == "application/problem+json"
