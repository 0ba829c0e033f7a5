"""Bot lifecycle events and the approvals of approval-mode bots' orders, keyed by bot."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal
from uuid import UUID

from pydantic import StringConstraints

from trademesh_events.base import Event
from trademesh_events.ids import AccountId, BotId, ClientOrderId, InstrumentId, UserId, UtcDateTime
from trademesh_events.money import Price, Quantity
from trademesh_events.orders import OrderType, Side


class BotState(StrEnum):
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    STOPPED = "STOPPED"
    ERROR = "ERROR"


class BotStateChanged(Event):
    type: Literal["trademesh.bot.state_changed"] = "trademesh.bot.state_changed"
    bot_id: BotId
    user_id: UserId
    state: BotState
    reason: Annotated[str, StringConstraints(max_length=1000)] | None = None
    ts: UtcDateTime


class ApprovalDecision(StrEnum):
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"


class ApprovalRequested(Event):
    """An approval-mode bot asked for an order, which waits for its owner's decision until
    `expires_at`. The order itself is not on orders.intents.v1 (it is once approved); this is
    what a notification shows of it. No link or signature travels here: notify signs its own."""

    type: Literal["trademesh.bot.approval_requested"] = "trademesh.bot.approval_requested"
    approval_id: UUID
    bot_id: BotId
    user_id: UserId
    account_id: AccountId
    client_order_id: ClientOrderId
    instrument_id: InstrumentId
    side: Side
    order_type: OrderType
    quantity: Quantity
    limit_price: Price | None = None
    stop_price: Price | None = None
    requested_at: UtcDateTime
    expires_at: UtcDateTime


class ApprovalDecided(Event):
    """An approval was decided: by its owner (`decided_by`, through the API or a signed link:
    `channel`), or it expired (`decided_by` and `channel` None)."""

    type: Literal["trademesh.bot.approval_decided"] = "trademesh.bot.approval_decided"
    approval_id: UUID
    bot_id: BotId
    user_id: UserId
    client_order_id: ClientOrderId
    decision: ApprovalDecision
    decided_by: UserId | None = None
    channel: Literal["api", "link"] | None = None
    decided_at: UtcDateTime
