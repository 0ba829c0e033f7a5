"""Where the notify service keeps its state: tables in its own Postgres schema."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from trademesh_db import Database

from trademesh_notify.engine import Activity, Direction, Observation, record


def _activity(row: asyncpg.Record) -> Activity:
    # SELECT * is safe here: the table's columns are exactly Activity's fields (the migration).
    return Activity(**dict(row))


class ActivityStore:
    """Activity rows in the service's schema (its pool's search_path points there)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def apply(self, seen: Observation, conn: asyncpg.Connection | None = None) -> Activity:
        """Record `seen`, in the caller's transaction when given one (a handler's, so that the
        change commits with the inbox entry), else in a transaction of its own."""
        async with self._transaction(conn) as tx:
            # One writer per key at a time, also for a key's first row (there is no row to lock).
            await tx.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 0))",
                seen.key,
                seen.direction,
            )
            row = await tx.fetchrow(
                "SELECT * FROM activity WHERE key = $1 AND direction = $2",
                seen.key,
                seen.direction,
            )
            activity = record(_activity(row) if row else None, seen)
            await tx.execute(
                "INSERT INTO activity (key, direction, events, last_event_id, last_event_type, "
                "last_topic, first_at, last_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
                "ON CONFLICT (key, direction) DO UPDATE SET events = EXCLUDED.events, "
                "last_event_id = EXCLUDED.last_event_id, last_event_type = EXCLUDED.last_event_type, "
                "last_topic = EXCLUDED.last_topic, first_at = EXCLUDED.first_at, "
                "last_at = EXCLUDED.last_at",
                activity.key,
                activity.direction,
                activity.events,
                activity.last_event_id,
                activity.last_event_type,
                activity.last_topic,
                activity.first_at,
                activity.last_at,
            )
        return activity

    async def of_key(self, key: str) -> list[Activity]:
        rows = await self.db.pool.fetch(
            "SELECT * FROM activity WHERE key = $1 ORDER BY direction", key
        )
        return [_activity(row) for row in rows]

    async def page(self, after: tuple[str, Direction] | None, limit: int) -> list[Activity]:
        """Up to `limit` rows in (key, direction) order, after the given position."""
        if after is None:
            rows = await self.db.pool.fetch(
                "SELECT * FROM activity ORDER BY key, direction LIMIT $1", limit
            )
        else:
            rows = await self.db.pool.fetch(
                "SELECT * FROM activity WHERE (key, direction) > ($1, $2) "
                "ORDER BY key, direction LIMIT $3",
                after[0],
                after[1],
                limit,
            )
        return [_activity(row) for row in rows]

    @asynccontextmanager
    async def _transaction(
        self, conn: asyncpg.Connection | None
    ) -> AsyncIterator[asyncpg.Connection]:
        if conn is not None:
            yield conn
            return
        async with self.db.transaction() as own:
            yield own
