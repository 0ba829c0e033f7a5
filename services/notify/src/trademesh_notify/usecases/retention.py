"""What notify no longer needs, deleted on a schedule (its tables would grow for ever).

- A **sent** delivery is kept `sent_keep` after it was sent: the owner's history of a channel.
  Deleting it cannot send an event twice: the consumer's inbox, not this row, keeps a
  redelivered event out, and the inbox remembers longer than any redelivery.
- A **dead** delivery stays on its owner's dead-letter list `dead_keep` after its last attempt
  (when it died; a retry by the owner makes it pending again, and its clock starts over).
- A notice **held** for an account whose owner notify has not learnt (no AccountChanged came)
  waits `unowned_keep`, then it is dropped with a warning: nobody can be told of it.

Pending and held deliveries are never deleted, however old. Every replica may prune (the
deletes wait for each other); each table goes in chunks (trademesh_db's delete_older_than).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import timedelta

from trademesh_db import Database, delete_older_than
from trademesh_observability.logging import get_logger
from trademesh_observability.metrics import NOTIFY_UNOWNED

from trademesh_notify.config import Settings

log = get_logger("trademesh_notify.retention")


@dataclass(frozen=True)
class Pruned:
    sent: int
    dead: int
    unowned: int


class DeliveryRetention:
    """Prunes notify's sent and dead deliveries and held unowned notices every `interval` s."""

    def __init__(
        self,
        db: Database,
        *,
        sent_keep: timedelta,
        dead_keep: timedelta,
        unowned_keep: timedelta,
        interval: float = 600.0,
        service: str = "notify",
    ) -> None:
        self.db = db
        self.service = service
        self.sent_keep = sent_keep
        self.dead_keep = dead_keep
        self.unowned_keep = unowned_keep
        self.interval = interval

    @classmethod
    def from_settings(cls, db: Database, settings: Settings) -> DeliveryRetention:
        return cls(
            db,
            sent_keep=timedelta(hours=settings.sent_delivery_retention_h),
            dead_keep=timedelta(hours=settings.dead_delivery_retention_h),
            unowned_keep=timedelta(hours=settings.unowned_notice_retention_h),
            service=settings.service_name,
        )

    async def prune_once(self) -> Pruned:
        """Delete what is past its retention now."""
        pruned = Pruned(
            sent=await delete_older_than(
                self.db, "deliveries", "sent_at", self.sent_keep, where="status = 'sent'"
            ),
            dead=await delete_older_than(
                self.db, "deliveries", "next_attempt_at", self.dead_keep, where="status = 'dead'"
            ),
            unowned=await delete_older_than(
                self.db, "unowned_notices", "held_at", self.unowned_keep
            ),
        )
        if pruned.unowned:
            NOTIFY_UNOWNED.labels(service=self.service, outcome="dropped").inc(pruned.unowned)
            log.warning(
                "dropped events of accounts whose owner never became known",
                events=pruned.unowned,
                held_for_h=self.unowned_keep.total_seconds() / 3600,
            )
        if pruned.sent or pruned.dead:
            log.info("pruned deliveries", sent=pruned.sent, dead=pruned.dead)
        return pruned

    async def run(self, stop: asyncio.Event) -> None:
        """Prune at start and then every `interval` seconds until `stop` is set."""
        while not stop.is_set():
            try:
                await self.prune_once()
            except Exception:
                log.exception("pruning deliveries failed; will try again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)
