"""Where approval-mode bots' orders wait for their owner's decision: the `approvals` table.

Every method that changes a row takes the caller's connection (the decision, the order's status
and the events it causes commit together), and every decision is a conditional update on
`status = 'pending'`: a row is decided once, whichever replica or request gets there first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from uuid import UUID

import asyncpg
from trademesh_db import Database
from trademesh_events.bots import ApprovalDecision
from trademesh_events.ids import BotId, ClientOrderId, UserId
from trademesh_events.orders import SubmitOrder

ApprovalStatus = Literal["pending", "approved", "rejected", "expired"]
Channel = Literal["api", "link"]
#: An order's status in bot_orders while its approval is pending.
AWAITING_APPROVAL = "AWAITING_APPROVAL"


@dataclass(frozen=True)
class ApprovalRecord:
    approval_id: UUID
    bot_id: BotId
    user_id: UserId
    client_order_id: ClientOrderId
    intent: SubmitOrder
    created_at: datetime
    expires_at: datetime
    status: ApprovalStatus
    decided_by: UserId | None
    decided_at: datetime | None
    channel: Channel | None


def _record(row: asyncpg.Record) -> ApprovalRecord:
    values = dict(row)
    values["intent"] = SubmitOrder.model_validate_json(values["intent"])
    return ApprovalRecord(**values)


class ApprovalStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(
        self,
        conn: asyncpg.Connection,
        approval_id: UUID,
        intent: SubmitOrder,
        created_at: datetime,
        expires_at: datetime,
    ) -> None:
        assert intent.bot_id is not None
        await conn.execute(
            "INSERT INTO approvals (approval_id, bot_id, user_id, client_order_id, intent, "
            "created_at, expires_at) VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7)",
            approval_id,
            intent.bot_id,
            intent.user_id,
            intent.client_order_id,
            intent.model_dump_json(),
            created_at,
            expires_at,
        )

    async def get(
        self, approval_id: UUID, conn: asyncpg.Connection | None = None
    ) -> ApprovalRecord | None:
        row = await (conn or self.db.pool).fetchrow(
            "SELECT * FROM approvals WHERE approval_id = $1", approval_id
        )
        return None if row is None else _record(row)

    async def decide(
        self,
        conn: asyncpg.Connection,
        approval_id: UUID,
        decision: ApprovalDecision,
        *,
        now: datetime,
        decided_by: UserId | None,
        channel: Channel | None,
    ) -> ApprovalRecord | None:
        """Decide a pending approval, once: None when it is not pending any more, or when the
        decision is the owner's (approved, rejected) and it has expired already (an expiry
        needs it expired)."""
        row = await conn.fetchrow(
            "UPDATE approvals SET status = $3, decided_by = $4, decided_at = $2, channel = $5 "
            "WHERE approval_id = $1 AND status = 'pending' "
            "AND (expires_at <= $2) = ($3 = 'expired') RETURNING *",
            approval_id,
            now,
            decision.value,
            decided_by,
            channel,
        )
        return None if row is None else _record(row)

    async def withdraw(
        self, conn: asyncpg.Connection, client_order_id: ClientOrderId, now: datetime
    ) -> ApprovalRecord | None:
        """The bot cancels an order still waiting for its decision: the approval expires now
        (nobody decided it), and the order never reaches risk. None: no pending approval."""
        row = await conn.fetchrow(
            "UPDATE approvals SET status = 'expired', decided_at = $2 "
            "WHERE client_order_id = $1 AND status = 'pending' RETURNING *",
            client_order_id,
            now,
        )
        return None if row is None else _record(row)

    async def due(self, now: datetime, limit: int) -> list[tuple[UUID, BotId]]:
        """Pending approvals past their expiry, oldest first: (approval id, bot id)."""
        rows = await self.db.pool.fetch(
            "SELECT approval_id, bot_id FROM approvals WHERE status = 'pending' "
            "AND expires_at <= $1 ORDER BY expires_at LIMIT $2",
            now,
            limit,
        )
        return [(row["approval_id"], row["bot_id"]) for row in rows]

    async def page(
        self,
        bot_id: BotId,
        status: ApprovalStatus | None,
        limit: int,
        after: tuple[datetime, UUID] | None = None,
    ) -> list[ApprovalRecord]:
        """A bot's approvals, oldest first, of one status or all."""
        moment, ident = after if after is not None else (None, None)
        rows = await self.db.pool.fetch(
            "SELECT * FROM approvals WHERE bot_id = $1 AND ($2::text IS NULL OR status = $2) "
            "AND ($4::timestamptz IS NULL OR (created_at, approval_id) > ($4, $5::uuid)) "
            "ORDER BY created_at, approval_id LIMIT $3",
            bot_id,
            status,
            limit,
            moment,
            ident,
        )
        return [_record(row) for row in rows]
