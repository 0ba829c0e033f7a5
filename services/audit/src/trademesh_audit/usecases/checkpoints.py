"""The chain's checkpoints: signed `(seq, link)` of the chain head, published to
`audit.checkpoints.v1` when the chain has grown (every `checkpoint_interval_s`, at shutdown, and
on demand), and read back from there by every replica into its memory, so that verify checks the
log against a record its database cannot change.

The topic is the store: Kafka keeps it (Redpanda in compose and Kubernetes, for the topic's
retention), and each process reads it from its beginning with a consumer group of its own. The
embedded broker (Tansu) keeps it in memory only, so there the checkpoints last as long as the
broker runs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime

from trademesh_bus import Bus
from trademesh_db import Database
from trademesh_events.audit import ChainCheckpointed
from trademesh_events.topics import get_topic
from trademesh_observability.logging import get_logger

from trademesh_audit.engine import CHECKPOINTS, checkpoint, link_holds
from trademesh_audit.keys import ChainKeys
from trademesh_audit.store import AuditStore

log = get_logger("trademesh_audit.checkpoints")


def _utc_now() -> datetime:
    return datetime.now(UTC)


class HeadMismatch(Exception):
    """The chain head does not record the log's last row as that row reads (the log was changed
    outside the service): no checkpoint is made of it."""


class CheckpointBook:
    """The checkpoints of one chain seen on the topic, in this process's memory."""

    def __init__(self, chain: str) -> None:
        self.chain = chain
        self._seen: set[ChainCheckpointed] = set()

    def add(self, found: ChainCheckpointed) -> None:
        """Keep `found` if it is this chain's (other deployments' logs share the topic)."""
        if found.chain == self.chain:
            self._seen.add(found)

    def snapshot(self) -> list[ChainCheckpointed]:
        return sorted(self._seen, key=lambda c: (c.seq, c.ts))


class Checkpointer:
    """Makes and publishes the chain's checkpoints."""

    def __init__(
        self,
        store: AuditStore,
        keys: ChainKeys,
        bus: Bus,
        *,
        chain: str,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.store = store
        self.keys = keys
        self.bus = bus
        self.chain = chain
        self.clock = clock
        self.last_seq = 0  # the seq of the last checkpoint this process published

    @property
    def db(self) -> Database:
        return self.store.db

    async def checkpoint(self) -> ChainCheckpointed | None:
        """Publish a checkpoint of the chain head now; None while the chain is empty.

        The head's row is read with it and checked first (its link is the head's, and is the
        one its key makes over its content), so a head set by hand is never checkpointed: raises
        HeadMismatch then."""
        head = await self.db.pool.fetchrow("SELECT seq, hash FROM chain_head")
        if head is None:
            raise RuntimeError("the audit chain head is missing: migrations not applied?")
        if head["seq"] == 0:
            return None
        row = await self.store.row(head["seq"])
        keyring = await self.keys.load()
        if row is None or row.hash != bytes(head["hash"]) or not link_holds(row, keyring):
            raise HeadMismatch(f"the chain head (row {head['seq']}) does not match the log")
        made = checkpoint(self.chain, row.seq, row.hash, keyring.current_key, self.clock())
        await self.bus.publish(made, topic=get_topic(CHECKPOINTS))
        self.last_seq = row.seq
        log.info("audit chain checkpointed", seq=row.seq, key_id=made.key_id)
        return made

    async def checkpoint_if_grown(self) -> ChainCheckpointed | None:
        """A checkpoint if the chain has grown since this process's last one."""
        if await self.db.fetchval("SELECT seq FROM chain_head") == self.last_seq:
            return None
        return await self.checkpoint()

    async def run(self, stop: asyncio.Event, every: float) -> None:
        """Every `every` seconds until `stop`: reload the keys (another replica may have rotated
        them) and checkpoint the chain if it has grown. A failure is logged and tried again at
        the next turn; a head that does not match the log is an error each time."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
                return
            try:
                await self.keys.load()
                await self.checkpoint_if_grown()
            except HeadMismatch as mismatch:
                log.error("audit chain not checkpointed", problem=str(mismatch))
            except Exception as exc:
                log.warning("audit chain checkpoint failed", error=type(exc).__name__)
