"""Approval-mode bots' orders decided: approved (the intent goes to risk), rejected by the owner,
or expired (both told to the bot's strategy as order events), once each, through the outbox.

Locks are taken in the order the bar handler takes them, the bot's row first and the approval
after, so that a decision and a bar of the same bot never deadlock. A decision is a conditional
update (`status = 'pending'`, and before or after `expires_at`) in the transaction that writes
its events: two requests, two replicas or a restart between them decide it once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime
from typing import Literal
from uuid import UUID

from trademesh_bus.outbox import Outbox
from trademesh_db import Database
from trademesh_events.bots import ApprovalDecision
from trademesh_events.ids import BotId, UserId
from trademesh_events.orders import OrderExpired, OrderRejected
from trademesh_observability.logging import get_logger

from trademesh_strategy.approvals import AWAITING_APPROVAL, ApprovalRecord, ApprovalStore, Channel
from trademesh_strategy.store import BotStore
from trademesh_strategy.usecases.runner import BotRuntime, decided_event

log = get_logger("trademesh_strategy.approvals")

OwnerDecision = Literal["approve", "reject"]
_DECISIONS = {"approve": ApprovalDecision.APPROVED, "reject": ApprovalDecision.REJECTED}
REJECTED_REASON = "rejected by the bot's owner"


class UnknownApproval(LookupError):
    """No such approval (or not the caller's, or not of that bot)."""


class ApprovalClosed(Exception):
    """The approval is decided already, or expired: nothing changed."""

    def __init__(self, record: ApprovalRecord, expired: bool) -> None:
        super().__init__(record.status)
        self.record = record
        self.expired = expired


class ApprovalDesk:
    """Decides approvals: the owner's decisions (API or signed link) and the expiry sweep."""

    def __init__(
        self,
        *,
        db: Database,
        store: ApprovalStore,
        bots: BotStore,
        runtime: BotRuntime,
        outbox: Outbox,
        clock: Callable[[], datetime],
        sweep_interval_s: float = 1.0,
    ) -> None:
        self.db = db
        self.store = store
        self.bots = bots
        self.runtime = runtime
        self.outbox = outbox
        self.clock = clock
        self.sweep_interval_s = sweep_interval_s

    async def find(
        self, approval_id: UUID, *, owner: UserId | None = None, bot_id: BotId | None = None
    ) -> ApprovalRecord:
        """The approval, if it is `owner`'s and `bot_id`'s (when given); else UnknownApproval."""
        found = await self.store.get(approval_id)
        if (
            found is None
            or (owner is not None and found.user_id != owner)
            or (bot_id is not None and found.bot_id != bot_id)
        ):
            raise UnknownApproval(approval_id)
        return found

    async def decide(
        self, approval: ApprovalRecord, decision: OwnerDecision, channel: Channel
    ) -> ApprovalRecord:
        """The owner's decision on `approval` (found with `find`), taken once: approved, its
        intent goes to orders.intents.v1; rejected, the strategy hears OrderRejected. Raises
        ApprovalClosed when it is decided already or expired."""
        async with self.db.transaction() as conn:
            await self.bots.get(approval.bot_id, conn=conn, lock=True)
            now = self.clock()
            decided = await self.store.decide(
                conn,
                approval.approval_id,
                _DECISIONS[decision],
                now=now,
                decided_by=approval.user_id,  # only the owner decides, by token or by link
                channel=channel,
            )
            if decided is None:
                current = await self.store.get(approval.approval_id, conn)
                assert current is not None
                expired = current.status == "expired" or (
                    current.status == "pending" and current.expires_at <= now
                )
                raise ApprovalClosed(current, expired)
            cid = decided.client_order_id
            if decision == "approve":
                await conn.execute(
                    "UPDATE bot_orders SET status = 'REQUESTED', updated_at = now() "
                    "WHERE client_order_id = $1 AND status = $2",
                    cid,
                    AWAITING_APPROVAL,
                )
                await self.outbox.add(conn, decided.intent.model_copy(update={"created_at": now}))
            await self.outbox.add(conn, decided_event(decided))
            if decision == "reject":
                intent = decided.intent
                await self.runtime.tell(
                    conn,
                    decided.bot_id,
                    OrderRejected(
                        account_id=intent.account_id,
                        user_id=intent.user_id,
                        client_order_id=cid,
                        instrument_id=intent.instrument_id,
                        reason=REJECTED_REASON,
                        ts=now,
                    ),
                )
        log.info(
            "approval decided",
            approval_id=str(decided.approval_id),
            bot_id=str(decided.bot_id),
            client_order_id=cid,
            decision=decided.status,
            channel=channel,
        )
        return decided

    async def expire(self, approval_id: UUID, bot_id: BotId) -> bool:
        """Expire one pending approval past its expiry: ApprovalDecided(expired), and the
        strategy hears OrderExpired. False when it was decided meanwhile (another replica)."""
        async with self.db.transaction() as conn:
            await self.bots.get(bot_id, conn=conn, lock=True)
            now = self.clock()
            expired = await self.store.decide(
                conn, approval_id, ApprovalDecision.EXPIRED, now=now, decided_by=None, channel=None
            )
            if expired is None:
                return False
            await self.outbox.add(conn, decided_event(expired))
            intent = expired.intent
            await self.runtime.tell(
                conn,
                bot_id,
                OrderExpired(
                    account_id=intent.account_id,
                    user_id=intent.user_id,
                    client_order_id=expired.client_order_id,
                    instrument_id=intent.instrument_id,
                    ts=now,
                ),
            )
        log.info(
            "approval expired",
            approval_id=str(approval_id),
            bot_id=str(bot_id),
            client_order_id=expired.client_order_id,
        )
        return True

    async def sweep(self, limit: int = 100) -> int:
        """Expire what is overdue now (at most `limit`); how many expired."""
        done = 0
        for approval_id, bot_id in await self.store.due(self.clock(), limit):
            done += await self.expire(approval_id, bot_id)
        return done

    async def run(self, stop: asyncio.Event) -> None:
        """The expiry loop: at start it expires what became overdue while the service was away,
        then every sweep_interval_s. Replicas may all run it: each expiry locks the bot and
        updates only a still-pending row, so an approval expires once."""
        while not stop.is_set():
            try:
                while await self.sweep() > 0 and not stop.is_set():
                    pass
            except Exception:  # a failure here must not end the loop: the next sweep retries
                log.exception("approval sweep failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.sweep_interval_s)
