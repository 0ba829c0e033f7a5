"""The gateway's event subscribers: every event naming a user goes to that user's streams.

Every gateway process must see every event (a user's stream may be open on any replica), so
each process reads the topics with a consumer group of its own, from the end: a stream shows
what happens while it is open, not history. Nothing is stored, so no inbox: a redelivered event
is shown again, with the same event id (clients may de-duplicate by `id`).
"""

from __future__ import annotations

import uuid

from trademesh_bus import Bus, Delivery
from trademesh_db import Database
from trademesh_events.base import Event
from trademesh_service import service_manifest

from trademesh_gateway.config import Settings
from trademesh_gateway.usecases.streams import EventHub


def register_handlers(bus: Bus, hub: EventHub, settings: Settings, db: Database | None) -> None:
    """Subscribe to every consumed topic with a group of this process's own, from the end.
    `db` is there for the template's signature: the gateway owns no schema."""
    if db is not None:
        raise ValueError("the gateway keeps no state in a database")

    # Every event of every topic is forwarded alike (to the user it names): no type to tell apart.
    async def on_event(event: Event, delivery: Delivery) -> None:
        hub.forward(event, delivery.envelope, delivery.topic)

    instance = uuid.uuid4().hex[:12]
    bus.subscribe_many(
        dict.fromkeys(service_manifest(__name__).consumes, on_event),
        group=f"{settings.consumer_group}.events.{instance}",
        inbox=False,
        from_beginning=False,
        background=True,
    )
