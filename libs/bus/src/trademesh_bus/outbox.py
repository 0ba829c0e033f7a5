"""The transactional outbox: an event is stored with the state change it describes, then relayed to Kafka."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
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


@dataclass(frozen=True, slots=True)
class Outgoing:
    """An event for Outbox.add_many, with what Outbox.add takes beside it."""

    event: Any
    topic: TopicSpec[Any] | None = None
    subject: str | None = None
    traceparent: str | None = None


class Outbox:
    """Writes events into the current schema's `outbox` table on a caller's connection."""

    def __init__(self, service: str) -> None:
        self.service = service
        # The connections whose open transaction wrote events, while a relay watches: their
        # commit wakes it (OutboxRelay.run).
        self._written: set[int] = set()
        self._watched = False

    def watch(self) -> None:
        """A relay listens from now on: remember which transactions write events (see wrote)."""
        self._watched = True

    def wrote(self, conn: asyncpg.Connection, committed: bool) -> bool:
        """Whether `conn`'s transaction, which just ended, committed events (and forget it)."""
        if not self._written:
            return False
        try:
            self._written.remove(id(conn))
        except KeyError:
            return False
        return committed

    async def add(
        self,
        conn: asyncpg.Connection,
        event: Any,
        *,
        topic: TopicSpec[Any] | None = None,
        subject: str | None = None,
        traceparent: str | None = None,
    ) -> Envelope:
        """Store `event` for publishing. Call inside the transaction of the state change: if it
        rolls back, the event is never published; if it commits, it is published at least once.
        The event travels under the caller's trace, or under `traceparent` when given (an event
        that belongs to an earlier request's trace: a resting order's fill)."""
        envelope, row = self._row(Outgoing(event, topic, subject, traceparent))
        await conn.execute(
            "INSERT INTO outbox (event_id, topic, key, headers, payload) VALUES ($1, $2, $3, $4::jsonb, $5)",
            *row,
        )
        self._track(conn)
        return envelope

    async def add_many(
        self, conn: asyncpg.Connection, outgoing: Sequence[Outgoing]
    ) -> list[Envelope]:
        """Store several events with one statement, as add() does each, in the order given (the
        relay publishes them in that order): for a handler that decides a whole batch and writes
        its events at the end. Each event travels under its `traceparent`, or else under the
        caller's trace at this call."""
        if not outgoing:
            return []
        envelopes, rows = [], []
        for item in outgoing:
            envelope, row = self._row(item)
            envelopes.append(envelope)
            rows.append(row)
        await conn.execute(
            "INSERT INTO outbox (event_id, topic, key, headers, payload) "
            "SELECT e.id, e.topic, e.key, e.headers::jsonb, e.payload "
            "FROM unnest($1::uuid[], $2::text[], $3::bytea[], $4::text[], $5::bytea[]) "
            "WITH ORDINALITY AS e(id, topic, key, headers, payload, n) ORDER BY e.n",
            *(list(column) for column in zip(*rows, strict=True)),
        )
        self._track(conn)
        return envelopes

    def _row(self, item: Outgoing) -> tuple[Envelope, tuple[Any, ...]]:
        spec = item.topic or topic_for(item.event)
        envelope = new_envelope(item.event, self.service, subject=item.subject)
        headers = envelope.to_headers()
        # Keep the trace: the relay publishes under this context later.
        if item.traceparent:
            headers["traceparent"] = item.traceparent
        else:
            propagate.inject(headers)
        row = (
            envelope.id,
            spec.name,
            spec.key_of(item.event),
            json.dumps(headers),
            spec.encode(item.event),
        )
        return envelope, row

    def _track(self, conn: asyncpg.Connection) -> None:
        if self._watched:
            self._written.add(id(conn))


class OutboxRelay:
    """Publishes committed outbox rows in order and marks them published.

    One relay per schema works at a time (a transaction-level advisory lock), so events leave in
    commit order even with several replicas. A crash after publishing but before marking leaves
    the rows unmarked: they are published again, and consumers' inboxes drop the duplicates.

    It publishes at once: a transaction of this process that wrote events wakes it when it
    commits (Database.on_transaction_end), so an event leaves a millisecond or two after its
    commit. The poll every `poll_interval` is only the recovery path: rows written by another
    process (an admin command), or left by a failed pass or a crash.
    """

    def __init__(
        self,
        db: Database,
        bus: Bus,
        *,
        batch_size: int = 500,
        poll_interval: float = 1.0,
    ) -> None:
        self.db = db
        self.bus = bus
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self._wake = asyncio.Event()
        self._outbox = bus.outbox
        self._outbox.watch()
        db.on_transaction_end(self._ended)

    def _ended(self, conn: asyncpg.Connection, committed: bool) -> None:
        if self._outbox.wrote(conn, committed):
            self._wake.set()

    def wake(self) -> None:
        """Run a pass now (rows were committed that this process did not write itself)."""
        self._wake.set()

    async def relay_once(self) -> int:
        """Publish up to batch_size pending rows; returns how many were published, or -1 when
        another replica's relay holds the lock."""
        async with self.db.transaction() as conn:
            locked = await conn.fetchval(
                "SELECT pg_try_advisory_xact_lock(hashtext('trademesh.outbox.' || current_schema()))"
            )
            if not locked:
                return -1
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
            if len(rows) < self.batch_size:
                pending = 0  # it took every pending row (what commits meanwhile wakes it again)
            else:
                pending = await conn.fetchval(
                    "SELECT count(*) FROM outbox WHERE published_at IS NULL"
                ) - len(rows)
            metrics.outbox_pending(self.bus.service, int(pending))
            return len(rows)

    async def _after_publish(self, rows: list[asyncpg.Record]) -> None:
        """Between the broker's acknowledgement and marking the rows: the window a crash test targets."""

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until `stop` is set: woken by this process's commits, polling as recovery."""
        while not stop.is_set():
            # Cleared before the pass, not after: a commit that lands while the pass runs wakes
            # the next pass at once instead of waiting for the poll interval.
            self._wake.clear()
            try:
                await self._drain(stop)
            except Exception:
                # Broker or database away: keep the rows, try again after the poll interval.
                log.exception("outbox relay failed; will retry")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_first(self._wake, stop), self.poll_interval)

    async def _drain(self, stop: asyncio.Event) -> None:
        """Passes until the outbox is empty. When another replica's relay holds the lock, its
        pass may have begun before this process's commit: try again shortly, not at the poll,
        backing off (5 ms, doubling up to 100 ms) so that many replicas locked out by one do not
        take turns at the database every few milliseconds."""
        waited, delay = 0.0, _LOCKED_RETRY_S
        while not stop.is_set():
            done = await self.relay_once()
            if done == self.batch_size:
                continue
            if done >= 0 or waited >= self.poll_interval:
                return
            await asyncio.sleep(delay)
            waited += delay
            delay = min(delay * 2, _LOCKED_RETRY_MAX_S)


_LOCKED_RETRY_S = 0.005
_LOCKED_RETRY_MAX_S = 0.1


async def _first(*events: asyncio.Event) -> None:
    waiters = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
