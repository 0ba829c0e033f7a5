"""Orders at run time: approved orders placed on their account's venue, cancels, and the paper
venue's fills from market data, on the service's tables, with events through the outbox.

The state machine and the paper matching are the pure engine's (engine.py); this module reads
and writes the rows around them. Every change of an order is saved with the event it emits in
one transaction, so an order's row and orders.events.v1 never disagree.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from uuid import UUID

import asyncpg
from trademesh_bus import Delivery, inbox
from trademesh_bus.outbox import Outbox
from trademesh_db import Database
from trademesh_events.marketdata import Bar, Tick
from trademesh_events.orders import (
    CancelAllOrders,
    CancelOrder,
    OrderApproved,
    OrderFilled,
    OrderStatus,
)
from trademesh_events.topics import MD_BARS, ApprovedCommand
from trademesh_observability import metrics
from trademesh_observability.logging import get_logger
from trademesh_trading.fills import FillModel

from trademesh_execution.engine import (
    WORKING,
    OrderView,
    PaperMatch,
    advance,
    bar_of_tick,
    book,
    is_open,
    new_order,
    paper_accept,
    paper_fills,
)
from trademesh_execution.store import ExecutionStore, emit_order_event

log = get_logger("trademesh_execution.orders")


class Orders:
    def __init__(
        self,
        *,
        db: Database,
        store: ExecutionStore,
        outbox: Outbox,
        fill_model: FillModel,
        service: str,
        clock: Callable[[], datetime],
    ) -> None:
        self.db = db
        self.store = store
        self.outbox = outbox
        self.fill_model = fill_model
        self.service = service
        self.clock = clock

    # ---- commands from risk (orders.approved.v1) -----------------------------------------------

    async def on_approved(self, conn: asyncpg.Connection, event: ApprovedCommand) -> None:
        if isinstance(event, OrderApproved):
            await self._place(conn, event)
        elif isinstance(event, CancelOrder):
            await self.cancel(conn, event.client_order_id, "cancel requested", event.account_id)
        elif isinstance(event, CancelAllOrders):
            for order in await self.store.open_orders(conn, event.account_id):
                await self.cancel(conn, order.client_order_id, event.reason, event.account_id)

    async def _place(self, conn: asyncpg.Connection, event: OrderApproved) -> None:
        """PENDING is stored before anything is sent; a client order id seen before places
        nothing (a redelivered or repeated approval cannot make a second order)."""
        now = self.clock()
        account = await self.store.account(event.account_id, conn)
        venue = account.venue if account is not None else "unknown"
        order = new_order(event.order)
        if not await self.store.insert_pending(conn, order, venue):
            log.info("approval of a known order ignored", client_order_id=order.client_order_id)
            return
        if account is None:
            await self._move(conn, order, OrderStatus.REJECTED, "unknown account")
            return
        if account.venue != "paper":
            # A live venue: PENDING commits with this approval; live.py sends it afterwards
            # (and looks it up first, so a crash in between never sends it twice).
            return
        # The market's time: the bar the order was decided on when the paper venue has seen
        # later bars already (the approval came late: it is tried against the kept bars after
        # that one, as if it had come in time); else the instrument's clock, and never before
        # the decision (execution may read that bar after the approval); the service's now
        # when neither is known.
        await self.store.lock_market(conn, order.instrument_id)
        clock = await self.store.market_clock(conn, order.instrument_id)
        decided = event.order.decided_at
        late = None
        if decided is not None and clock is not None and clock > decided:
            late = await self.store.bars_after(conn, order.instrument_id, decided)
        known = [t for t in (clock, decided) if t is not None]
        market_time = decided if late is not None and decided else max(known) if known else now
        accepted, events = paper_accept(order, now, market_time=market_time)
        await self.store.note(conn, order.client_order_id, OrderStatus.SUBMITTED, None)
        await self.store.save_order(conn, accepted)
        for each in events:
            await emit_order_event(self.store, self.outbox, conn, each)
        for bar in late or ():
            matches = paper_fills([accepted], bar, self.fill_model)
            await self._apply(conn, matches)
            if matches:
                accepted = matches[-1].order
            if not is_open(accepted.status):
                break

    async def cancel(
        self, conn: asyncpg.Connection, client_order_id: str, reason: str, account_id: UUID | None
    ) -> OrderView | None:
        """Cancel an open order (of `account_id` when given); None when there is no such order.
        A finished order stays as it is (a cancel that crossed a fill changes nothing)."""
        found = await self.store.order(client_order_id, conn, lock=True)
        if found is None or (account_id is not None and found[0].account_id != account_id):
            return None
        order, row = found
        if not is_open(order.status):
            return order
        if row["venue"] not in ("paper", "unknown") and order.status is not OrderStatus.PENDING:
            # A live order is cancelled by its venue: ask, and let the driver (live.py) record
            # what the venue answers (CANCELED, or a fill that came first).
            await self.store.request_cancel(conn, order.client_order_id, reason)
            return order
        return await self._cancel(conn, order, reason)

    async def _cancel(self, conn: asyncpg.Connection, order: OrderView, reason: str) -> OrderView:
        return await self._move(conn, order, OrderStatus.CANCELED, reason[:500])

    async def _move(
        self, conn: asyncpg.Connection, order: OrderView, status: OrderStatus, reason: str | None
    ) -> OrderView:
        moved, event = advance(order, status, self.clock(), reason=reason)
        await self.store.save_order(conn, moved, reason)
        await emit_order_event(self.store, self.outbox, conn, event)
        return moved

    # ---- the paper venue (md.bars.v1, md.ticks.v1) -----------------------------------------------

    async def on_market(
        self, received: list[tuple[Bar | Tick, Delivery]], conn: asyncpg.Connection, consumer: str
    ) -> None:
        """A batch of market data in one transaction. A final bar (or a tick, as a one-second
        bar) moves its instrument's market clock and fills the working paper orders it crosses.
        In few statements: the final bars kept and each instrument's clock moved to its latest
        (one statement each), the working paper orders of the batch's instruments read at once,
        and only the records of instruments with working orders claimed in the inbox (one
        statement, so a redelivered record fills nothing twice) and matched, bar after bar,
        against the orders as the bars before left them."""
        moves: list[tuple[Bar, Delivery]] = []
        for event, delivery in received:
            if isinstance(event, Tick):
                moves.append((bar_of_tick(event), delivery))
            elif isinstance(event, Bar) and event.final:
                moves.append((event, delivery))
        if not moves:
            return
        instruments = sorted({bar.instrument_id for bar, _ in moves})
        await self.store.lock_markets(conn, instruments)
        kept = [bar for bar, delivery in moves if delivery.topic == MD_BARS]
        if kept:
            await self.store.keep_bars(conn, kept)
            latest: dict[str, Bar] = {}
            for bar in kept:
                if (
                    bar.instrument_id not in latest
                    or bar.close_time > latest[bar.instrument_id].close_time
                ):
                    latest[bar.instrument_id] = bar
            await self.store.mark_markets(
                conn, [(b.instrument_id, b.close_time, b.close) for b in latest.values()]
            )
        working = await self.store.working_paper_orders_of(conn, instruments)
        moves = [(bar, delivery) for bar, delivery in moves if bar.instrument_id in working]
        if not moves:
            return
        fresh = await inbox.claim_many(conn, consumer, [(d.envelope.id, d.topic) for _, d in moves])
        for bar, delivery in moves:
            if delivery.envelope.id not in fresh:
                continue  # handled before (a redelivery), or twice in this batch
            fresh.discard(delivery.envelope.id)
            orders = working[bar.instrument_id]
            matches = paper_fills(orders, bar, self.fill_model)
            await self._apply(conn, matches)
            moved = {m.order.client_order_id: m.order for m in matches}
            working[bar.instrument_id] = [
                o for o in (moved.get(o.client_order_id, o) for o in orders) if o.status in WORKING
            ]

    async def _apply(self, conn: asyncpg.Connection, matches: list[PaperMatch]) -> None:
        """What bars did to paper orders: their new states, fills booked once, their events."""
        for match in matches:
            await self.store.save_order(conn, match.order)
            for each in match.events:
                if isinstance(each, OrderFilled) and not await self._book(conn, each):
                    continue
                await emit_order_event(self.store, self.outbox, conn, each)

    async def _book(self, conn: asyncpg.Connection, fill: OrderFilled) -> bool:
        """The fill in the account's position and cash, once per trade id."""
        if not await self.store.add_fill(conn, fill):
            return False
        held = await self.store.position(conn, fill.account_id, fill.instrument_id)
        await self.store.save_position(conn, book(held, fill))
        signed = fill.last_qty if fill.side == "buy" else -fill.last_qty
        await self.store.add_cash(conn, fill.account_id, -(signed * fill.last_price) - fill.fee)
        metrics.EXECUTION_FILLS.labels(service=self.service, venue="paper").inc()
        return True
