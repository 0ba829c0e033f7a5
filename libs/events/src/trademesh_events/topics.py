"""Topic names, the events each carries, and how each is keyed: the one registry of the bus."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter

from trademesh_events import audit, auth, bots, marketdata, orders
from trademesh_events.base import Event

MD_TICKS = "md.ticks.v1"
MD_BARS = "md.bars.v1"
ORDERS_INTENTS = "orders.intents.v1"
ORDERS_APPROVED = "orders.approved.v1"
ORDERS_DENIED = "orders.denied.v1"
ORDERS_EVENTS = "orders.events.v1"
ORDERS_DISCREPANCIES = "orders.discrepancies.v1"
BOTS_EVENTS = "bots.events.v1"
AUTH_EVENTS = "auth.events.v1"
AUDIT_CHECKPOINTS = "audit.checkpoints.v1"

# Key used when the key field is empty (a failed login for an unknown user).
UNKEYED = b"-"


@functools.cache
def _adapter(events: tuple[type[Event], ...]) -> TypeAdapter[Any]:
    if len(events) == 1:
        return TypeAdapter(events[0])
    union = Union[events]  # type: ignore[valid-type]  # noqa: UP007 - built from a runtime tuple
    return TypeAdapter(Annotated[union, Field(discriminator="type")])


@dataclass(frozen=True)
class TopicSpec:
    """A topic: its name (ending in .v<major>), the event types it carries, its key field, partitions."""

    name: str
    events: tuple[type[Event], ...]
    key_field: str
    partitions: int
    description: str

    @property
    def dlq(self) -> str:
        return f"{self.name}.dlq"

    @property
    def event_types(self) -> tuple[str, ...]:
        return tuple(cls.event_type() for cls in self.events)

    def key_of(self, event: Event) -> bytes:
        """The partition key: instrument for market data, account for order flow, bot, user."""
        value = getattr(event, self.key_field)
        return UNKEYED if value is None else str(value).encode()

    def encode(self, event: Event) -> bytes:
        """Compact JSON (Decimals as strings). Refuses an event this topic does not carry."""
        if not isinstance(event, self.events):
            raise TypeError(f"{type(event).__name__} is not carried by {self.name}")
        return event.__pydantic_serializer__.to_json(event)

    def decode(self, data: bytes) -> Any:
        """The event in `data`; raises pydantic.ValidationError for anything else."""
        return _adapter(self.events).validate_json(data)


TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(
        MD_TICKS, (marketdata.Tick,), "instrument_id", 6, "Trades and prices per instrument."
    ),
    TopicSpec(
        MD_BARS, (marketdata.Bar,), "instrument_id", 6, "OHLCV bars per instrument and timeframe."
    ),
    TopicSpec(
        ORDERS_INTENTS,
        (orders.SubmitOrder, orders.CancelOrder),
        "account_id",
        6,
        "Order commands from bots and manual orders, checked by risk.",
    ),
    TopicSpec(
        ORDERS_APPROVED,
        (orders.OrderApproved, orders.CancelOrder, orders.CancelAllOrders),
        "account_id",
        6,
        "Orders risk approved, and cancellations, for execution.",
    ),
    TopicSpec(
        ORDERS_DENIED,
        (orders.OrderDenied,),
        "account_id",
        6,
        "Orders risk denied, with a reason code.",
    ),
    TopicSpec(
        ORDERS_EVENTS, orders.ORDER_LIFECYCLE, "account_id", 6, "Order lifecycle events and fills."
    ),
    TopicSpec(
        ORDERS_DISCREPANCIES,
        (orders.DiscrepancyDetected,),
        "account_id",
        3,
        "What execution's reconciliation with a venue found disagreeing, and what it did.",
    ),
    TopicSpec(BOTS_EVENTS, (bots.BotStateChanged,), "bot_id", 3, "Bot state changes."),
    TopicSpec(
        AUTH_EVENTS,
        (
            auth.UserRegistered,
            auth.UserLoggedIn,
            auth.LoginFailed,
            auth.RoleChanged,
            auth.UserDisabled,
            auth.ApiKeyCreated,
            auth.ApiKeyRevoked,
            auth.SessionsRevoked,
        ),
        "user_id",
        3,
        "Security-relevant user events (no secrets).",
    ),
    TopicSpec(
        AUDIT_CHECKPOINTS,
        (audit.ChainCheckpointed,),
        "chain",
        1,
        "Signed checkpoints of the audit log's keyed hash chain, kept outside its database.",
    ),
)

_BY_NAME = {spec.name: spec for spec in TOPICS}
# CancelOrder travels on two topics (intents, then approved); publishing it without an explicit
# topic means the intent, so the first registration wins.
_BY_TYPE: dict[type[Event], TopicSpec] = {}
for _spec in TOPICS:
    for _cls in _spec.events:
        _BY_TYPE.setdefault(_cls, _spec)


def get_topic(name: str) -> TopicSpec:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown topic {name!r}; known: {', '.join(sorted(_BY_NAME))}") from None


def topic_for(event: Event | type[Event]) -> TopicSpec:
    """The topic an event is published to by default."""
    cls = event if isinstance(event, type) else type(event)
    try:
        return _BY_TYPE[cls]
    except KeyError:
        raise KeyError(f"{cls.__name__} is not carried by any topic") from None
