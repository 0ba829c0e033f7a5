"""The notify domain logic: pure, no I/O and no wall clock, testable without a broker.

What an event is to a user (its kind and its owner), what a delivery of it says (the body a
channel receives), and when a failed delivery is tried again (exponential back-off with full
jitter, then dead).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID

from trademesh_events.base import Event
from trademesh_events.bots import (
    ApprovalDecided,
    ApprovalDecision,
    ApprovalRequested,
    BotState,
    BotStateChanged,
)
from trademesh_events.envelope import Envelope
from trademesh_events.orders import DiscrepancyDetected, OrderDenied, OrderFilled, OrderRejected
from trademesh_events.risk import TradingState, TradingStateChanged, TradingStateReason


class EventKind(StrEnum):
    """What a user subscribes a channel to; each event that is sent is of exactly one kind
    (the service's README has the table: kind, event, what triggers it, owner)."""

    FILL = "fill"
    DENIAL = "denial"
    REJECTION = "rejection"  # the venue refused an order
    BOT_STATE = "bot_state"  # a bot started, paused, stopped: any state but ERROR
    BOT_ERROR = "bot_error"  # a bot stopped on an error
    KILL_SWITCH = "kill_switch"  # an account, or the platform, halted or back from a halt
    REDUCING = "reducing"  # an account into or out of REDUCING (daily loss limit, an admin)
    DISCREPANCY = "discrepancy"  # reconciliation found the books and the venue disagreeing
    # An approval-mode bot's order waiting for its owner's decision (with signed links to decide
    # it, when links are configured), and one that expired undecided.
    APPROVAL = "approval"


class ChannelKind(StrEnum):
    """How a channel is reached: a signed webhook, a Telegram chat (Bot API), or e-mail (SMTP)."""

    WEBHOOK = "webhook"
    TELEGRAM = "telegram"
    EMAIL = "email"


@dataclass(frozen=True)
class Notice:
    """An event worth telling a user about: whose it is, of which kind, when, and its body.

    Whose: `owner`, the user the event names; or, for an event that names only an account,
    None with `account_id`, whose owner the use case looks up (notify learns it from
    AccountChanged); or, for the platform's own trading state (the global kill switch),
    `everyone`: every user with a channel subscribed to the kind. Never more than one of them."""

    event_id: UUID
    owner: UUID | None
    kind: EventKind
    event_type: str
    body: bytes
    time: datetime
    account_id: UUID | None = None
    everyone: bool = False

    def __post_init__(self) -> None:
        audiences = (self.owner is not None or self.account_id is not None) + self.everyone
        if audiences != 1:
            raise ValueError("a notice is for its owner, its account's owner, or everyone")

    def for_owner(self, owner: UUID) -> Notice:
        """This account's notice for `owner`, the account's owner once known."""
        if self.everyone:
            raise ValueError("a notice for everyone has no single owner")
        return replace(self, owner=owner)


def notice_of(event: Event, envelope: Envelope) -> Notice | None:
    """The notice of `event`, or None for an event of no kind a user subscribes to.

    The owner is the event's own `user_id` where it has one: order events, denials, bot events
    and discrepancies carry the user whose order, bot or account it is. A TradingStateChanged
    names only the account (its owner is looked up), or none: the platform's state, for everyone
    (docs/decisions/0129-notify-owner-and-delivery.md, 0131-notify-event-kinds-and-owners.md)."""
    match event:
        case OrderFilled():
            return _notice(event, envelope, EventKind.FILL, owner=event.user_id)
        case OrderDenied():
            return _notice(event, envelope, EventKind.DENIAL, owner=event.user_id)
        case OrderRejected():
            return _notice(event, envelope, EventKind.REJECTION, owner=event.user_id)
        case BotStateChanged():
            kind = EventKind.BOT_ERROR if event.state is BotState.ERROR else EventKind.BOT_STATE
            return _notice(event, envelope, kind, owner=event.user_id)
        case DiscrepancyDetected():
            return _notice(event, envelope, EventKind.DISCREPANCY, owner=event.user_id)
        case ApprovalRequested():
            return _notice(event, envelope, EventKind.APPROVAL, owner=event.user_id)
        case ApprovalDecided(decision=ApprovalDecision.EXPIRED):
            # The owner decided the others, and knows; an expiry happened without them.
            return _notice(event, envelope, EventKind.APPROVAL, owner=event.user_id)
        case TradingStateChanged():
            kind = trading_state_kind(event)
            if event.account_id is None:
                return _notice(event, envelope, kind, everyone=True)
            return _notice(event, envelope, kind, account_id=event.account_id)
        case _:
            return None


_KILL_SWITCH_REASONS = frozenset(
    {
        TradingStateReason.KILL_SWITCH_ENGAGED,
        TradingStateReason.KILL_SWITCH_RELEASED,
        TradingStateReason.GLOBAL_KILL_SWITCH_ENGAGED,
        TradingStateReason.GLOBAL_KILL_SWITCH_RELEASED,
    }
)


def trading_state_kind(event: TradingStateChanged) -> EventKind:
    """A kill switch (the account's or the platform's) engaged or released is `kill_switch`,
    whatever state it leaves; so is an admin's halt or resume by hand. The daily loss limit
    (into REDUCING), or an admin's change into or out of REDUCING, is `reducing`."""
    if event.reason in _KILL_SWITCH_REASONS:
        return EventKind.KILL_SWITCH
    if event.reason is TradingStateReason.DAILY_LOSS_LIMIT:
        return EventKind.REDUCING
    if TradingState.REDUCING in (event.old_state, event.new_state):
        return EventKind.REDUCING
    return EventKind.KILL_SWITCH  # MANUAL, between ACTIVE and HALTED


def _notice(
    event: Event,
    envelope: Envelope,
    kind: EventKind,
    *,
    owner: UUID | None = None,
    account_id: UUID | None = None,
    everyone: bool = False,
) -> Notice:
    return Notice(
        envelope.id,
        owner,
        kind,
        event.type,
        body(event, envelope, kind),
        envelope.time,
        account_id=account_id,
        everyone=everyone,
    )


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
    policy: RetryPolicy,
    attempts: int,
    now: datetime,
    jitter: float,
    not_before: datetime | None = None,
) -> datetime | None:
    """When to try again after `attempts` failed tries (1 after the first), or None: dead.

    Full jitter (AWS architecture blog, "Exponential Backoff And Jitter"): a uniform draw
    `jitter` in [0, 1) of the capped exponential delay, so that many failing deliveries to one
    receiver do not come back together. The draw is the caller's, to keep this pure.
    `not_before` is the receiver's own demand (Telegram's 429 `retry_after`): the next attempt
    is never earlier, even past the cap; it does not add attempts."""
    if not 0 <= jitter < 1:
        raise ValueError("jitter is a draw in [0, 1)")
    if attempts >= policy.max_attempts:
        return None
    ceiling = min(policy.cap_s, policy.base_s * 2 ** (attempts - 1))
    at = now + timedelta(seconds=ceiling * jitter)
    return at if not_before is None else max(at, not_before)
