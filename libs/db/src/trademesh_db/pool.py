"""asyncpg pools whose connections see one service's schema first, and a real readiness check."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg

_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def check_schema_name(schema: str) -> str:
    """Schema names are interpolated into DDL and search_path, so only plain identifiers pass."""
    if not _SCHEMA_RE.fullmatch(schema):
        raise ValueError(f"invalid schema name {schema!r}: use lowercase letters, digits and _")
    return schema


def check_identifier(name: str) -> str:
    """A table's or a column's name interpolated into SQL: plain identifiers only."""
    if not _SCHEMA_RE.fullmatch(name):
        raise ValueError(f"invalid SQL identifier {name!r}: use lowercase letters, digits and _")
    return name


def check_role_name(role: str) -> str:
    """Role names are interpolated into SET ROLE (it takes no parameters): plain identifiers only."""
    if not _SCHEMA_RE.fullmatch(role):
        raise ValueError(f"invalid role name {role!r}: use lowercase letters, digits and _")
    return role


class _Connection(asyncpg.Connection):  # type: ignore[misc]
    """A pooled connection whose release costs no round trip.

    asyncpg resets a connection it takes back with `SELECT pg_advisory_unlock_all(); CLOSE ALL;
    UNLISTEN *; RESET ALL`: one more round trip per use, on every event of the hot path. Nothing
    in the project leaves session state on a pooled connection: locks are transaction-level
    (pg_advisory_xact_lock), cursors live in transactions, settings are the pool's (connection
    parameters and SET ROLE at init, which RESET ALL kept anyway), and nothing LISTENs. So the
    reset query is empty; asyncpg still rolls back a transaction left open and drops listeners.
    Code that needs session state takes a connection of its own (asyncpg.connect), not the pool's.
    """

    def get_reset_query(self) -> str:
        return ""


async def create_pool(
    url: str,
    schema: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    timeout: float = 10.0,
    session_role: str | None = None,
) -> asyncpg.Pool:
    """A pool whose sessions have `search_path = <schema>, public`: a service writes unqualified SQL.

    With `session_role`, every new connection runs `SET ROLE <session_role>` before it is handed
    out, so the service works with that role's privileges only (a narrower role than the login
    user, e.g. one that may insert into a table but not update it). asyncpg's reset on release
    (`RESET ALL`) leaves the role in place, so it holds for the connection's whole life.
    """
    check_schema_name(schema)
    init: Callable[[asyncpg.Connection], Awaitable[None]] | None = None
    if session_role is not None:
        statement = f'SET ROLE "{check_role_name(session_role)}"'

        async def set_role(conn: asyncpg.Connection) -> None:
            await conn.execute(statement)

        init = set_role
    pool = await asyncpg.create_pool(
        dsn=url,
        min_size=min_size,
        max_size=max_size,
        timeout=timeout,
        command_timeout=30,
        server_settings={
            "search_path": f"{schema}, public",
            "application_name": f"trademesh-{schema}",
        },
        init=init,
        connection_class=_Connection,
    )
    assert pool is not None
    return pool


@dataclass
class Database:
    """One service's database handle: its schema, its pool, and its readiness check."""

    url: str
    schema: str
    min_size: int = 1
    max_size: int = 10
    # The role the pool's connections SET ROLE to (see create_pool); None: the login user's own.
    session_role: str | None = None
    _pool: asyncpg.Pool | None = None
    # Told, with the connection and whether it committed, when a transaction() ends.
    _ended: list[Callable[[asyncpg.Connection, bool], None]] = field(
        default_factory=list, repr=False
    )

    async def connect(self) -> None:
        if self._pool is None:
            self._pool = await create_pool(
                self.url,
                self.schema,
                min_size=self.min_size,
                max_size=self.max_size,
                session_role=self.session_role,
            )

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("Database.connect() has not been awaited")
        return self._pool

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection inside one transaction: commit on success, roll back on any exception.

        The listeners added with on_transaction_end hear of its end, after the commit or the
        rollback (the outbox relay wakes when a transaction that wrote events committed)."""
        async with self.pool.acquire() as conn:
            try:
                async with conn.transaction():
                    yield conn
            except BaseException:
                self._tell(conn, committed=False)
                raise
            self._tell(conn, committed=True)

    def on_transaction_end(self, listener: Callable[[asyncpg.Connection, bool], None]) -> None:
        """Call `listener(conn, committed)` when a transaction() ends. It runs on the event loop
        inside the transaction's caller, so it must be quick and must not raise."""
        self._ended.append(listener)

    def _tell(self, conn: asyncpg.Connection, *, committed: bool) -> None:
        for listener in self._ended:
            listener(conn, committed)

    async def fetchval(self, query: str, *args: Any) -> Any:
        return await self.pool.fetchval(query, *args)

    async def check_ready(self, timeout: float = 2.0) -> None:
        """Readiness: a fresh round trip to Postgres (raises when the server is unreachable).

        A new connection rather than a pooled one, because a pooled connection can look healthy
        while the server is gone until it is used; this answers for the server, now.
        """
        conn = await asyncio.wait_for(asyncpg.connect(self.url, timeout=timeout), timeout)
        try:
            await asyncio.wait_for(conn.fetchval("SELECT 1"), timeout)
        finally:
            await conn.close(timeout=timeout)
