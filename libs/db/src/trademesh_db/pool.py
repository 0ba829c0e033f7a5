"""asyncpg pools whose connections see one service's schema first, and a real readiness check."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg

_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def check_schema_name(schema: str) -> str:
    """Schema names are interpolated into DDL and search_path, so only plain identifiers pass."""
    if not _SCHEMA_RE.fullmatch(schema):
        raise ValueError(f"invalid schema name {schema!r}: use lowercase letters, digits and _")
    return schema


async def create_pool(
    url: str, schema: str, *, min_size: int = 1, max_size: int = 10, timeout: float = 10.0
) -> asyncpg.Pool:
    """A pool whose sessions have `search_path = <schema>, public`: a service writes unqualified SQL."""
    check_schema_name(schema)
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
    _pool: asyncpg.Pool | None = None

    async def connect(self) -> None:
        if self._pool is None:
            self._pool = await create_pool(
                self.url, self.schema, min_size=self.min_size, max_size=self.max_size
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
        """A connection inside one transaction: commit on success, roll back on any exception."""
        async with self.pool.acquire() as conn, conn.transaction():
            yield conn

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
