"""The chain keys: 32 random bytes each, kept in the service's schema sealed by the keystore's
master key (which the database never holds), opened into this process's memory only.

Each key is sealed with its id and the chain's `keyed_from` as the seal's context (AAD), so a
key row whose `keyed_from` was changed no longer opens, and nobody without the master key can
seal a key of their own. The first replica to start on a log with no key makes one, keyed from
the row after the chain head (an upgraded log keeps its rows before that unkeyed); the chain
head's row lock keeps two replicas from doing it at once and appends from slipping in between.

The newest key that opens links new rows. Rotating adds a key (same `keyed_from`) and keeps the
old ones, which still verify the rows they linked; every replica reloads the keys before each
periodic checkpoint and before a verification, so a rotation reaches the others within one
checkpoint interval (rows linked meanwhile with the old key stay valid).
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg
from pydantic import SecretStr
from trademesh_db import Database
from trademesh_keystore import DecryptionError, Keystore, KeystoreError, SealedSecret
from trademesh_observability.logging import get_logger

from trademesh_audit.engine import KEY_SIZE, ChainKey, Keyring

log = get_logger("trademesh_audit.keys")


def _utc_now() -> datetime:
    return datetime.now(UTC)


def seal_context(key_id: str, keyed_from: int) -> dict[str, str]:
    """The AAD a chain key is sealed and opened with."""
    return {"purpose": "audit-chain-key", "key_id": key_id, "keyed_from": str(keyed_from)}


class ChainKeys:
    """The log's chain keys: made, rotated, and loaded into a `Keyring`."""

    def __init__(
        self, db: Database, keystore: Keystore, *, clock: Callable[[], datetime] = _utc_now
    ) -> None:
        self.db = db
        self.keystore = keystore
        self.clock = clock
        self._keyring: Keyring | None = None
        self._keyed_from: dict[str, int] = {}  # of each opened key, as it was sealed
        self._unopened: set[str] = set()  # ids already reported as not opening

    @property
    def keyring(self) -> Keyring:
        if self._keyring is None:
            raise RuntimeError("the chain keys are not loaded: ensure() first")
        return self._keyring

    async def ensure(self) -> Keyring:
        """At start: the log has a chain key (made now if it has none), and the keys are loaded."""
        async with self.db.transaction() as conn:
            head = await conn.fetchval("SELECT seq FROM chain_head FOR UPDATE")
            if head is None:
                raise RuntimeError("the audit chain head is missing: migrations not applied?")
            if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM chain_keys)"):
                key_id = await self._make(conn, keyed_from=head + 1)
                if head:
                    log.warning(
                        "the audit chain is keyed from now on; the rows before keep unkeyed links",
                        key_id=key_id,
                        keyed_from=head + 1,
                    )
        return await self.load()

    async def rotate(self) -> str:
        """A new chain key, which links new rows from now on; the old ones stay and verify."""
        keyed_from = (await self.load()).keyed_from
        async with self.db.transaction() as conn:
            await conn.execute("SELECT seq FROM chain_head FOR UPDATE")  # one key change at a time
            key_id = await self._make(conn, keyed_from=keyed_from)
        await self.load()
        log.info("audit chain key rotated", key_id=key_id)
        return key_id

    async def load(self) -> Keyring:
        """Open the keys not open yet. A key that does not open (made under another master key,
        or its row changed) is reported once and left out: rows it linked will not verify. If
        no key opens at all, raises KeystoreError (the master key is not the one that sealed
        them)."""
        records = await self.db.pool.fetch(
            "SELECT key_id, sealed_key::text AS sealed_key, keyed_from FROM chain_keys "
            "ORDER BY created_at, key_id"
        )
        keys = dict(self._keyring.keys) if self._keyring is not None else {}
        newest: str | None = None
        for record in records:
            key_id = record["key_id"]
            if key_id not in keys:
                opened = await self._open(key_id, record["sealed_key"], record["keyed_from"])
                if opened is None:
                    continue
                keys[key_id] = opened
                self._keyed_from[key_id] = record["keyed_from"]
            newest = key_id
        if newest is None and self._keyring is not None:
            # The rows of the keys this process opened are gone: keep verifying with them.
            log.error("the audit chain keys this process uses are missing from the log")
            newest = self._keyring.current
        if newest is None:
            raise KeystoreError(
                "no chain key of the audit log opens with the configured master key"
                if records
                else "the audit log has no chain key: ensure() makes one"
            )
        starts = {self._keyed_from[key_id] for key_id in keys}
        if len(starts) != 1:
            raise RuntimeError(f"the chain keys disagree on where the keyed chain begins: {starts}")
        self._keyring = Keyring(keys=keys, current=newest, keyed_from=starts.pop())
        return self._keyring

    async def _open(self, key_id: str, sealed: str, keyed_from: int) -> ChainKey | None:
        try:
            record = SealedSecret.from_json(sealed)
            secret = await asyncio.to_thread(
                self.keystore.open, record, aad=seal_context(key_id, keyed_from)
            )
            key = ChainKey(key_id, base64.b64decode(secret.get_secret_value(), validate=True))
        except (DecryptionError, ValueError):
            if key_id not in self._unopened:
                self._unopened.add(key_id)
                log.error("an audit chain key does not open; rows it linked fail", key_id=key_id)
            return None
        return key

    async def _make(self, conn: asyncpg.Connection, *, keyed_from: int) -> str:
        key_id = f"{self.clock():%Y%m%d}-{secrets.token_hex(4)}"
        secret = SecretStr(base64.b64encode(secrets.token_bytes(KEY_SIZE)).decode("ascii"))
        sealed = await asyncio.to_thread(
            self.keystore.seal, secret, aad=seal_context(key_id, keyed_from)
        )
        await conn.execute(
            "INSERT INTO chain_keys (key_id, sealed_key, keyed_from) VALUES ($1, $2::jsonb, $3)",
            key_id,
            sealed.to_json(),
            keyed_from,
        )
        return key_id
