"""Where auth keeps users, refresh tokens, API keys and failed logins: its own schema.

Methods that change state take the caller's connection, so that the change and the events it
causes (outbox) commit together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg
from trademesh_db import Database

from trademesh_auth.engine import Failures, Role


@dataclass(frozen=True)
class User:
    user_id: UUID
    email: str
    password_hash: str
    role: Role
    status: str  # pending | active | disabled
    created_at: datetime
    #: Carried by every access token; raised to end every session at once.
    session_version: int = 1

    def __repr__(self) -> str:  # never the hash
        return f"User({self.user_id}, {self.role}, {self.status})"


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    user_id: UUID
    name: str
    key_hash: str
    scopes: tuple[str, ...]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    def __repr__(self) -> str:
        return f"ApiKey({self.key_id}, {self.user_id}, {self.scopes})"


def _user(row: asyncpg.Record) -> User:
    return User(
        row["user_id"],
        row["email"],
        row["password_hash"],
        row["role"],
        row["status"],
        row["created_at"],
        row["session_version"],
    )


def _key(row: asyncpg.Record) -> ApiKey:
    return ApiKey(
        row["key_id"],
        row["user_id"],
        row["name"],
        row["key_hash"],
        tuple(row["scopes"]),
        row["created_at"],
        row["expires_at"],
        row["revoked_at"],
        row["last_used_at"],
    )


class AuthStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # ---- users ---------------------------------------------------------------------------------

    async def add_user(self, conn: asyncpg.Connection, user: User) -> bool:
        """False when the e-mail is taken."""
        added = await conn.fetchval(
            "INSERT INTO users (user_id, email, password_hash, role, status, created_at, "
            "updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (email) DO NOTHING "
            "RETURNING true",
            user.user_id,
            user.email,
            user.password_hash,
            user.role,
            user.status,
            user.created_at,
        )
        return bool(added)

    async def user_by_email(
        self, email: str, conn: asyncpg.Connection | None = None
    ) -> User | None:
        row = await (conn or self.db.pool).fetchrow("SELECT * FROM users WHERE email = $1", email)
        return _user(row) if row is not None else None

    async def user(
        self, user_id: UUID, conn: asyncpg.Connection | None = None, *, lock: bool = False
    ) -> User | None:
        query = (
            "SELECT * FROM users WHERE user_id = $1 FOR UPDATE"
            if lock
            else "SELECT * FROM users WHERE user_id = $1"
        )
        row = await (conn or self.db.pool).fetchrow(query, user_id)
        return _user(row) if row is not None else None

    async def users(self, limit: int, after: UUID | None) -> list[User]:
        rows = await self.db.pool.fetch(
            "SELECT * FROM users WHERE ($1::uuid IS NULL OR user_id > $1) ORDER BY user_id "
            "LIMIT $2",
            after,
            limit,
        )
        return [_user(r) for r in rows]

    async def any_admin(self) -> bool:
        return bool(
            await self.db.pool.fetchval(
                "SELECT EXISTS (SELECT 1 FROM users WHERE role = 'admin' AND status = 'active')"
            )
        )

    async def update_user(
        self,
        conn: asyncpg.Connection,
        user_id: UUID,
        now: datetime,
        *,
        password_hash: str | None = None,
        role: str | None = None,
        status: str | None = None,
    ) -> None:
        await conn.execute(
            "UPDATE users SET password_hash = COALESCE($2, password_hash), "
            "role = COALESCE($3, role), status = COALESCE($4, status), updated_at = $5 "
            "WHERE user_id = $1",
            user_id,
            password_hash,
            role,
            status,
            now,
        )

    async def end_sessions(self, conn: asyncpg.Connection, user_id: UUID, now: datetime) -> int:
        """Raise the user's session version (tokens below it are refused) and revoke their
        refresh tokens; returns the new version."""
        version: int = await conn.fetchval(
            "UPDATE users SET session_version = session_version + 1, sessions_ended_at = $2 "
            "WHERE user_id = $1 RETURNING session_version",
            user_id,
            now,
        )
        await self.revoke_user_tokens(conn, user_id, now)
        return version

    async def revocations(
        self, since: datetime
    ) -> tuple[list[asyncpg.Record], list[asyncpg.Record]]:
        """The revocations made since `since`: (API keys, users' ended sessions)."""
        keys = await self.db.pool.fetch(
            "SELECT key_id, revoked_at FROM api_keys WHERE revoked_at >= $1 ORDER BY revoked_at",
            since,
        )
        users = await self.db.pool.fetch(
            "SELECT user_id, session_version, sessions_ended_at AS revoked_at FROM users "
            "WHERE sessions_ended_at >= $1 ORDER BY sessions_ended_at",
            since,
        )
        return keys, users

    # ---- refresh tokens ------------------------------------------------------------------------

    async def add_refresh(
        self,
        conn: asyncpg.Connection,
        token_hash: str,
        family: UUID,
        user_id: UUID,
        now: datetime,
        expires: datetime,
    ) -> None:
        await conn.execute(
            "INSERT INTO refresh_tokens (token_hash, family_id, user_id, issued_at, expires_at) "
            "VALUES ($1, $2, $3, $4, $5)",
            token_hash,
            family,
            user_id,
            now,
            expires,
        )

    async def refresh_token(
        self, conn: asyncpg.Connection, token_hash: str
    ) -> asyncpg.Record | None:
        row: asyncpg.Record | None = await conn.fetchrow(
            "SELECT * FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE", token_hash
        )
        return row

    async def use_refresh(self, conn: asyncpg.Connection, token_hash: str, now: datetime) -> None:
        await conn.execute(
            "UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1", token_hash, now
        )

    async def revoke_family(self, conn: asyncpg.Connection, family: UUID, now: datetime) -> int:
        result: str = await conn.execute(
            "UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL",
            family,
            now,
        )
        return int(result.split()[-1])

    async def revoke_user_tokens(
        self, conn: asyncpg.Connection, user_id: UUID, now: datetime
    ) -> None:
        await conn.execute(
            "UPDATE refresh_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
            user_id,
            now,
        )

    # ---- API keys ------------------------------------------------------------------------------

    async def add_key(self, conn: asyncpg.Connection, key: ApiKey) -> None:
        await conn.execute(
            "INSERT INTO api_keys (key_id, user_id, name, key_hash, scopes, created_at, "
            "expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            key.key_id,
            key.user_id,
            key.name,
            key.key_hash,
            list(key.scopes),
            key.created_at,
            key.expires_at,
        )

    async def key(self, key_id: str, conn: asyncpg.Connection | None = None) -> ApiKey | None:
        row = await (conn or self.db.pool).fetchrow(
            "SELECT * FROM api_keys WHERE key_id = $1", key_id
        )
        return _key(row) if row is not None else None

    async def keys_of(self, user_id: UUID) -> list[ApiKey]:
        rows = await self.db.pool.fetch(
            "SELECT * FROM api_keys WHERE user_id = $1 ORDER BY created_at, key_id", user_id
        )
        return [_key(r) for r in rows]

    async def revoke_key(self, conn: asyncpg.Connection, key_id: str, now: datetime) -> None:
        await conn.execute(
            "UPDATE api_keys SET revoked_at = $2 WHERE key_id = $1 AND revoked_at IS NULL",
            key_id,
            now,
        )

    async def revoke_user_keys(
        self, conn: asyncpg.Connection, user_id: UUID, now: datetime
    ) -> list[str]:
        rows = await conn.fetch(
            "UPDATE api_keys SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL "
            "RETURNING key_id",
            user_id,
            now,
        )
        return [r["key_id"] for r in rows]

    async def key_used(self, key_id: str, now: datetime) -> None:
        await self.db.pool.execute(
            "UPDATE api_keys SET last_used_at = $2 WHERE key_id = $1", key_id, now
        )

    # ---- failed logins -------------------------------------------------------------------------

    async def failures(self, keys: list[str]) -> dict[str, Failures]:
        rows = await self.db.pool.fetch(
            "SELECT key, failures, last_failure FROM login_failures WHERE key = ANY($1::text[])",
            keys,
        )
        return {r["key"]: Failures(r["failures"], r["last_failure"]) for r in rows}

    async def fail(
        self, conn: asyncpg.Connection, keys: list[str], now: datetime, window_s: int
    ) -> None:
        """One more failure for each key (a count whose window has passed starts again)."""
        for key in keys:
            await conn.execute(
                "INSERT INTO login_failures (key, failures, last_failure) VALUES ($1, 1, $2) "
                "ON CONFLICT (key) DO UPDATE SET failures = CASE WHEN "
                "login_failures.last_failure <= $2 - make_interval(secs => $3) THEN 1 "
                "ELSE login_failures.failures + 1 END, last_failure = $2",
                key,
                now,
                float(window_s),
            )

    async def clear(self, conn: asyncpg.Connection, keys: list[str]) -> None:
        await conn.execute("DELETE FROM login_failures WHERE key = ANY($1::text[])", keys)
