"""The gateway's event subscribers: every event naming a user goes to that user's streams.

Every gateway process must see every event (a user's stream may be open on any replica), so
each process reads the topics with a consumer group of its own, from the end: a stream shows
what happens while it is open, not history. Nothing is stored, so no inbox: a redelivered event
is shown again, with the same event id (clients may de-duplicate by `id`).
"""

from __future__ import annotations

import uuid
from typing import Any

from trademesh_bus import Bus, Delivery
from trademesh_db import Database

from trademesh_gateway.config import Settings
from trademesh_gateway.engine import CONSUMES, event_owner
from trademesh_gateway.usecases.streams import EventHub, StreamEvent


def register_handlers(bus: Bus, hub: EventHub, settings: Settings, db: Database | None) -> None:
    """Subscribe to every consumed topic with a group of this process's own, from the end.
    `db` is there for the template's signature: the gateway owns no schema."""
    if db is not None:
        raise ValueError("the gateway keeps no state in a database")

    async def on_event(event: Any, delivery: Delivery) -> None:
        owner = event_owner(event)
        if owner is None:
            return
        envelope = delivery.envelope
        hub.publish(
            owner,
            StreamEvent(
                id=str(envelope.id),
                type=envelope.type,
                topic=delivery.topic,
                data={"time": envelope.time.isoformat(), "event": event.model_dump(mode="json")},
            ),
        )

    instance = uuid.uuid4().hex[:12]
    bus.subscribe_many(
        dict.fromkeys(CONSUMES, on_event),
        group=f"{settings.consumer_group}.events.{instance}",
        inbox=False,
        from_beginning=False,
        background=True,
    )
