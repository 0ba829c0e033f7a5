"""The audit service's event subscribers: thin, they hand each event to the log, and each
checkpoint of the chain to the book."""

from __future__ import annotations

import uuid

from trademesh_bus import Bus, Delivery
from trademesh_db import Database
from trademesh_events.audit import ChainCheckpointed
from trademesh_events.base import Event
from trademesh_events.topics import AUDIT_CHECKPOINTS_TOPIC, get_topic

from trademesh_audit.config import Settings
from trademesh_audit.engine import CHECKPOINTS, LOGGED
from trademesh_audit.usecases.checkpoints import CheckpointBook
from trademesh_audit.usecases.log import AuditLog


def register_handlers(
    bus: Bus, log: AuditLog, book: CheckpointBook, settings: Settings, db: Database
) -> None:
    """Subscribe to every consumed topic.

    - The logged topics: one consumer (group `<group>.log`), shared by the replicas. A batch is
      logged in one transaction with its inbox entries, so a redelivered event adds no row (and
      the store skips an event id the log already has, whichever group delivers it).
    - audit.checkpoints.v1: a group per process, from the topic's beginning, so that every
      replica holds every checkpoint of its chain (see checkpoints.py); no transaction.

    A message that fails validation goes to `<topic>.dlq` (the bus does that) and the consumer
    goes on.
    """

    # Every event of every logged topic is logged alike: no type to tell apart.
    async def on_event(event: Event, delivery: Delivery) -> None:
        assert delivery.conn is not None  # a transactional subscription (db given below)
        await log.record(delivery.conn, get_topic(delivery.topic), event, delivery.envelope)

    async def on_checkpoint(event: ChainCheckpointed, delivery: Delivery) -> None:
        book.add(event)

    bus.subscribe_many(
        dict.fromkeys(LOGGED, on_event),
        group=f"{settings.consumer_group}.log",
        db=db,
        background=True,
    )
    instance = uuid.uuid4().hex[:12]
    bus.subscribe(
        AUDIT_CHECKPOINTS_TOPIC,
        group=f"{settings.consumer_group}.{CHECKPOINTS}.{instance}",
        handler=on_checkpoint,
        inbox=False,
        from_beginning=True,
        background=True,
    )
