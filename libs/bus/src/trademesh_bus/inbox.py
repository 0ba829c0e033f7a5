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
