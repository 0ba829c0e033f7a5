"""The inbox: which events a consumer already applied, recorded in the same transaction as the change."""

from __future__ import annotations

from uuid import UUID

import asyncpg


async def claim(conn: asyncpg.Connection, consumer: str, event_id: UUID, topic: str) -> bool:
    """Record that `consumer` handles `event_id` now. False when it already did (a redelivery).

    Must run inside the transaction that applies the event: if that transaction rolls back, the
    claim goes with it and the redelivered event is applied then.
    """
    status = await conn.execute(
        "INSERT INTO inbox (consumer, event_id, topic) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        consumer,
        event_id,
        topic,
    )
    return bool(status == "INSERT 0 1")


async def claim_many(
    conn: asyncpg.Connection, consumer: str, events: list[tuple[UUID, str]]
) -> set[UUID]:
    """Record that `consumer` handles these (event id, topic) pairs now, in one statement; the
    ids it had not handled before (an id twice in `events` is claimed once). Same transaction
    rule as claim()."""
    rows = await conn.fetch(
        "INSERT INTO inbox (consumer, event_id, topic) "
        "SELECT $1, e.id, e.topic FROM unnest($2::uuid[], $3::text[]) AS e(id, topic) "
        "ON CONFLICT DO NOTHING RETURNING event_id",
        consumer,
        [event_id for event_id, _ in events],
        [topic for _, topic in events],
    )
    return {row["event_id"] for row in rows}
