"""The audit service's event subscribers: thin, they hand each event to the log."""

from __future__ import annotations

import json
from typing import Any

from trademesh_bus import Bus, Delivery
from trademesh_db import Database
from trademesh_events.topics import get_topic

from trademesh_audit.config import Settings
from trademesh_audit.engine import CONSUMES, entry_of
from trademesh_audit.store import AuditStore


def register_handlers(bus: Bus, store: AuditStore, settings: Settings, db: Database) -> None:
    """Subscribe to every consumed topic, one consumer group per topic, shared by the replicas.

    Each handler runs in one transaction with the inbox entry, so a redelivered event adds no
    row (and the store skips an event id the log already has, whichever group delivers it). A
    message that fails validation goes to `<topic>.dlq` (the bus does that) and the consumer
    goes on.
    """

    async def on_event(event: Any, delivery: Delivery) -> None:
        assert delivery.conn is not None  # a transactional subscription (db given below)
        spec = get_topic(delivery.topic)
        # The event's JSON as it travels on the wire (Decimals as strings), re-read as an object.
        document = json.loads(spec.encode(event))
        await store.append(entry_of(spec.name, document, delivery.envelope), delivery.conn)

    for name in CONSUMES:
        bus.subscribe(
            get_topic(name), group=f"{settings.consumer_group}.{name}", handler=on_event, db=db
        )
