"""The {{ cookiecutter.slug }} service's event subscribers: thin, they hand each event to the domain."""

from __future__ import annotations

from typing import Any

from trademesh_bus import Bus, Delivery
from trademesh_db import Database
from trademesh_events.topics import get_topic

from {{ cookiecutter.package }}.config import Settings
from {{ cookiecutter.package }}.engine import CONSUMES, observe
from {{ cookiecutter.package }}.store import ActivityStore


def register_handlers(
    bus: Bus, store: ActivityStore, settings: Settings, db: Database | None
) -> None:
    """Subscribe to every consumed topic, one consumer group per topic.

    With a database the handler runs in one transaction with the inbox entry (a redelivered
    event changes nothing); without one, delivery is at least once. A message that fails
    validation goes to `<topic>.dlq` (the bus does that) and the consumer goes on.
    """

    async def on_event(event: Any, delivery: Delivery) -> None:
        spec = get_topic(delivery.topic)
        await store.apply(observe(spec, event, delivery.envelope, "in"), delivery.conn)

    for name in CONSUMES:
        bus.subscribe(
            get_topic(name), group=f"{settings.consumer_group}.{name}", handler=on_event, db=db
        )
