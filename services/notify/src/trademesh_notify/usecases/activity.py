"""The sample domain's use cases: recording what the service consumed and published.

A use case is what a handler or a route asks of the service: it runs the engine's pure logic on
what the store holds, in the transaction of the delivery (inbox) or one of its own, with the
events it causes in the outbox. Replace it with the service's own use cases, one module each.
"""

from __future__ import annotations

import asyncpg
from trademesh_db import Database
from trademesh_events.base import Event
from trademesh_events.envelope import Envelope
from trademesh_events.topics import TopicSpec

from trademesh_notify.engine import Activity, observe
from trademesh_notify.store import ActivityStore


class ActivityLog:
    """The activity per key: events consumed ("in") and published ("out")."""

    def __init__(
        self,
        store: ActivityStore,
        db: Database,
    ) -> None:
        self.store = store
        self.db = db

    async def consumed(
        self,
        topic: TopicSpec[Event],
        event: Event,
        envelope: Envelope,
        conn: asyncpg.Connection | None,
    ) -> Activity:
        """Count a consumed event, in the delivery's transaction (with its inbox entry: a
        redelivered event changes nothing)."""
        return await self.store.apply(observe(topic, event, envelope, "in"), conn)
