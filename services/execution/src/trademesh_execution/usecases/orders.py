"""Orders at run time: approved orders placed on their account's venue, cancels, and the paper
venue's fills from market data, on the service's tables, with events through the outbox.

The state machine and the paper matching are the pure engine's (engine.py); this module reads
and writes the rows around them. Every change of an order is saved with the event it emits in
one transaction, so an order's row and orders.events.v1 never disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import assert_never

import asyncpg
from trademesh_bus import Delivery, inbox
from trademesh_bus.outbox import Outbox, Outgoing
from trademesh_db import Database
from trademesh_events.ids import AccountId, ClientOrderId, InstrumentId, UserId
from trademesh_events.marketdata import Bar, Tick
from trademesh_events.orders import (
    CancelAllOrders,
    CancelOrder,
    OrderApproved,
    OrderCanceled,
    OrderDenied,
    OrderFilled,
    OrderStatus,
    SubmitOrder,
)
from trademesh_events.topics import MD_BARS, ApprovedCommand, OrderLifecycleEvent
from trademesh_http import ProblemError
from trademesh_observability import metrics
from trademesh_observability.logging import get_logger
from trademesh_trading.buying_power import AccountTerms, Holdings, MarginMode
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
    paper_refusal,
    same_terms,
)
from trademesh_execution.order_log import log_order_events
from trademesh_execution.store import (
    ExecutionStore,
    OrderWrites,
    Placed,
    current_traceparent,
    emit_order_event,
)

log = get_logger("trademesh_execution.orders")


@dataclass(frozen=True)
class Recorded:
    """A manual order's intent as record_intent left it: the order kept under its id, its row,
    and whether this call recorded it (else it was there already, with the same terms)."""

    order: OrderView
    row: asyncpg.Record
    created: bool


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

    # ---- the order's story before risk decides (decision 0113) ---------------------------------

    async def record_intent(self, intent: SubmitOrder, caller: UserId) -> Recorded:
        """Record the caller's manual order INITIALIZED before its intent is published (the
        gateway asks): its client order id is claimed here, once, whoever asks at the same
        time. The same order again is the kept one (created False); another order under a
        used id is a 409 problem, another user's account a 404 one."""
        if intent.user_id != caller:
            raise ProblemError(422, "Invalid order", "user_id: must be the caller's.")
        async with self.db.transaction() as conn:
            account = await self.store.account(intent.account_id, conn)
            if account is None or account.user_id != caller:
                raise ProblemError(404, "Unknown account", f"No account {intent.account_id}.")
            created = await self.store.record_intent(conn, intent, account.venue)
            found = await self.store.order(intent.client_order_id, conn)
        assert found is not None  # recorded now, or by whoever held the id
        order, row = found
        if not created and not same_terms(order, row["reduce_only"], intent):
            # Another user's order under this id says nothing about that order.
            raise ProblemError(
                409,
                "Order id in use",
                f"client_order_id {intent.client_order_id} names another order: send that "
                "order's terms to read it back, or a new client_order_id for a new order.",
                type="/problems/order-id-in-use",
            )
        return Recorded(order, row, created)

    async def on_denied_many(
        self, conn: asyncpg.Connection, denials: Sequence[OrderDenied]
    ) -> None:
        """A batch of orders.denied.v1 in its transaction: each denied order kept DENIED with
        its reason (store.record_denials). A denial from before denials carried their intent
        has nothing to keep and is skipped."""
        first: dict[ClientOrderId, OrderDenied] = {}
        for denial in denials:
            if denial.order is None:
                log.warning(
                    "denial without its order skipped", client_order_id=denial.client_order_id
                )
                continue
            first.setdefault(denial.client_order_id, denial)
        await self.store.record_denials(conn, list(first.values()))

    # ---- commands from risk (orders.approved.v1) -----------------------------------------------

    async def on_approved_many(
        self, conn: asyncpg.Connection, received: Sequence[tuple[ApprovedCommand, Delivery]]
    ) -> None:
        """A batch of orders.approved.v1 in its transaction, in the order received: each run of
        approvals placed at once (place), a cancel in between as on_approved does it. The caller
        holds the paper market locks of the batch's instruments (handlers.py takes them all at
        once, in order)."""
        run: list[tuple[OrderApproved, str | None]] = []
        for event, delivery in received:
            match event:
                case OrderApproved():
                    with delivery.traced():  # the order is placed under its approval's trace
                        run.append((event, current_traceparent()))
                case CancelOrder() | CancelAllOrders():
                    await self.place(conn, run)
                    run = []
                    with delivery.traced():
                        await self.on_cancel(conn, event)
                case _:
                    assert_never(event)
        await self.place(conn, run)

    async def on_approved(self, conn: asyncpg.Connection, event: ApprovedCommand) -> None:
        """One command of orders.approved.v1 in its transaction (on_approved_many is the
        batch's path; this one takes the order's market lock itself)."""
        match event:
            case OrderApproved():
                await self.store.lock_markets(conn, [event.order.instrument_id])
                await self.place(conn, [(event, current_traceparent())])
            case CancelOrder() | CancelAllOrders():
                await self.on_cancel(conn, event)
            case _:
                assert_never(event)

    async def on_cancel(
        self, conn: asyncpg.Connection, event: CancelOrder | CancelAllOrders
    ) -> None:
        """A cancel risk forwarded: one order, or every open order of the account."""
        match event:
            case CancelOrder():
                await self.cancel(conn, event.client_order_id, "cancel requested", event.account_id)
            case CancelAllOrders():
                for order in await self.store.open_orders(conn, event.account_id):
                    await self.cancel(conn, order.client_order_id, event.reason, event.account_id)
            case _:
                assert_never(event)

    async def place(
        self, conn: asyncpg.Connection, approvals: list[tuple[OrderApproved, str | None]]
    ) -> None:
        """Approved orders, each with the traceparent it is placed under, in at most three
        statements whatever their number: stored PENDING with what placing them reads
        (place_pending), their changes (write), their events (the outbox, in order).

        PENDING is stored before anything is sent; a client order id seen before places
        nothing (a redelivered or repeated approval cannot make a second order). An order of an
        unknown account is REJECTED; one of a live venue stays PENDING (it commits with this
        approval; live.py sends it afterwards, and looks it up first, so a crash in between
        never sends it twice); a paper order is SUBMITTED and ACCEPTED, and one that came late
        is tried against the kept bars after its decision at once. The caller holds the paper
        market locks of the orders' instruments."""
        first: dict[ClientOrderId, tuple[OrderApproved, str | None]] = {}
        for approval in approvals:
            first.setdefault(approval[0].order.client_order_id, approval)
        placed = await self.store.place_pending(
            conn, [(event.order, traceparent) for event, traceparent in first.values()]
        )
        writes = OrderWrites()
        events: list[Outgoing] = []
        for event, traceparent in approvals:
            client_order_id = event.order.client_order_id
            found = placed.pop(client_order_id, None)
            if found is None:  # stored before, or earlier in this batch
                log.info("approval of a known order ignored", client_order_id=client_order_id)
                continue
            made = self._placed(event, found, writes)
            events.extend(Outgoing(e, traceparent=traceparent) for e in made)
            log_order_events(made, traceparent, event.order.bot_id)
        await self.store.write(conn, writes)
        await self.outbox.add_many(conn, events)

    def _placed(
        self, event: OrderApproved, placed: Placed, writes: OrderWrites
    ) -> list[OrderLifecycleEvent]:
        """What placing a stored PENDING order does (into `writes`), and its events in order."""
        now = self.clock()
        order = new_order(event.order)
        if placed.venue == "unknown":
            rejected, refusal = advance(order, OrderStatus.REJECTED, now, reason="unknown account")
            writes.save(rejected, order.status, "unknown account")
            return [refusal]
        if placed.venue != "paper":
            return []
        # The market's time: the bar the order was decided on when the paper venue has seen
        # later bars already (the approval came late: it is tried against the kept bars after
        # that one, as if it had come in time); else the instrument's clock, and never before
        # the decision (execution may read that bar after the approval); the service's now
        # when neither is known.
        clock, decided, late = placed.clock, event.order.decided_at, placed.late
        known = [t for t in (clock, decided) if t is not None]
        market_time = decided if late is not None and decided else max(known) if known else now
        accepted, made = paper_accept(order, now, market_time=market_time)
        writes.notes.append((order.client_order_id, OrderStatus.SUBMITTED, None))
        writes.save(accepted, OrderStatus.SUBMITTED)
        events: list[OrderLifecycleEvent] = list(made)
        held = placed.position
        for bar in late or ():
            for found in paper_fills([accepted], bar, self.fill_model):
                match = self._late_refusal(accepted, found, placed, writes) or found
                refused = [e.reason for e in match.events if isinstance(e, OrderCanceled)]
                writes.save(match.order, accepted.status, refused[0] if refused else None)
                for each in match.events:
                    if isinstance(each, OrderFilled):
                        held = writes.positions.get((held.account_id, held.instrument_id), held)
                        writes.book(each, book(held, each))
                        metrics.EXECUTION_FILLS.labels(service=self.service, venue="paper").inc()
                    events.append(each)
                accepted = match.order
            if not is_open(accepted.status):
                break
        return events

    def _late_refusal(
        self, order: OrderView, match: PaperMatch, placed: Placed, writes: OrderWrites
    ) -> PaperMatch | None:
        """paper_refusal for a late order's fill, on what place_pending read and the batch
        booked so far. A cash account's check needs only its cash and this position; a margin
        account's needs every position's value, which this path does not read: its fills are
        left to go through (the check of later bars, in on_market, still applies)."""
        if placed.cash is None or placed.terms is None or match.fill is None:
            return None
        mode, leverage, allow_short = placed.terms
        if mode != MarginMode.CASH.value:
            return None
        terms = AccountTerms(MarginMode.CASH, leverage, allow_short, self.fill_model.fee_bps)
        key = (order.account_id, order.instrument_id)
        held = writes.positions.get(key, placed.position)
        cash = placed.cash + writes.cash.get(order.account_id, Decimal(0))
        holdings = Holdings(
            cash=cash,
            positions={order.instrument_id: held.quantity},
            prices={order.instrument_id: match.fill.price},
        )
        return paper_refusal(order, match, terms, holdings, self.clock())

    async def cancel(
        self,
        conn: asyncpg.Connection,
        client_order_id: ClientOrderId,
        reason: str,
        account_id: AccountId | None,
    ) -> OrderView | None:
        """Cancel an open order (of `account_id` when given); None when there is no such order.
        A finished order stays as it is (a cancel that crossed a fill changes nothing)."""
        found = await self.store.order(client_order_id, conn, lock=True)
        if found is None or (account_id is not None and found[0].account_id != account_id):
            return None
        order, row = found
        if not is_open(order.status) or order.status is OrderStatus.INITIALIZED:
            return order  # ended, or not decided yet (risk decides it; then it may be cancelled)
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
            latest: dict[InstrumentId, Bar] = {}
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
            before = {o.client_order_id: o for o in orders}
            matches = await self._apply(conn, paper_fills(orders, bar, self.fill_model), before)
            moved = {m.order.client_order_id: m.order for m in matches}  # as applied
            working[bar.instrument_id] = [
                o for o in (moved.get(o.client_order_id, o) for o in orders) if o.status in WORKING
            ]

    async def _apply(
        self,
        conn: asyncpg.Connection,
        matches: list[PaperMatch],
        before: dict[ClientOrderId, OrderView],
    ) -> list[PaperMatch]:
        """What bars did to paper orders: their new states, fills booked once, their events; a
        fill the account cannot pay for any more cancels its order instead (paper_refusal), each
        checked on the cash the fills before it left. The matches as applied."""
        applied: list[PaperMatch] = []
        for match in matches:
            if match.fill is not None:
                match = (
                    await self._refused(conn, before[match.order.client_order_id], match) or match
                )
            applied.append(match)
            await self.store.save_order(conn, match.order)
            for each in match.events:
                if isinstance(each, OrderFilled) and not await self._book(conn, each):
                    continue
                await emit_order_event(self.store, self.outbox, conn, each)
        return applied

    async def _refused(
        self, conn: asyncpg.Connection, order: OrderView, match: PaperMatch
    ) -> PaperMatch | None:
        """The order cancelled when its fill is over the account's buying power (None: it fits)."""
        found = await self.store.funds(conn, order.account_id)
        if found is None or match.fill is None:
            return None
        account, positions, prices = found
        terms = AccountTerms(
            MarginMode(account.margin_mode),
            account.max_leverage,
            account.allow_short,
            self.fill_model.fee_bps,
        )
        prices.setdefault(order.instrument_id, match.fill.price)
        holdings = Holdings(cash=account.cash, positions=positions, prices=prices)
        try:
            refused = paper_refusal(order, match, terms, holdings, self.clock())
        except ValueError:  # a margin account's position without a price: the venue cannot
            return None  # value it, which is not this order's fault
        if refused is not None:
            log.info(
                "paper fill refused: insufficient funds",
                account_id=str(order.account_id),
                client_order_id=order.client_order_id,
            )
        return refused

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
