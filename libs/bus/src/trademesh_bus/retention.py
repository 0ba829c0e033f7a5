"""What the inbox and the outbox no longer need, deleted on a schedule (both would grow for ever).

- The outbox keeps a row until it is published, then `outbox_keep` longer (to read back what
  left, and when). A row not yet published is never deleted, however old.
- The inbox keeps an event id `inbox_keep` after it was handled. The id only has to outlive the
  chance of a redelivery: a consumer is redelivered what it handled but had not committed the
  offset of (seconds), or everything after its committed offset when a group is reset by hand.
  The default, a week, is longer than any of that; a deployment that replays topics from
  further back than its inbox remembers must keep the inbox longer.

Rows go in chunks of `chunk`, one short transaction each, so a first prune of a large table
neither holds long locks nor bloats one transaction. Every replica may prune: deletes of the
same rows do not conflict beyond waiting for each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from typing import Protocol

from trademesh_db.pool import Database

log = logging.getLogger("trademesh.bus.retention")

_PRUNE_INBOX = (
    "DELETE FROM inbox WHERE ctid = ANY(ARRAY("
    "SELECT ctid FROM inbox WHERE handled_at < now() - $1::interval LIMIT $2))"
)
_PRUNE_OUTBOX = (
    "DELETE FROM outbox WHERE ctid = ANY(ARRAY("
    "SELECT ctid FROM outbox WHERE published_at < now() - $1::interval LIMIT $2))"
)


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
            await self._prune(_PRUNE_INBOX, self.inbox_keep),
            await self._prune(_PRUNE_OUTBOX, self.outbox_keep),
        )

    async def _prune(self, statement: str, keep: timedelta) -> int:
        deleted = 0
        while True:
            status = await self.db.pool.execute(statement, keep, self.chunk)
            count = int(status.split()[-1])
            deleted += count
            if count < self.chunk:
                return deleted

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
