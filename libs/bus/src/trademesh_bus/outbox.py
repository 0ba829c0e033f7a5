"""The transactional outbox: an event is stored with the state change it describes, then relayed to Kafka."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import asyncpg
from opentelemetry import context as otel_context
from opentelemetry import propagate
from trademesh_db.pool import Database
from trademesh_events.envelope import Envelope, new_envelope
from trademesh_events.topics import TopicSpec, topic_for

from trademesh_bus import metrics

if TYPE_CHECKING:
    from trademesh_bus.bus import Bus

log = logging.getLogger("trademesh.bus.outbox")

NOTIFY_CHANNEL = "trademesh_outbox"


class Outbox:
    """Writes events into the current schema's `outbox` table on a caller's connection."""

    def __init__(self, service: str) -> None:
        self.service = service

    async def add(
        self,
        conn: asyncpg.Connection,
        event: Any,
        *,
        topic: TopicSpec | None = None,
        subject: str | None = None,
        traceparent: str | None = None,
    ) -> Envelope:
        """Store `event` for publishing. Call inside the transaction of the state change: if it
        rolls back, the event is never published; if it commits, it is published at least once.
        The event travels under the caller's trace, or under `traceparent` when given (an event
        that belongs to an earlier request's trace: a resting order's fill)."""
        spec = topic or topic_for(event)
        envelope = new_envelope(event, self.service, subject=subject)
        headers = envelope.to_headers()
        # Keep the trace: the relay publishes under this context later.
        if traceparent:
            headers["traceparent"] = traceparent
        else:
            propagate.inject(headers)
        await conn.execute(
            "INSERT INTO outbox (event_id, topic, key, headers, payload) VALUES ($1, $2, $3, $4::jsonb, $5)",
            envelope.id,
            spec.name,
            spec.key_of(event),
            json.dumps(headers),
            spec.encode(event),
        )
        return envelope


class OutboxRelay:
    """Publishes committed outbox rows in order and marks them published.

    One relay per schema works at a time (a transaction-level advisory lock), so events leave in
    commit order even with several replicas. A crash after publishing but before marking leaves
    the rows unmarked: they are published again, and consumers' inboxes drop the duplicates.
    """

    def __init__(
        self,
        db: Database,
        bus: Bus,
        *,
        batch_size: int = 500,
        poll_interval: float = 1.0,
        keep_published: timedelta = timedelta(days=1),
    ) -> None:
        self.db = db
        self.bus = bus
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.keep_published = keep_published
        self._wake = asyncio.Event()

    async def relay_once(self) -> int:
        """Publish up to batch_size pending rows; returns how many were published."""
        async with self.db.transaction() as conn:
            locked = await conn.fetchval(
                "SELECT pg_try_advisory_xact_lock(hashtext('trademesh.outbox.' || current_schema()))"
            )
            if not locked:
                return 0
            rows = await conn.fetch(
                "SELECT seq, topic, key, headers, payload, created_at FROM outbox "
                "WHERE published_at IS NULL ORDER BY seq LIMIT $1",
                self.batch_size,
            )
            if not rows:
                metrics.outbox_pending(self.bus.service, 0)
                return 0
            acks = []
            for row in rows:
                headers: dict[str, str] = json.loads(row["headers"])
                token = otel_context.attach(propagate.extract(headers))
                try:
                    acks.append(
                        await self.bus.publish_raw(
                            row["topic"], row["payload"], row["key"], headers, confirm=False
                        )
                    )
                finally:
                    otel_context.detach(token)
            await asyncio.gather(*acks)
            await self._after_publish(rows)
            await conn.execute(
                "UPDATE outbox SET published_at = now() WHERE seq = ANY($1::bigint[])",
                [row["seq"] for row in rows],
            )
            now = datetime.now(UTC)
            for row in rows:
                metrics.outbox_relayed(
                    self.bus.service, row["topic"], (now - row["created_at"]).total_seconds()
                )
            pending = await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            metrics.outbox_pending(self.bus.service, int(pending) - len(rows))
            return len(rows)

    async def _after_publish(self, rows: list[asyncpg.Record]) -> None:
        """Between the broker's acknowledgement and marking the rows: the window a crash test targets."""

    async def prune(self) -> int:
        """Delete rows published longer ago than keep_published."""
        status = await self.db.pool.execute(
            "DELETE FROM outbox WHERE published_at < now() - $1::interval", self.keep_published
        )
        return int(status.split()[-1])

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until `stop` is set: woken by NOTIFY at commit, polling as a fallback."""
        listener = await self.db.pool.acquire()
        try:
            await listener.add_listener(NOTIFY_CHANNEL, self._on_notify)
            while not stop.is_set():
                # Cleared before the pass, not after: a commit whose NOTIFY lands while the pass
                # runs wakes the next pass at once instead of waiting for the poll interval.
                self._wake.clear()
                try:
                    while await self.relay_once() == self.batch_size:
                        pass
                except Exception:
                    # Broker or database away: keep the rows, try again after the poll interval.
                    log.exception("outbox relay failed; will retry")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(_first(self._wake, stop), self.poll_interval)
        finally:
            with contextlib.suppress(Exception):
                await listener.remove_listener(NOTIFY_CHANNEL, self._on_notify)
            await self.db.pool.release(listener)

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        if payload == self.db.schema:
            self._wake.set()


async def _first(*events: asyncio.Event) -> None:
    waiters = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
