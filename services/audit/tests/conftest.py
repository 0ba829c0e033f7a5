"""Fixtures of the audit tests: settings on the test engines, the running app (the HTTP client
on it, `client`, and a publisher, `producer`, are the trademesh pytest plugin's).

The engines come from the trademesh pytest plugin (trademesh_testing): a real Postgres and a real
Kafka-protocol broker, started once per session and only when a test asks for them.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Literal

import asyncpg
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from trademesh_db import Database, migrate
from trademesh_keystore import keystore_from, new_master_key
from trademesh_testing.plugin import SettingsMaker
from trademesh_testing.tokens import bearer

from trademesh_audit.app import MIGRATIONS, create_app
from trademesh_audit.config import Settings
from trademesh_audit.engine import (
    GENESIS_HASH,
    AuditRow,
    ChainKey,
    Entry,
    canonical_content,
    chain_hash,
)
from trademesh_audit.keys import ChainKeys
from trademesh_audit.store import WRITER_ROLE, AuditStore

Role = Literal["admin", "trader", "viewer"]
CallerHeaders = Callable[[Role | None], dict[str, str]]


@pytest.fixture(scope="session")
def keystore() -> dict[str, Any]:
    """A local master key for the chain keys, made for the session."""
    return {
        "keystore_keys": SecretStr(json.dumps({"t1": new_master_key().get_secret_value()})),
        "keystore_current_key": "t1",
    }


@pytest.fixture
def settings(make_settings: SettingsMaker, schema: str, keystore: dict[str, Any]) -> Settings:
    """Settings on the session's engines, with a consumer group and a schema of this test's own
    (which also names the chain in its checkpoints), and the session's master key."""
    return make_settings(Settings, database_schema=schema, **keystore)


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
def caller_headers() -> CallerHeaders:
    """The request headers naming an API caller of `role` (None: no caller at all).

    The only place the tests say who calls: a change of how callers are named (headers, bearer
    tokens) changes this function and nothing else. Each call names a new user.
    """

    def headers(role: Role | None) -> dict[str, str]:
        return {} if role is None else bearer(uuid.uuid4(), role=role)

    return headers


@pytest.fixture
async def chain_keys(
    database_url: str, schema: str, settings: Settings
) -> AsyncIterator[ChainKeys]:
    """The chain keys of a migrated schema with no service running on it (its first key made),
    through a pool set up as the service's (the writer role)."""
    await asyncio.to_thread(migrate, database_url, schema, [MIGRATIONS])
    db = Database(database_url, schema, session_role=WRITER_ROLE)
    await db.connect()
    keystore = keystore_from(settings)
    assert keystore is not None
    keys = ChainKeys(db, keystore)
    await keys.ensure()
    yield keys
    await db.close()


@pytest.fixture
def log(chain_keys: ChainKeys) -> AuditStore:
    """The log alone, with no consumer appending to it: for tests that need to know every row."""
    return AuditStore(chain_keys.db, lambda: chain_keys.keyring)


@pytest.fixture
async def superuser(database_url: str, schema: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection as the tests' login user (a superuser, not the service's writer role), with
    the test's schema first on its search_path: what an operator with full rights could do."""
    conn = await asyncpg.connect(database_url, server_settings={"search_path": schema})
    try:
        yield conn
    finally:
        await conn.close()


Relink = Callable[..., Awaitable[list[AuditRow]]]


@pytest.fixture
def relink(superuser: asyncpg.Connection) -> Relink:
    """`await relink(from_seq, actor=None, key=None, drop_key_ids=False, through=None)`: what
    a database superuser can do to the log, returning the rows as rewritten.

    In one transaction that holds the chain head (so that no append slips in), with the log's
    triggers off: row `from_seq` given `actor` (if given), and every link from there to row
    `through` (default: the head) recomputed over the rows as they now read, from the link
    before `from_seq`: with `key` (a ChainKey, as someone who stole it would), or else with the
    unkeyed formula (SHA-256, as anyone without the key can), the rows' key ids kept or dropped
    (`drop_key_ids`); then, when the rewrite went to the head, the head moved to the new link.
    """

    async def rewrite(
        from_seq: int,
        *,
        actor: str | None = None,
        key: ChainKey | None = None,
        drop_key_ids: bool = False,
        through: int | None = None,
    ) -> list[AuditRow]:
        rewritten: list[AuditRow] = []
        async with superuser.transaction():
            await superuser.execute("SELECT seq FROM chain_head FOR UPDATE")
            await superuser.execute("ALTER TABLE audit_log DISABLE TRIGGER USER")
            before = await superuser.fetchval(
                "SELECT hash FROM audit_log WHERE seq = $1", from_seq - 1
            )
            prev = bytes(before) if before is not None else GENESIS_HASH
            records = await superuser.fetch(
                f"SELECT {COLUMNS} FROM audit_log WHERE seq >= $1 ORDER BY seq",
                from_seq,
            )
            for record in records:
                row = row_of(record)
                if row.seq == from_seq and actor is not None:
                    row = replace(row, actor=actor)
                key_id = key.key_id if key else None if drop_key_ids else row.key_id
                row = replace(row, prev_hash=prev, key_id=key_id)
                content = canonical_content(row)
                link = key.link(prev, content) if key else chain_hash(prev, content)
                row = replace(row, hash=link)
                await superuser.execute(
                    "UPDATE audit_log SET actor = $2, key_id = $3, prev_hash = $4, hash = $5 "
                    "WHERE seq = $1",
                    row.seq,
                    row.actor,
                    row.key_id,
                    row.prev_hash,
                    row.hash,
                )
                rewritten.append(row)
                prev = link
            if through is None:
                await superuser.execute("UPDATE chain_head SET hash = $1", prev)
            await superuser.execute("ALTER TABLE audit_log ENABLE TRIGGER USER")
        return rewritten

    return rewrite


COLUMNS = (
    "seq, event_id, topic, action, actor_kind, actor, target_kind, target, occurred_at, "
    "recorded_at, trace_id, event, prev_hash, hash, key_id"
)


def row_of(record: asyncpg.Record) -> AuditRow:
    """A row of the log as the tests read it with COLUMNS."""
    values = dict(record)
    values["event"] = json.loads(values["event"])
    values["prev_hash"] = bytes(values["prev_hash"])
    values["hash"] = bytes(values["hash"])
    return AuditRow(**values)


async def _append(store: AuditStore) -> AuditRow:
    item = Entry(
        event_id=uuid.uuid4(),
        topic="orders.intents.v1",
        action="trademesh.order.intent",
        actor_kind="user",
        actor="test-actor",
        target_kind=None,
        target=None,
        occurred_at=datetime(2031, 3, 1, 12, 0, tzinfo=UTC),
        trace_id=None,
        event={"type": "trademesh.order.intent", "note": "written by the test"},
    )
    async with store.db.transaction() as conn:
        row = await store.append(item, conn)
    assert row is not None
    return row


@pytest.fixture
def append() -> Callable[[AuditStore], Awaitable[AuditRow]]:
    """`await append(store)`: one order intent's row written to the log, as the consumer would."""
    return _append
