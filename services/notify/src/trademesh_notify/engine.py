"""The notify domain logic: pure, no I/O and no wall clock, testable without a broker.

What an event is to a user (its kind and its owner), what a delivery of it says (the body a
channel receives), and when a failed delivery is tried again (exponential back-off with full
jitter, then dead).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID

from trademesh_events.base import Event
from trademesh_events.envelope import Envelope
from trademesh_events.orders import OrderDenied, OrderFilled


class EventKind(StrEnum):
    """What a user subscribes a channel to. This increment sends fills and denials."""

    FILL = "fill"
    DENIAL = "denial"


class ChannelKind(StrEnum):
    WEBHOOK = "webhook"


@dataclass(frozen=True)
class Notice:
    """An event worth telling its owner about: whose it is, of which kind, and its body."""

    event_id: UUID
    owner: UUID
    kind: EventKind
    event_type: str
    body: bytes


def notice_of(event: Event, envelope: Envelope) -> Notice | None:
    """The notice of `event`, or None for an event of no kind a user subscribes to.

    The owner is the event's own `user_id`: order events and denials carry the user whose order
    it is, so no lookup of the account's owner is needed (docs/decisions/0129-notify-owner-and-
    delivery.md)."""
    match event:
        case OrderFilled() | OrderDenied():
            kind = EventKind.FILL if isinstance(event, OrderFilled) else EventKind.DENIAL
            return Notice(envelope.id, event.user_id, kind, event.type, body(event, envelope, kind))
        case _:
            return None


def body(event: Event, envelope: Envelope, kind: EventKind) -> bytes:
    """What a webhook receives: the event's id, kind, type and time, and the event as JSON
    (Decimals as strings, as on the bus)."""
    document: dict[str, Any] = {
        "id": str(envelope.id),
        "kind": kind.value,
        "type": event.type,
        "time": envelope.time.isoformat(),
        "data": json.loads(event.__pydantic_serializer__.to_json(event)),
    }
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how late a failed delivery is tried again."""

    max_attempts: int = 8
    base_s: float = 1.0
    cap_s: float = 600.0


def next_attempt(
    policy: RetryPolicy, attempts: int, now: datetime, jitter: float
) -> datetime | None:
    """When to try again after `attempts` failed tries (1 after the first), or None: dead.

    Full jitter (AWS architecture blog, "Exponential Backoff And Jitter"): a uniform draw
    `jitter` in [0, 1) of the capped exponential delay, so that many failing deliveries to one
    receiver do not come back together. The draw is the caller's, to keep this pure."""
    if not 0 <= jitter < 1:
        raise ValueError("jitter is a draw in [0, 1)")
    if attempts >= policy.max_attempts:
        return None
    ceiling = min(policy.cap_s, policy.base_s * 2 ** (attempts - 1))
    return now + timedelta(seconds=ceiling * jitter)
