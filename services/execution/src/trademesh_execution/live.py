"""Orders on live venues: sent after PENDING is committed, looked up before any resend.

An approval of an exchange account's order only stores it PENDING (in the approval's
transaction). This driver then takes PENDING and UNKNOWN live orders one at a time (row lock,
SKIP LOCKED, so replicas never drive the same order), and for each:

1. asks the venue for the order by its client order id first: an order sent before a crash, or
   whose answer timed out, is found there and adopted, never sent twice;
2. sends it only when the venue does not know it;
3. records what the venue says through the state machine, each transition with its event.

A send that times out (or whose answer cannot be read) leaves the order UNKNOWN, to be looked up
on the next round; a venue that is away leaves it as it is; a refusal is REJECTED. Fills come
from the venue's cumulative figures: what filled since the last report is one fill, at the
price and fee that make the order's average and fees what the venue says.

At start, the same rounds reconcile every order a crash may have left PENDING or UNKNOWN.
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
from trademesh_events.orders import OrderStatus
from trademesh_observability import metrics
from trademesh_observability.logging import get_logger
from trademesh_trading.fills import Fill

from trademesh_execution.credentials import Credentials, CredentialVault
from trademesh_execution.engine import (
    OrderView,
    advance,
    book,
    fee_currency,
    fill_event,
    fill_order,
    trade_id,
)
from trademesh_execution.store import ExecutionStore
from trademesh_execution.venues import (
    CcxtVenue,
    DuplicateOrder,
    MalformedResponse,
    Venue,
    VenueRejected,
    VenueReport,
    VenueTimeout,
    VenueUnavailable,
)

log = get_logger("trademesh_execution.live")

VenueFactory = Callable[[str, Credentials], Venue]
ZERO = Decimal(0)
_ENDED = (OrderStatus.CANCELED, OrderStatus.EXPIRED, OrderStatus.REJECTED)


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
        self.batch = batch

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

    async def step(self) -> bool:
        """Drive one live order that is due: PENDING or UNKNOWN ones not tried within
        retry_after (sent, or looked up), working ones not polled within open_poll (their
        fills and end come from the venue's report: REST polling, as WebSocket order updates
        are not wired); False when none is due."""
        async with self.db.transaction() as conn:
            row = await conn.fetchrow(
                "SELECT client_order_id FROM orders WHERE venue NOT IN ('paper', 'unknown') "
                "AND ((status IN ('PENDING', 'UNKNOWN') AND updated_at <= now() - $1::interval) "
                "OR (status IN ('SUBMITTED', 'ACCEPTED', 'PARTIALLY_FILLED') "
                "AND (cancel_requested OR updated_at <= now() - $2::interval))) "
                "ORDER BY updated_at LIMIT 1 FOR UPDATE SKIP LOCKED",
                self.retry_after,
                self.open_poll,
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
            credentials = await self.credentials.open(
                account.account_id, account.venue, account.credentials
            )
            venue = self.venue_factory(account.venue, credentials)
            try:
                if stored["cancel_requested"] and order.status not in (
                    OrderStatus.PENDING,
                    OrderStatus.UNKNOWN,
                ):
                    await self._cancel(conn, venue, order, stored["reason"])
                else:
                    await self._drive(conn, venue, order)
            finally:
                await venue.close()
            # Touch the row, so that an order left waiting goes behind the others; a cancel is
            # asked once per round until the order has ended.
            await conn.execute(
                "UPDATE orders SET updated_at = now(), cancel_requested = cancel_requested "
                "AND status IN ('SUBMITTED', 'ACCEPTED', 'PARTIALLY_FILLED') "
                "WHERE client_order_id = $1",
                stored["client_order_id"],
            )
            return True

    async def _drive(self, conn: asyncpg.Connection, venue: Venue, order: OrderView) -> None:
        if order.status not in (OrderStatus.PENDING, OrderStatus.UNKNOWN):
            await self._poll(conn, venue, order)
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
        except VenueUnavailable as exc:
            log.warning("venue unavailable", client_order_id=order.client_order_id, error=str(exc))
            return
        await self.apply(conn, order, report)

    async def _cancel(
        self, conn: asyncpg.Connection, venue: Venue, order: OrderView, reason: str | None
    ) -> None:
        """Ask the venue to cancel; record what it answers (fills that came first included)."""
        report: VenueReport | None
        try:
            report = await venue.cancel(order)
        except VenueRejected:  # e.g. it filled or ended meanwhile: see what the venue has
            report = await venue.fetch(order)
        except (VenueUnavailable, VenueTimeout, MalformedResponse) as exc:
            log.warning(
                "cancel not confirmed", client_order_id=order.client_order_id, error=str(exc)
            )
            return
        if report is not None:
            await self.apply(conn, order, report)

    async def _poll(self, conn: asyncpg.Connection, venue: Venue, order: OrderView) -> None:
        """A working order's state at the venue. One the venue does not know is a discrepancy:
        raised (log, metric), never resolved silently."""
        try:
            report = await venue.fetch(order)
        except (VenueUnavailable, VenueTimeout, MalformedResponse) as exc:
            log.warning(
                "polling a live order failed", client_order_id=order.client_order_id, error=str(exc)
            )
            return
        if report is None:
            metrics.EXECUTION_DISCREPANCIES.labels(service=self.service, kind="order_missing").inc()
            log.error(
                "a working order is unknown to its venue",
                client_order_id=order.client_order_id,
                status=order.status.value,
            )
            return
        await self.apply(conn, order, report)

    async def apply(
        self, conn: asyncpg.Connection, order: OrderView, report: VenueReport
    ) -> OrderView:
        """Bring the order to what the venue reports: SUBMITTED first, then fills, then the
        venue's own status, each step one transition with its event."""
        if order.status in (OrderStatus.PENDING, OrderStatus.UNKNOWN):
            order = await self._move(
                conn, order, OrderStatus.SUBMITTED, None, venue_order_id=report.venue_order_id
            )
        if report.filled > order.filled:
            order = await self._fill(conn, order, report)
        if report.status is OrderStatus.ACCEPTED and order.status is OrderStatus.SUBMITTED:
            order = await self._move(conn, order, OrderStatus.ACCEPTED, None)
        elif report.status in _ENDED and order.status is not report.status:
            order = await self._move(conn, order, report.status, "reported by the venue")
        return order

    async def _fill(
        self, conn: asyncpg.Connection, order: OrderView, report: VenueReport
    ) -> OrderView:
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
        filled = fill_order(order, fill)
        await self.store.save_order(conn, filled)
        if await self.store.add_fill(conn, event):
            held = await self.store.position(conn, order.account_id, order.instrument_id)
            quote = fee_currency(order.instrument_id)
            # A fee paid in another currency (an exchange's own token) cannot be priced here:
            # the position books the fill without it; the fill keeps the fee as the venue said.
            booked = (
                event
                if currency == quote
                else event.model_copy(update={"fee": ZERO, "fee_currency": quote})
            )
            await self.store.save_position(conn, book(held, booked))
            metrics.EXECUTION_FILLS.labels(service=self.service, venue="live").inc()
        await self.outbox.add(conn, event)
        return filled

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
        await self.outbox.add(conn, event)
        return moved
