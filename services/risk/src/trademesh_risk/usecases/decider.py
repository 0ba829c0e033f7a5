"""Deciding intents, following fills, and the switches: the risk service's work, on its tables.

An intent is decided in the transaction of its delivery (inbox entry, decision row, and the
approval or denial in the outbox commit together). The account's row is locked first, so the
intents of one account are decided one at a time, on every replica; an approved order counts
as pending exposure at once, so two quick intents cannot both pass a limit only one fits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
from trademesh_bus.outbox import Outbox
from trademesh_db import Database
from trademesh_events.orders import (
    CancelAllOrders,
    CancelOrder,
    DenialReason,
    OrderApproved,
    OrderCanceled,
    OrderDenied,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    SubmitOrder,
)
from trademesh_events.topics import ORDERS_APPROVED, OrderIntent, get_topic
from trademesh_observability import metrics
from trademesh_observability.logging import get_logger

from trademesh_risk.engine import (
    AccountView,
    InstrumentRules,
    Limits,
    TradingState,
    apply_fill,
    breaches_daily_loss,
    ceilings,
    check,
    effective,
    rules_in_force,
)
from trademesh_risk.store import PositionRow, RiskStore
from trademesh_risk.usecases.prices import PriceBook

log = get_logger("trademesh_risk.decider")

_APPROVED = get_topic(ORDERS_APPROVED)


class Decider:
    def __init__(
        self,
        *,
        db: Database,
        store: RiskStore,
        prices: PriceBook,
        outbox: Outbox,
        service: str,
        clock: Callable[[], datetime],
        default_limits: Limits,
        instrument_bounds: InstrumentRules,
    ) -> None:
        self.db = db
        self.store = store
        self.prices = prices
        self.outbox = outbox
        self.service = service
        self.clock = clock
        self.default_limits = default_limits
        self.instrument_bounds = instrument_bounds
        # Counted from 0 for every known outcome, so that a first denial of a reason, or a first
        # account sent to REDUCING, is an increase that alerts and rate() panels see.
        metrics.RISK_DECISIONS.labels(service=service, decision="approved", reason="")
        for reason in DenialReason:
            metrics.RISK_DECISIONS.labels(service=service, decision="denied", reason=reason.value)
        metrics.RISK_REDUCING.labels(service=service)

    # ---- intents -------------------------------------------------------------------------------

    async def lock_accounts(self, conn: asyncpg.Connection, account_ids: list[UUID]) -> None:
        """Lock these accounts' rows (created when new) for the transaction, in id order: a
        batch takes its locks up front, so two batches never wait for each other in a circle."""
        if account_ids:
            await self.store.lock_accounts(conn, sorted(set(account_ids)), self.clock().date())

    async def on_intent(self, conn: asyncpg.Connection, event: OrderIntent) -> None:
        if isinstance(event, CancelOrder):
            # Cancelling only ever lowers risk: it is forwarded even under a kill switch.
            await self.outbox.add(conn, event, topic=_APPROVED)
            return
        assert isinstance(event, SubmitOrder)
        if await self.store.decided(conn, event.client_order_id):
            return  # the same intent again (a bot re-emitting it): the first decision stands
        now = self.clock()
        account = await self.store.lock_account(conn, event.account_id, now.date())
        view = await self._view(conn, account.account_id, account, event.instrument_id)
        limits = await self.limits_in_force(conn, event.account_id, event.instrument_id)
        rules = await self.rules_in_force(conn, event.instrument_id)
        denial = check(event, view, limits, rules, now)
        if view.state is TradingState.ACTIVE and breaches_daily_loss(view, limits):
            await self._reduce(conn, event.account_id)
        await self.store.record_decision(
            conn,
            client_order_id=event.client_order_id,
            account_id=event.account_id,
            instrument_id=event.instrument_id,
            side=event.side,
            quantity=event.quantity,
            approved=denial is None,
            reason=None if denial is None else denial.reason.value,
            at=now,
        )
        if denial is None:
            await self.outbox.add(
                conn, OrderApproved(account_id=event.account_id, order=event, approved_at=now)
            )
            metrics.RISK_DECISIONS.labels(
                service=self.service, decision="approved", reason=""
            ).inc()
            return
        await self.outbox.add(
            conn,
            OrderDenied(
                account_id=event.account_id,
                user_id=event.user_id,
                client_order_id=event.client_order_id,
                instrument_id=event.instrument_id,
                reason=denial.reason,
                message=denial.message,
                denied_at=now,
            ),
        )
        metrics.RISK_DECISIONS.labels(
            service=self.service, decision="denied", reason=denial.reason.value
        ).inc()
        log.info(
            "order denied",
            account_id=str(event.account_id),
            client_order_id=event.client_order_id,
            reason=denial.reason.value,
        )

    async def limits_in_force(
        self, conn: asyncpg.Connection | None, account_id: UUID, instrument_id: str | None
    ) -> Limits:
        """The limits an order of the account on the instrument is checked against: its
        ceilings (the defaults, or an admin's limits in their place), its own limits and its
        limits for the instrument (None: the account-wide ones only), the stricter of all."""
        own, per_instrument = await self.store.limits(account_id, instrument_id, conn)
        admin = await self.store.admin_limits(account_id, conn)
        return effective(ceilings(self.default_limits, admin), own, per_instrument)

    async def rules_in_force(
        self, conn: asyncpg.Connection | None, instrument_id: str
    ) -> InstrumentRules | None:
        """The instrument's bounds: an admin's override, else the venue's, else the defaults."""
        layers = await self.store.rule_layers(instrument_id, conn)
        venue, admin = layers.get("venue"), layers.get("admin")
        return rules_in_force(
            venue.rules if venue is not None else None,
            admin.rules if admin is not None else None,
            self.instrument_bounds,
        )

    async def _view(
        self, conn: asyncpg.Connection, account_id: UUID, account: Any, instrument_id: str
    ) -> AccountView:
        positions = {
            p.instrument_id: p.position for p in await self.store.positions(account_id, conn)
        }
        pending, open_orders = await self.store.pending(conn, account_id)
        now = self.clock()
        global_on, _ = await self.store.global_switch(conn)
        return AccountView(
            state=account.state,
            kill_switch=account.kill_switch,
            global_kill_switch=global_on,
            realised_pnl_today=account.realised_today,
            positions=positions,
            pending=pending,
            open_orders=open_orders,
            prices=self.prices.of({instrument_id, *positions, *pending}),
            recent_approvals=await self.store.recent_approvals(
                conn, account_id, now - timedelta(seconds=60)
            ),
        )

    async def _reduce(self, conn: asyncpg.Connection, account_id: UUID) -> None:
        await self.store.set_state(
            conn, account_id, TradingState.REDUCING, "daily realised loss limit reached"
        )
        metrics.RISK_REDUCING.labels(service=self.service).inc()
        log.warning("account reducing: daily loss limit", account_id=str(account_id))

    # ---- order events ----------------------------------------------------------------------------

    async def on_order_event(
        self,
        conn: asyncpg.Connection,
        event: OrderFilled | OrderRejected | OrderCanceled | OrderExpired,
    ) -> None:
        """Fills change positions and realised PnL (once per trade id); finished orders stop
        counting as pending."""
        if isinstance(event, OrderFilled):
            if not await self.store.add_fill(
                conn, event.client_order_id, event.trade_id, event.last_qty, event.leaves_qty
            ):
                return
            account = await self.store.lock_account(conn, event.account_id, self.clock().date())
            held = await self.store.position(conn, event.account_id, event.instrument_id)
            position, avg_price, realised = apply_fill(
                held.position,
                held.avg_price,
                event.side,
                event.last_qty,
                event.last_price,
                event.booked_fee,
            )
            await self.store.save_position(
                conn,
                event.account_id,
                PositionRow(event.instrument_id, position, avg_price, held.realised + realised),
            )
            if realised:
                await self.store.add_realised(conn, event.account_id, realised)
            account = replace(account, realised_today=account.realised_today + realised)
            if account.state is TradingState.ACTIVE:
                limits = await self.limits_in_force(conn, event.account_id, None)
                view = await self._view(conn, event.account_id, account, event.instrument_id)
                if breaches_daily_loss(view, limits):
                    await self._reduce(conn, event.account_id)
        elif isinstance(event, OrderRejected | OrderCanceled | OrderExpired):
            await self.store.close_order(conn, event.client_order_id)

    # ---- switches and states -----------------------------------------------------------------

    async def set_kill_switch(self, account_id: UUID, engaged: bool, reason: str | None) -> None:
        """Engaging takes effect on the account's next intent and asks execution to cancel its
        open orders (CancelAllOrders)."""
        async with self.db.transaction() as conn:
            await self.store.lock_account(conn, account_id, self.clock().date())
            await self.store.set_kill_switch(conn, account_id, engaged, reason)
            if engaged:
                await self._cancel_all(conn, account_id, reason or "kill switch engaged")
        log.warning("account kill switch", account_id=str(account_id), engaged=engaged)

    async def set_global_switch(self, engaged: bool, reason: str | None) -> None:
        async with self.db.transaction() as conn:
            await self.store.set_global_switch(conn, engaged, reason)
            if engaged:
                for account_id in await self.store.accounts_with_open_orders(conn):
                    await self._cancel_all(conn, account_id, reason or "global kill switch")
        metrics.RISK_KILL_SWITCH.labels(service=self.service).set(1 if engaged else 0)
        log.warning("global kill switch", engaged=engaged)

    async def set_state(self, account_id: UUID, state: TradingState, reason: str | None) -> None:
        async with self.db.transaction() as conn:
            await self.store.lock_account(conn, account_id, self.clock().date())
            await self.store.set_state(conn, account_id, state, reason)

    async def _cancel_all(self, conn: asyncpg.Connection, account_id: UUID, reason: str) -> None:
        await self.outbox.add(
            conn,
            CancelAllOrders(account_id=account_id, reason=reason[:500], created_at=self.clock()),
        )
