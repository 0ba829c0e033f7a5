"""Orders on live venues: sent after PENDING is committed, looked up before any resend.

An approval of an exchange account's order only stores it PENDING (in the approval's
transaction). This driver then takes PENDING and UNKNOWN live orders one at a time (row lock,
SKIP LOCKED, so replicas never drive the same order), and for each:

1. asks the venue for the order by its client order id first: an order sent before a crash, or
   whose answer timed out, is found there and adopted, never sent twice;
2. sends it only when the venue does not know it;
3. records what the venue says through the state machine, each transition with its event.

A send that times out (or whose answer cannot be read) leaves the order UNKNOWN, to be looked up
on the next round; a venue that is away leaves it as it is; a refusal is REJECTED.

Fills are the venue's trades, each applied once under the venue's trade id (`venue_trade_id`),
with its own price, fee and liquidity: from the order stream's executions when the venue streams
(streams.py), else from the account's trade list when a report shows the order filled further.
Only when the trade list does not (yet) cover what the report says filled is the rest booked
from the report's cumulative figures: one fill at the price and fee that make the order's
average and fees what the venue says (its trades then match by quantity at reconciliation).

A working order its venue no longer knows (looked up by client id, after `missing_grace`) is a
discrepancy: its trades are applied, and it is closed EXPIRED, never left working in our books.
A venue that was away and answers again has its account reconciled (`on_reconnect`).

At start, the same rounds reconcile every order a crash may have left PENDING or UNKNOWN;
reconcile.py compares the rest (open orders and recent trades) with the venue.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
from trademesh_bus.outbox import Outbox
from trademesh_db import Database
from trademesh_events.ids import AccountId, InstrumentId
from trademesh_events.orders import DiscrepancyKind, OrderFilled, OrderStatus
from trademesh_observability import metrics
from trademesh_observability.logging import get_logger
from trademesh_trading.fills import Fill

from trademesh_execution.credentials import Credentials, CredentialVault
from trademesh_execution.engine import (
    IllegalTransition,
    Liquidity,
    OrderView,
    advance,
    book,
    fee_currency,
    fee_in_quote,
    fill_event,
    fill_order,
    trade_id,
)
from trademesh_execution.store import AccountRow, ExecutionStore, emit_order_event
from trademesh_execution.usecases.discrepancies import Discrepancies
from trademesh_execution.venues import (
    CcxtVenue,
    DuplicateOrder,
    MalformedResponse,
    Venue,
    VenueError,
    VenueRejected,
    VenueReport,
    VenueTimeout,
    VenueTrade,
    VenueUnavailable,
)

log = get_logger("trademesh_execution.live")

VenueFactory = Callable[[str, Credentials], Venue]
ZERO = Decimal(0)
_ENDED = (OrderStatus.CANCELED, OrderStatus.EXPIRED, OrderStatus.REJECTED)
# Our clock and the venue's may differ: an order's trades are looked for from a little before
# the order was created.
TRADE_SKEW = timedelta(minutes=1)


def venue_trade_id(instrument_id: InstrumentId, venue_trade: str) -> str:
    """A live fill's trade id: the venue's own, under the instrument (Binance numbers trades per
    symbol), so that the same trade seen by the stream, the poll and reconciliation is one fill."""
    return f"{instrument_id}#{venue_trade}"


def ccxt_venue(exchange: str, credentials: Credentials) -> Venue:
    """The production venue of an exchange account."""
    return CcxtVenue(
        exchange,
        api_key=credentials.api_key,
        secret=credentials.secret,
        options={"fetchCurrencies": False, "fetchMargins": False},
    )


class LiveOrders:
    def __init__(
        self,
        *,
        db: Database,
        store: ExecutionStore,
        outbox: Outbox,
        credentials: CredentialVault,
        venue_factory: VenueFactory = ccxt_venue,
        service: str,
        clock: Callable[[], datetime],
        poll_interval: float = 0.5,
        retry_after: timedelta = timedelta(seconds=1),
        open_poll: timedelta = timedelta(seconds=2),
        streamed_poll: timedelta = timedelta(seconds=30),
        missing_grace: timedelta = timedelta(seconds=60),
        batch: int = 20,
    ) -> None:
        self.db = db
        self.store = store
        self.outbox = outbox
        self.credentials = credentials
        self.venue_factory = venue_factory
        self.service = service
        self.clock = clock
        self.poll_interval = poll_interval
        self.retry_after = retry_after
        self.open_poll = open_poll
        self.streamed_poll = streamed_poll
        self.missing_grace = missing_grace
        self.batch = batch
        self.discrepancies = Discrepancies(outbox=outbox, service=service, clock=clock)
        # Accounts whose order stream is live: their working orders are polled only as a
        # safety net (streamed_poll), the stream bringing their changes.
        self.streamed: set[AccountId] = set()
        # Accounts whose venue was away at the last call; when it answers again, the account
        # is reconciled (the callback is the reconciler's request).
        self.unreachable: set[AccountId] = set()
        self.on_reconnect: Callable[[AccountId], None] | None = None
        # Told of every fill booked, with the transaction's connection (the balance refresher
        # reads the account's balances once that has committed).
        self.on_fill: Callable[[asyncpg.Connection, AccountId], None] | None = None

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                for _ in range(self.batch):  # a round, then a pause: a venue away is not hammered
                    if not await self.step():
                        break
            except Exception:
                log.warning("driving live orders failed; will retry", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.poll_interval)

    def reached(self, account_id: AccountId, reachable: bool) -> None:
        """Note whether the account's venue answered; a venue back after being away has its
        account reconciled."""
        if not reachable:
            self.unreachable.add(account_id)
        elif account_id in self.unreachable:
            self.unreachable.discard(account_id)
            log.info("venue reachable again; reconciling", account_id=str(account_id))
            if self.on_reconnect is not None:
                self.on_reconnect(account_id)

    async def open_venue(self, account: AccountRow) -> Venue:
        """The account's venue, its credentials opened for this use only."""
        assert account.credentials is not None
        credentials = await self.credentials.open(
            account.account_id, account.venue, account.credentials
        )
        return self.venue_factory(account.venue, credentials)

    async def step(self) -> bool:
        """Drive one live order that is due: PENDING or UNKNOWN ones not tried within
        retry_after (sent, or looked up), working ones not polled within open_poll (their
        fills and end come from the venue's report; streamed_poll for an account whose order
        stream is live, as a safety net); False when none is due."""
        async with self.db.transaction() as conn:
            row = await conn.fetchrow(
                "SELECT client_order_id FROM orders WHERE venue NOT IN ('paper', 'unknown') "
                "AND ((status IN ('PENDING', 'UNKNOWN') AND updated_at <= now() - $1::interval) "
                "OR (status IN ('SUBMITTED', 'ACCEPTED', 'PARTIALLY_FILLED') "
                "AND (cancel_requested OR updated_at <= now() - CASE WHEN account_id = ANY($3) "
                "THEN $4::interval ELSE $2::interval END))) "
                "ORDER BY updated_at LIMIT 1 FOR UPDATE SKIP LOCKED",
                self.retry_after,
                self.open_poll,
                list(self.streamed),
                self.streamed_poll,
            )
            if row is None:
                return False
            found = await self.store.order(row["client_order_id"], conn, lock=True)
            assert found is not None
            order, stored = found
            account = await self.store.account(order.account_id, conn)
            if account is None or account.credentials is None:
                await self._move(
                    conn, order, OrderStatus.REJECTED, "the account has no credentials"
                )
                return True
            venue = await self.open_venue(account)
            try:
                if stored["cancel_requested"] and order.status not in (
                    OrderStatus.PENDING,
                    OrderStatus.UNKNOWN,
                ):
                    await self._cancel(conn, venue, order, stored["reason"])
                else:
                    await self._drive(conn, venue, order, account)
                reachable = True
            except VenueUnavailable as exc:
                log.warning(
                    "venue unavailable", client_order_id=order.client_order_id, error=str(exc)
                )
                reachable = False
            finally:
                await venue.close()
            self.reached(account.account_id, reachable)
            # Touch the row, so that an order left waiting goes behind the others; a cancel is
            # asked once per round until the order has ended.
            await conn.execute(
                "UPDATE orders SET updated_at = now(), cancel_requested = cancel_requested "
                "AND status IN ('SUBMITTED', 'ACCEPTED', 'PARTIALLY_FILLED') "
                "WHERE client_order_id = $1",
                stored["client_order_id"],
            )
            return True

    async def _drive(
        self, conn: asyncpg.Connection, venue: Venue, order: OrderView, account: AccountRow
    ) -> None:
        if order.status not in (OrderStatus.PENDING, OrderStatus.UNKNOWN):
            await self._poll(conn, venue, order, account)
            return
        try:
            report = await venue.fetch(order)  # before any send: it may be there already
            if report is None:
                try:
                    report = await venue.submit(order)
                except DuplicateOrder:
                    report = await venue.fetch(order)
                    if report is None:
                        raise VenueTimeout(
                            "the venue has the client id but not the order"
                        ) from None
        except (VenueTimeout, MalformedResponse) as exc:
            if order.status is not OrderStatus.UNKNOWN:
                await self._move(conn, order, OrderStatus.UNKNOWN, f"send not confirmed: {exc}")
            return
        except VenueRejected as exc:
            await self._move(conn, order, OrderStatus.REJECTED, exc.reason)
            return
        await self.apply(conn, order, report, venue=venue)

    async def _cancel(
        self, conn: asyncpg.Connection, venue: Venue, order: OrderView, reason: str | None
    ) -> None:
        """Ask the venue to cancel; record what it answers (fills that came first included)."""
        report: VenueReport | None
        try:
            report = await venue.cancel(order)
        except VenueRejected:  # e.g. it filled or ended meanwhile: see what the venue has
            report = await venue.fetch(order)
        except (VenueTimeout, MalformedResponse) as exc:
            log.warning(
                "cancel not confirmed", client_order_id=order.client_order_id, error=str(exc)
            )
            return
        if report is not None:
            await self.apply(conn, order, report, venue=venue)

    async def _poll(
        self, conn: asyncpg.Connection, venue: Venue, order: OrderView, account: AccountRow
    ) -> None:
        """A working order's state at the venue."""
        try:
            report = await venue.fetch(order)
        except (VenueTimeout, MalformedResponse) as exc:
            log.warning(
                "polling a live order failed", client_order_id=order.client_order_id, error=str(exc)
            )
            return
        if report is None:
            await self.resolve_missing(conn, venue, order, account)
            return
        await self.apply(conn, order, report, venue=venue)

    async def resolve_missing(
        self, conn: asyncpg.Connection, venue: Venue, order: OrderView, account: AccountRow
    ) -> OrderView:
        """A working order (the venue acknowledged it) that its venue, asked by client id, says
        it does not know: a discrepancy. Within `missing_grace` of its creation it is left for
        the next look (a venue may not list an order at once). After, the trades the venue has
        of it are applied, and it is closed EXPIRED: an order the venue does not have cannot
        fill, and leaving it working here would keep its exposure and its bot waiting."""
        if self.clock() - order.created_at < self.missing_grace:
            return order
        if order.venue_order_id is not None:
            for trade in await self._order_trades(venue, order, order.venue_order_id):
                order = await self.apply_trade(conn, order, trade)
        closed = order
        resolution = "left as it is: it has ended here already"
        if order.status not in (OrderStatus.FILLED, *_ENDED):
            # An expiry's event carries no reason: the order's row and history keep it.
            closed, event = advance(order, OrderStatus.EXPIRED, self.clock())
            await self.store.save_order(conn, closed, "the venue does not know this order")
            await emit_order_event(self.store, self.outbox, conn, event)
            resolution = "closed as EXPIRED, after applying the trades the venue has of it"
        await self.discrepancies.raise_(
            conn,
            account_id=account.account_id,
            user_id=account.user_id,
            venue=account.venue,
            kind=DiscrepancyKind.ORDER_MISSING,
            client_order_id=order.client_order_id,
            instrument_id=order.instrument_id,
            venue_ref=order.venue_order_id,
            detail=f"a {order.status.value} order is unknown to the venue",
            resolution=resolution,
        )
        return closed

    async def apply(
        self,
        conn: asyncpg.Connection,
        order: OrderView,
        report: VenueReport,
        *,
        venue: Venue | None = None,
        trades: list[VenueTrade] | None = None,
    ) -> OrderView:
        """Bring the order to what the venue reports: SUBMITTED first, then fills (the
        `trades` given, e.g. the execution a stream update reports; then, if the report says
        more filled, the order's trades asked of `venue`; then whatever the report says filled
        beyond them all), then the venue's own status, each step one transition with its
        event."""
        if order.status in (OrderStatus.PENDING, OrderStatus.UNKNOWN):
            order = await self._move(
                conn, order, OrderStatus.SUBMITTED, None, venue_order_id=report.venue_order_id
            )
        for trade in trades or ():
            if report.filled <= order.filled:
                break
            if trade.venue_order_id == report.venue_order_id:
                order = await self.apply_trade(conn, order, trade)
        if report.filled > order.filled and venue is not None:
            for trade in await self._order_trades(venue, order, report.venue_order_id):
                if report.filled <= order.filled:
                    break
                order = await self.apply_trade(conn, order, trade)
        if report.filled > order.filled:
            order = await self._fill(conn, order, report)
        if report.status is OrderStatus.ACCEPTED and order.status is OrderStatus.SUBMITTED:
            order = await self._move(conn, order, OrderStatus.ACCEPTED, None)
        elif report.status in _ENDED and order.status is not report.status:
            order = await self._move(conn, order, report.status, "reported by the venue")
        return order

    async def _order_trades(
        self, venue: Venue, order: OrderView, venue_order_id: str
    ) -> list[VenueTrade]:
        """The venue's trades of the order (none when the venue cannot list them now: the
        report's cumulative figures then stand in, see the module docstring)."""
        try:
            trades = await venue.recent_trades(order.instrument_id, order.created_at - TRADE_SKEW)
        except VenueError as exc:
            log.warning(
                "the order's trades could not be listed",
                client_order_id=order.client_order_id,
                error=str(exc),
            )
            return []
        return [t for t in trades if t.venue_order_id == venue_order_id]

    async def apply_trade(
        self, conn: asyncpg.Connection, order: OrderView, trade: VenueTrade
    ) -> OrderView:
        """One venue trade of the order as a fill, once per trade id; the order as it is when
        the trade is applied already or would fill it beyond its quantity (a discrepancy)."""
        tid = venue_trade_id(order.instrument_id, trade.trade_id)
        if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM fills WHERE trade_id = $1)", tid):
            return order
        fill = Fill(
            order.client_order_id,
            order.side,
            trade.quantity,
            trade.price,
            max(trade.fee or ZERO, ZERO),
        )
        liquidity: Liquidity = trade.liquidity or (
            "taker" if order.order_type.value in ("MARKET", "STOP") else "maker"
        )
        try:
            event = fill_event(
                order,
                fill,
                trade.ts,
                tid,
                trade.fee_currency or fee_currency(order.instrument_id),
                liquidity=liquidity,
            )
            filled = fill_order(order, fill)
        except (IllegalTransition, ValueError) as exc:
            account = await self.store.account(order.account_id, conn)
            await self.discrepancies.raise_(
                conn,
                account_id=order.account_id,
                user_id=order.user_id,
                venue=account.venue if account is not None else "unknown",
                kind=DiscrepancyKind.FILL_MISMATCH,
                client_order_id=order.client_order_id,
                instrument_id=order.instrument_id,
                venue_ref=trade.trade_id,
                detail=f"a venue trade of {trade.quantity} at {trade.price} cannot be applied "
                f"to the {order.status.value} order (filled {order.filled} of "
                f"{order.quantity}): {exc}",
            )
            return order
        return await self._record_fill(conn, order, filled, event)

    async def _fill(
        self, conn: asyncpg.Connection, order: OrderView, report: VenueReport
    ) -> OrderView:
        """What the report says filled beyond the trades applied, as one fill."""
        quantity = report.filled - order.filled
        assert report.avg_price is not None
        # The fill's price keeps the order's average what the venue says it is.
        before = (order.avg_price or ZERO) * order.filled
        price = (report.avg_price * report.filled - before) / quantity
        fee = (report.fee - order.fees) if report.fee is not None else ZERO
        fill = Fill(order.client_order_id, order.side, quantity, price, max(fee, ZERO))
        currency = report.fee_currency or fee_currency(order.instrument_id)
        event = fill_event(
            order,
            fill,
            report.ts,
            trade_id(order.client_order_id, order.fills + 1),
            currency,
            liquidity="taker" if order.order_type.value in ("MARKET", "STOP") else "maker",
        )
        return await self._record_fill(conn, order, fill_order(order, fill), event)

    async def _record_fill(
        self, conn: asyncpg.Connection, order: OrderView, filled: OrderView, event: OrderFilled
    ) -> OrderView:
        """The fill kept, the order and its position updated, its event sent: one transaction."""
        event = await self._valued(conn, event)
        if not await self.store.add_fill(conn, event):
            return order  # this trade is in the books already
        await self.store.save_order(conn, filled)
        held = await self.store.position(conn, order.account_id, order.instrument_id)
        await self.store.save_position(conn, book(held, event))
        metrics.EXECUTION_FILLS.labels(service=self.service, venue="live").inc()
        await emit_order_event(self.store, self.outbox, conn, event)
        if self.on_fill is not None:
            self.on_fill(conn, order.account_id)
        return filled

    async def _valued(self, conn: asyncpg.Connection, event: OrderFilled) -> OrderFilled:
        """The fill with its fee valued in the quote currency when the venue charged another
        (see engine.fee_in_quote); 0 and a warning when no price here values it."""
        quote = fee_currency(event.instrument_id)
        currency = event.fee_currency.upper()
        if currency == quote:
            return event
        venue = event.instrument_id.partition(":")[0]
        rows = await conn.fetch(
            "SELECT instrument_id, last_price FROM market WHERE instrument_id = ANY($1::text[])",
            [f"{venue}:{currency}/{quote}", f"{venue}:{quote}/{currency}"],
        )
        prices = {row["instrument_id"]: row["last_price"] for row in rows}
        value = fee_in_quote(event.instrument_id, event.fee, currency, event.last_price, prices)
        if value is None:
            log.warning(
                "a fee in a currency with no price here is left out of PnL",
                client_order_id=event.client_order_id,
                fee_currency=currency,
            )
        return event.model_copy(update={"quote_fee": ZERO if value is None else value})

    async def _move(
        self,
        conn: asyncpg.Connection,
        order: OrderView,
        status: OrderStatus,
        reason: str | None,
        **changes: Any,
    ) -> OrderView:
        moved, event = advance(order, status, self.clock(), reason=reason, **changes)
        await self.store.save_order(conn, moved, reason)
        await emit_order_event(self.store, self.outbox, conn, event)
        return moved
