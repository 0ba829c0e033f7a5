"""Topic names, the events each carries, and how each is keyed: the one registry of the bus.

Each topic is a `TopicSpec[E]`, generic in the union `E` of the event types it carries, under a
typed constant (`ORDERS_EVENTS_TOPIC: TopicSpec[OrderLifecycleEvent]`) next to its name
(`ORDERS_EVENTS`, which the CLI and tests use). A handler subscribed to a typed topic takes
exactly that union (the bus's signatures say so), so mypy checks that it handles every type the
topic carries: see docs/decisions/0111-use-case-layer.md.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeAlias, TypeVar, Union

from pydantic import Field, TypeAdapter

from trademesh_events import audit, auth, bots, marketdata, orders, risk
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
RISK_EVENTS = "risk.events.v1"

# Key used when the key field is empty (a failed login for an unknown user).
UNKEYED = b"-"


@functools.cache
def _adapter(events: tuple[type[Event], ...]) -> TypeAdapter[Any]:
    if len(events) == 1:
        return TypeAdapter(events[0])
    union = Union[events]  # type: ignore[valid-type]  # noqa: UP007 - built from a runtime tuple
    return TypeAdapter(Annotated[union, Field(discriminator="type")])


# What each topic carries, as one type: the parameter of a handler of the topic.
OrderIntent: TypeAlias = orders.SubmitOrder | orders.CancelOrder
ApprovedCommand: TypeAlias = orders.OrderApproved | orders.CancelOrder | orders.CancelAllOrders
OrderLifecycleEvent: TypeAlias = orders.OrderLifecycleEvent
OrdersTopicEvent: TypeAlias = orders.OrdersTopicEvent  # the lifecycle and AccountChanged
BotEvent: TypeAlias = bots.BotStateChanged | bots.ApprovalRequested | bots.ApprovalDecided
AuthEvent: TypeAlias = (
    auth.UserRegistered
    | auth.UserLoggedIn
    | auth.LoginFailed
    | auth.RoleChanged
    | auth.UserDisabled
    | auth.ApiKeyCreated
    | auth.ApiKeyRevoked
    | auth.SessionsRevoked
)

# Covariant: a TopicSpec[Tick] is a TopicSpec[Tick | Bar] and a TopicSpec[Event] (what the
# registry and a generic consumer such as audit see).
E_co = TypeVar("E_co", bound=Event, covariant=True)


@dataclass(frozen=True)
class TopicSpec(Generic[E_co]):
    """A topic: its name (ending in .v<major>), the event types it carries, its key field, partitions."""

    name: str
    events: tuple[type[E_co], ...]
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

    def decode(self, data: bytes) -> E_co:
        """The event in `data`; raises pydantic.ValidationError for anything else."""
        event: E_co = _adapter(self.events).validate_json(data)
        return event


MD_TICKS_TOPIC: TopicSpec[marketdata.Tick] = TopicSpec(
    MD_TICKS, (marketdata.Tick,), "instrument_id", 6, "Trades and prices per instrument."
)
MD_BARS_TOPIC: TopicSpec[marketdata.Bar] = TopicSpec(
    MD_BARS, (marketdata.Bar,), "instrument_id", 6, "OHLCV bars per instrument and timeframe."
)
ORDERS_INTENTS_TOPIC: TopicSpec[OrderIntent] = TopicSpec(
    ORDERS_INTENTS,
    (orders.SubmitOrder, orders.CancelOrder),
    "account_id",
    6,
    "Order commands from bots and manual orders, checked by risk.",
)
ORDERS_APPROVED_TOPIC: TopicSpec[ApprovedCommand] = TopicSpec(
    ORDERS_APPROVED,
    (orders.OrderApproved, orders.CancelOrder, orders.CancelAllOrders),
    "account_id",
    6,
    "Orders risk approved, and cancellations, for execution.",
)
ORDERS_DENIED_TOPIC: TopicSpec[orders.OrderDenied] = TopicSpec(
    ORDERS_DENIED,
    (orders.OrderDenied,),
    "account_id",
    6,
    "Orders risk denied, with a reason code.",
)
ORDERS_EVENTS_TOPIC: TopicSpec[OrdersTopicEvent] = TopicSpec(
    ORDERS_EVENTS,
    orders.ORDERS_TOPIC_EVENTS,
    "account_id",
    6,
    "Order lifecycle events and fills, and accounts' buying-power changes.",
)
ORDERS_DISCREPANCIES_TOPIC: TopicSpec[orders.DiscrepancyDetected] = TopicSpec(
    ORDERS_DISCREPANCIES,
    (orders.DiscrepancyDetected,),
    "account_id",
    3,
    "What execution's reconciliation with a venue found disagreeing, and what it did.",
)
BOTS_EVENTS_TOPIC: TopicSpec[BotEvent] = TopicSpec(
    BOTS_EVENTS,
    (bots.BotStateChanged, bots.ApprovalRequested, bots.ApprovalDecided),
    "bot_id",
    3,
    "Bot state changes, and approval-mode bots' orders waiting for and given a decision.",
)
AUTH_EVENTS_TOPIC: TopicSpec[AuthEvent] = TopicSpec(
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
)
AUDIT_CHECKPOINTS_TOPIC: TopicSpec[audit.ChainCheckpointed] = TopicSpec(
    AUDIT_CHECKPOINTS,
    (audit.ChainCheckpointed,),
    "chain",
    1,
    "Signed checkpoints of the audit log's keyed hash chain, kept outside its database.",
)

RISK_EVENTS_TOPIC: TopicSpec[risk.TradingStateChanged] = TopicSpec(
    RISK_EVENTS,
    (risk.TradingStateChanged,),
    "account_id",
    6,
    "Accounts' trading state changes (ACTIVE, REDUCING, HALTED) and why; unkeyed: the "
    "platform's (the global kill switch).",
)

TOPICS: tuple[TopicSpec[Event], ...] = (
    MD_TICKS_TOPIC,
    MD_BARS_TOPIC,
    ORDERS_INTENTS_TOPIC,
    ORDERS_APPROVED_TOPIC,
    ORDERS_DENIED_TOPIC,
    ORDERS_EVENTS_TOPIC,
    ORDERS_DISCREPANCIES_TOPIC,
    BOTS_EVENTS_TOPIC,
    AUTH_EVENTS_TOPIC,
    AUDIT_CHECKPOINTS_TOPIC,
    RISK_EVENTS_TOPIC,
)

_BY_NAME = {spec.name: spec for spec in TOPICS}
# CancelOrder travels on two topics (intents, then approved); publishing it without an explicit
# topic means the intent, so the first registration wins.
_BY_TYPE: dict[type[Event], TopicSpec[Event]] = {}
for _spec in TOPICS:
    for _cls in _spec.events:
        _BY_TYPE.setdefault(_cls, _spec)


def get_topic(name: str) -> TopicSpec[Any]:
    """The topic named `name`, for code that has only the name (the CLI, tests, a generic
    consumer). Typed code uses the topic's constant (`ORDERS_EVENTS_TOPIC`), which says what it
    carries."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown topic {name!r}; known: {', '.join(sorted(_BY_NAME))}") from None


def topic_for(event: Event | type[Event]) -> TopicSpec[Event]:
    """The topic an event is published to by default."""
    cls = event if isinstance(event, type) else type(event)
    try:
        return _BY_TYPE[cls]
    except KeyError:
        raise KeyError(f"{cls.__name__} is not carried by any topic") from None
