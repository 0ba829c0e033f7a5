"""Logging an event: what a consumed event becomes in the keyed hash chain."""

from __future__ import annotations

import json

import asyncpg
from trademesh_events.base import Event
from trademesh_events.envelope import Envelope
from trademesh_events.topics import TopicSpec

from trademesh_audit.engine import AuditRow, entry_of
from trademesh_audit.store import AuditStore


class AuditLog:
    """Appends every logged event, as it travelled, to the chain."""

    def __init__(self, store: AuditStore) -> None:
        self.store = store

    async def record(
        self,
        conn: asyncpg.Connection,
        topic: TopicSpec[Event],
        event: Event,
        envelope: Envelope,
    ) -> AuditRow | None:
        """Append `event` in the caller's transaction (the delivery's, with its inbox entry);
        None when its event id is in the log already."""
        # The event's JSON as it travels on the wire (Decimals as strings), re-read as an object.
        document = json.loads(topic.encode(event))
        return await self.store.append(entry_of(topic.name, document, envelope), conn)
