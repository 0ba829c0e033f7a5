"""The chain keys on the real Postgres: made once and sealed, opened only with the master key
and the context they were sealed with, rotated, append-only."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from trademesh_keystore import Keystore, KeystoreError, LocalMasterKeys, new_master_key

from trademesh_audit.api.deps import Runtime
from trademesh_audit.engine import AuditRow
from trademesh_audit.keys import ChainKeys
from trademesh_audit.store import AuditStore

pytestmark = pytest.mark.integration

CallerHeaders = Callable[[str | None], dict[str, str]]  # the conftest's caller_headers
Append = Callable[[AuditStore], Awaitable[AuditRow]]  # the conftest's append


def another_master_key() -> Keystore:
    return Keystore(LocalMasterKeys({"other": new_master_key()}, current="other"))


async def test_the_first_start_makes_one_sealed_key_that_every_replica_shares(
    chain_keys: ChainKeys, superuser: asyncpg.Connection
) -> None:
    # Replicas starting together: one key, made by the first, opened by all.
    replicas = [ChainKeys(chain_keys.db, chain_keys.keystore) for _ in range(3)]
    rings = await asyncio.gather(*(replica.ensure() for replica in replicas))
    assert {ring.current for ring in rings} == {chain_keys.keyring.current}
    assert [ring.keyed_from for ring in rings] == [1, 1, 1]
    stored = await superuser.fetch("SELECT key_id, sealed_key::text AS sealed FROM chain_keys")
    assert len(stored) == 1
    # What the database holds is the sealed record: neither the key nor its encoding.
    secret = chain_keys.keyring.current_key.secret
    sealed = stored[0]["sealed"]
    for form in (secret.hex(), base64.b64encode(secret).decode(), secret.decode("latin-1")):
        assert form not in sealed
    assert set(json.loads(sealed)) == {"version", "key_id", "wrapped_key", "nonce", "ciphertext"}


async def test_without_the_master_key_no_chain_key_opens(chain_keys: ChainKeys) -> None:
    stranger = ChainKeys(chain_keys.db, another_master_key())
    with pytest.raises(KeystoreError, match="no chain key of the audit log opens"):
        await stranger.load()
    # ...and ensure() does not make one of its own next to it: the log has a key.
    with pytest.raises(KeystoreError):
        await stranger.ensure()


async def test_a_key_row_whose_keyed_from_was_changed_no_longer_opens(
    chain_keys: ChainKeys, superuser: asyncpg.Connection
) -> None:
    # Moving the start of the keyed chain (to pass rewritten rows off as unkeyed) breaks the
    # seal: keyed_from is part of the context the key was sealed with.
    await superuser.execute("ALTER TABLE chain_keys DISABLE TRIGGER USER")
    await superuser.execute("UPDATE chain_keys SET keyed_from = 100")
    await superuser.execute("ALTER TABLE chain_keys ENABLE TRIGGER USER")
    with pytest.raises(KeystoreError, match="no chain key of the audit log opens"):
        await ChainKeys(chain_keys.db, chain_keys.keystore).load()


async def test_a_rotated_key_links_new_rows_and_the_old_one_still_verifies(
    append: Append, chain_keys: ChainKeys, log: AuditStore
) -> None:
    old = chain_keys.keyring.current
    before = [await append(log) for _ in range(2)]
    new = await chain_keys.rotate()
    after = [await append(log) for _ in range(2)]
    assert new != old
    assert [row.key_id for row in before + after] == [old, old, new, new]
    result = await log.verify()
    assert (result.ok, result.rows, result.keyed_from) == (True, 4, 1)
    # Another replica, started after the rotation, opens both and links with the new one.
    other = ChainKeys(chain_keys.db, chain_keys.keystore)
    ring = await other.ensure()
    assert (ring.current, set(ring.keys)) == (new, {old, new})


async def test_an_admin_rotates_the_key_over_http(
    append: Append, client: httpx.AsyncClient, app: FastAPI, caller_headers: CallerHeaders
) -> None:
    runtime = app.state.runtime
    assert isinstance(runtime, Runtime)
    old = runtime.keys.keyring.current
    response = await client.post("/api/v1/audit/keys/rotate", headers=caller_headers("admin"))
    assert response.status_code == 201, response.text
    assert response.json() == {"key_id": runtime.keys.keyring.current}
    assert runtime.keys.keyring.current != old
    row = await append(runtime.store)
    assert row.key_id == runtime.keys.keyring.current
    for role in ("trader", "viewer"):
        refused = await client.post("/api/v1/audit/keys/rotate", headers=caller_headers(role))
        assert refused.status_code == 403
        assert refused.headers["content-type"] == "application/problem+json"


async def test_the_chain_keys_are_append_only(
    chain_keys: ChainKeys, superuser: asyncpg.Connection
) -> None:
    for sql in ("UPDATE chain_keys SET keyed_from = 2", "DELETE FROM chain_keys"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await chain_keys.db.pool.execute(sql)
    for sql in (
        "UPDATE chain_keys SET keyed_from = 2",
        "DELETE FROM chain_keys",
        "TRUNCATE chain_keys",
    ):
        with pytest.raises(asyncpg.RaiseError, match="chain_keys is append-only"):
            await superuser.execute(sql)
    assert await superuser.fetchval("SELECT count(*) FROM chain_keys") == 1


async def test_a_chain_key_never_reaches_the_logs_or_the_api(
    append: Append,
    client: httpx.AsyncClient,
    app: FastAPI,
    caller_headers: CallerHeaders,
    caplog: pytest.LogCaptureFixture,
) -> None:
    runtime = app.state.runtime
    assert isinstance(runtime, Runtime)
    await client.post("/api/v1/audit/keys/rotate", headers=caller_headers("admin"))
    await append(runtime.store)
    admin = caller_headers("admin")
    answers = [
        (await client.get(path, headers=admin)).text
        for path in ("/api/v1/audit", "/api/v1/audit/verify")
    ]
    for key in runtime.keys.keyring.keys.values():
        for form in (key.secret.hex(), base64.b64encode(key.secret).decode()):
            assert not any(form in text for text in answers)
            assert form not in caplog.text
