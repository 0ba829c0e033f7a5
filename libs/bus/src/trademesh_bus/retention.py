"""What the inbox and the outbox no longer need, deleted on a schedule (both would grow for ever).

- The outbox keeps a row until it is published, then `outbox_keep` longer (to read back what
  left, and when). A row not yet published is never deleted, however old.
- The inbox keeps an event id `inbox_keep` after it was handled. The id only has to outlive the
  chance of a redelivery: a consumer is redelivered what it handled but had not committed the
  offset of (seconds), or everything after its committed offset when a group is reset by hand.
  The default, a week, is longer than any of that; a deployment that replays topics from
  further back than its inbox remembers must keep the inbox longer.

Rows go in chunks of `chunk`, one short transaction each (trademesh_db's delete_older_than).
Every replica may prune: deletes of the same rows do not conflict beyond waiting for each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from typing import Protocol

from trademesh_db import Database, delete_older_than

log = logging.getLogger("trademesh.bus.retention")


class RetentionSettings(Protocol):
    """The DatabaseSettings fields of the retention (trademesh_config has them)."""

    @property
    def inbox_retention_h(self) -> float: ...
    @property
    def outbox_retention_h(self) -> float: ...


class Retention:
    """Prunes one schema's inbox and outbox every `interval` seconds."""

    def __init__(
        self,
        db: Database,
        *,
        inbox_keep: timedelta = timedelta(days=7),
        outbox_keep: timedelta = timedelta(days=1),
        interval: float = 600.0,
        chunk: int = 5000,
    ) -> None:
        self.db = db
        self.inbox_keep = inbox_keep
        self.outbox_keep = outbox_keep
        self.interval = interval
        self.chunk = chunk

    @classmethod
    def from_settings(cls, db: Database, settings: RetentionSettings) -> Retention:
        return cls(
            db,
            inbox_keep=timedelta(hours=settings.inbox_retention_h),
            outbox_keep=timedelta(hours=settings.outbox_retention_h),
        )

    async def prune_once(self) -> tuple[int, int]:
        """Delete what is past its retention now; (inbox rows, outbox rows) deleted."""
        return (
            await delete_older_than(
                self.db, "inbox", "handled_at", self.inbox_keep, chunk=self.chunk
            ),
            await delete_older_than(
                self.db, "outbox", "published_at", self.outbox_keep, chunk=self.chunk
            ),
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Prune at start and then every `interval` seconds until `stop` is set."""
        while not stop.is_set():
            try:
                inbox, outbox = await self.prune_once()
                if inbox or outbox:
                    log.info(
                        "pruned the inbox and outbox", extra={"inbox": inbox, "outbox": outbox}
                    )
            except Exception:
                log.exception("pruning the inbox and outbox failed; will try again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)
