"""The access tokens' signing keys: Ed25519, kept in auth's schema with the private key sealed by
the keystore, published as a JWKS, rotated with overlap.

The newest key that is not retired signs. Rotating makes a new key and retires the one before:
a retired key stays in the JWKS until every token it signed has expired (the access TTL and a
minute of clock leeway), then leaves it, so services stop accepting it. Every replica reloads
the keys every `refresh` (another replica may have rotated them); the first replica to start
with no key makes one (an advisory lock keeps two from doing it at once).
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import SecretStr
from trademesh_db import Database
from trademesh_keystore import Keystore, SealedSecret

from trademesh_auth.engine import AccessClaims

LEEWAY = timedelta(minutes=1)


@dataclass(frozen=True)
class SigningKey:
    kid: str
    public_jwk: dict[str, Any]
    created_at: datetime
    retired_at: datetime | None


class SigningKeys:
    def __init__(
        self,
        db: Database,
        keystore: Keystore,
        *,
        clock: Callable[[], datetime],
        access_ttl: timedelta,
    ) -> None:
        self.db = db
        self.keystore = keystore
        self.clock = clock
        self.access_ttl = access_ttl
        self._keys: list[SigningKey] = []
        self._current: tuple[str, Ed25519PrivateKey] | None = None

    @staticmethod
    def _aad(kid: str) -> dict[str, str]:
        return {"purpose": "access-token-signing", "kid": kid}

    async def _make(self, conn: Any) -> None:
        private = Ed25519PrivateKey.generate()
        kid = f"{self.clock():%Y%m%d}-{secrets.token_hex(4)}"
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        sealed = await asyncio.to_thread(self.keystore.seal, SecretStr(pem), aad=self._aad(kid))
        public = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(private.public_key()))
        public.update(kid=kid, use="sig", alg="EdDSA")
        await conn.execute(
            "INSERT INTO signing_keys (kid, private_key, public_jwk, created_at) "
            "VALUES ($1, $2::jsonb, $3::jsonb, $4)",
            kid,
            sealed.to_json(),
            json.dumps(public),
            self.clock(),
        )

    async def ensure(self) -> None:
        """At start: a key exists (made now if none), and is loaded."""
        async with self.db.transaction() as conn:
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('auth-signing-keys'))")
            if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM signing_keys)"):
                await self._make(conn)
        await self.load()

    async def rotate(self) -> str:
        """A new signing key; the current one retires (it still verifies, see the docstring)."""
        async with self.db.transaction() as conn:
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('auth-signing-keys'))")
            await conn.execute(
                "UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL", self.clock()
            )
            await self._make(conn)
        await self.load()
        assert self._current is not None
        return self._current[0]

    async def load(self) -> None:
        rows = await self.db.pool.fetch(
            "SELECT kid, private_key::text AS private_key, public_jwk::text AS public_jwk, "
            "created_at, retired_at FROM signing_keys ORDER BY created_at"
        )
        keys = [
            SigningKey(r["kid"], json.loads(r["public_jwk"]), r["created_at"], r["retired_at"])
            for r in rows
        ]
        active = [r for r in rows if r["retired_at"] is None]
        if not active:
            raise RuntimeError("no active signing key")
        newest = active[-1]
        if self._current is None or self._current[0] != newest["kid"]:
            pem = await asyncio.to_thread(
                self.keystore.open,
                SealedSecret.from_json(newest["private_key"]),
                aad=self._aad(newest["kid"]),
            )
            private = serialization.load_pem_private_key(pem.get_secret_value().encode(), None)
            assert isinstance(private, Ed25519PrivateKey)
            self._current = (newest["kid"], private)
        self._keys = keys

    async def run(self, stop: asyncio.Event, every: float) -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), every)
            except TimeoutError:
                await self.load()

    def jwks(self) -> dict[str, Any]:
        """The public keys that verify: the current ones, and retired ones whose tokens may
        still be alive."""
        now = self.clock()
        keep = self.access_ttl + LEEWAY
        return {
            "keys": [
                k.public_jwk
                for k in self._keys
                if k.retired_at is None or now - k.retired_at < keep
            ]
        }

    def sign(self, claims: AccessClaims) -> str:
        if self._current is None:
            raise RuntimeError("signing keys not loaded")
        kid, private = self._current
        return jwt.encode(
            claims.to_jwt(), private, algorithm="EdDSA", headers={"kid": kid, "typ": "at+jwt"}
        )
