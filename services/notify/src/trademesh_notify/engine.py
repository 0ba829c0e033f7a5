"""The notify domain logic: pure, no I/O and no wall clock, testable without a broker.

The generated service ships a sample domain, *activity*: for every partition key (an instrument,
an account, a bot, ...) it counts the events the service consumed ("in") and published ("out"),
and remembers the last one. Replace it with the service's own logic and keep the shape: plain
functions and classes that take what they need as arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from uuid import UUID

from trademesh_events.base import Event
from trademesh_events.envelope import Envelope
from trademesh_events.topics import TopicSpec

Direction = Literal["in", "out"]


@dataclass(frozen=True)
class Observation:
    """One event the service consumed or published."""

    key: str
    direction: Direction
    topic: str
    event_id: UUID
    event_type: str
    at: datetime


@dataclass(frozen=True)
class Activity:
    """What the service saw of one key in one direction."""

    key: str
    direction: Direction
    events: int
    last_event_id: UUID
    last_event_type: str
    last_topic: str
    first_at: datetime
    last_at: datetime


def observe(
    spec: TopicSpec[Event], event: Event, envelope: Envelope, direction: Direction
) -> Observation:
    """The observation of `event` on `spec`'s topic, timed by its envelope (the event's time)."""
    return Observation(
        key=spec.key_of(event).decode(),
        direction=direction,
        topic=spec.name,
        event_id=envelope.id,
        event_type=envelope.type,
        at=envelope.time,
    )


def record(previous: Activity | None, seen: Observation) -> Activity:
    """The activity after `seen`. Events of one key may arrive out of time order (replays,
    retries), so "last" is the latest by event time, not the latest to arrive."""
    if previous is None:
        return Activity(
            key=seen.key,
            direction=seen.direction,
            events=1,
            last_event_id=seen.event_id,
            last_event_type=seen.event_type,
            last_topic=seen.topic,
            first_at=seen.at,
            last_at=seen.at,
        )
    if (previous.key, previous.direction) != (seen.key, seen.direction):
        raise ValueError(
            f"observation of {seen.key!r}/{seen.direction} applied to "
            f"{previous.key!r}/{previous.direction}"
        )
    latest = seen.at >= previous.last_at
    return Activity(
        key=previous.key,
        direction=previous.direction,
        events=previous.events + 1,
        last_event_id=seen.event_id if latest else previous.last_event_id,
        last_event_type=seen.event_type if latest else previous.last_event_type,
        last_topic=seen.topic if latest else previous.last_topic,
        first_at=min(previous.first_at, seen.at),
        last_at=max(previous.last_at, seen.at),
    )
