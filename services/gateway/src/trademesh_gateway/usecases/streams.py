"""The fan-out of the caller's own events to their open event streams, in this process.

Each gateway process reads the user topics with a consumer group of its own, from the end
(handlers.py), and hands every event to `EventHub.forward`; the hub puts one that names a user on
the queues of that user's open streams, and only theirs. A stream that cannot keep up loses its
oldest events (counted), never the process's memory nor the other streams' pace.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from trademesh_events.base import Event
from trademesh_events.envelope import Envelope
from trademesh_http import ProblemError
from trademesh_observability import metrics
from trademesh_observability.logging import get_logger

from trademesh_gateway.engine import event_owner

log = get_logger("trademesh_gateway.streams")


@dataclass(frozen=True)
class StreamEvent:
    """One event as a stream sends it."""

    id: str
    type: str
    topic: str
    data: dict[str, Any]


class EventHub:
    """Open streams by user; `publish` reaches only the streams of the event's user."""

    def __init__(
        self, *, queue_size: int, max_streams_per_user: int, service: str = "gateway"
    ) -> None:
        self.service = service
        self.queue_size = queue_size
        self.max_streams_per_user = max_streams_per_user
        self._queues: dict[UUID, set[asyncio.Queue[StreamEvent]]] = defaultdict(set)
        #: Events slow streams lost (their queue was full: the oldest went).
        self.dropped = 0

    def streams_of(self, user: UUID) -> int:
        return len(self._queues.get(user, ()))

    def admit(self, user: UUID) -> None:
        """429 problem when `user` has as many open streams as allowed."""
        if self.streams_of(user) >= self.max_streams_per_user:
            metrics.GATEWAY_RATE_LIMITED.labels(service=self.service, scope="streams").inc()
            raise ProblemError(
                429,
                "Too many event streams",
                f"At most {self.max_streams_per_user} open event streams per user.",
                type="/problems/rate-limited",
                headers={"Retry-After": "5"},
            )

    @asynccontextmanager
    async def subscribe(self, user: UUID) -> AsyncIterator[asyncio.Queue[StreamEvent]]:
        """A queue of `user`'s events while the context lasts; 429 past the streams allowed."""
        self.admit(user)
        queue: asyncio.Queue[StreamEvent] = asyncio.Queue(self.queue_size)
        self._queues[user].add(queue)
        open_streams = metrics.GATEWAY_STREAMS_OPEN.labels(service=self.service)
        open_streams.inc()
        try:
            yield queue
        finally:
            open_streams.dec()
            queues = self._queues.get(user)
            if queues is not None:
                queues.discard(queue)
                if not queues:
                    del self._queues[user]

    def forward(self, event: Event, envelope: Envelope, topic: str) -> int:
        """Put a consumed event on the streams of the user it names (none when it names
        nobody); how many streams got it."""
        owner = event_owner(event)
        if owner is None:
            return 0
        return self.publish(
            owner,
            StreamEvent(
                id=str(envelope.id),
                type=envelope.type,
                topic=topic,
                data={"time": envelope.time.isoformat(), "event": event.model_dump(mode="json")},
            ),
        )

    def publish(self, user: UUID, event: StreamEvent) -> int:
        """Put `event` on every stream of `user`; how many streams got it."""
        queues = self._queues.get(user, set())
        for queue in queues:
            if queue.full():
                queue.get_nowait()
                self.dropped += 1
                metrics.GATEWAY_STREAM_EVENTS_DROPPED.labels(service=self.service).inc()
                log.warning("event stream too slow: oldest event dropped", user_id=str(user))
            queue.put_nowait(event)
        return len(queues)
