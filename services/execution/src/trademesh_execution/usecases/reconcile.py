"""Reconciliation: each exchange account's books compared with its venue, at start, when the
venue comes back after being away (or its order stream reconnects), every `interval`, and on
request (API).

For one account:

1. The venue's open orders. One of ours that is still open here is brought up to date (fills,
   status); one that has ended here but works at the venue is a STATUS_MISMATCH, and the venue is
   asked to cancel it (our books say it should not be working). An order we did not place (no
   client id, or one that is not ours: a manual order on the exchange) is an UNKNOWN_VENUE_ORDER,
   raised and left alone.
2. Our working orders that the venue does not list as open are looked up by client id: what the
   venue says of them is applied (they filled or ended while we were away); one it does not know
   is closed as in `LiveOrders.resolve_missing`. PENDING and UNKNOWN orders are the driver's (it
   looks each up by client id before any send) and are left to it.
3. The venue's trades since `lookback` in every instrument the account traded in that time,
   matched to our orders by the venue's order id: a trade we have not applied, of an order whose
   fills here fall short of the venue's, is applied (MISSING_FILL, resolution "applied"); a trade
   of no order of ours is an UNMATCHED_TRADE (unless the account has PENDING or UNKNOWN orders in
   the instrument, which may be it: then it waits for the next run); an order whose fills here exceed the venue's trades
   (all of its trades being in the window) is a FILL_MISMATCH, for a human.
4. The venue's balances, told to risk as the account's buying power (balances.py), after the
   fills the run applied (whatever became of the steps before: a venue that fails them may
   still answer this).

Every finding is a discrepancy (discrepancies.py): stored once, an event, a metric, a log line.
Each order is changed under its row lock, in a transaction of its own, through the same code as
the driver's, so a reconciliation and the driver (or two replicas) never apply one trade twice.
An account is reconciled by one process at a time (a Postgres advisory lock).
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
from trademesh_db import Database
from trademesh_events.ids import AccountId, ClientOrderId, InstrumentId
from trademesh_events.orders import DiscrepancyKind, OrderStatus
from trademesh_observability.logging import get_logger

from trademesh_execution.engine import OrderView
from trademesh_execution.store import AccountRow, ExecutionStore, order_view
from trademesh_execution.usecases.balances import BalanceRefresher
from trademesh_execution.usecases.live import TRADE_SKEW, LiveOrders, venue_trade_id
from trademesh_execution.venues import (
    MalformedResponse,
    Venue,
    VenueError,
    VenueRejected,
    VenueReport,
    VenueTimeout,
    VenueTrade,
)

log = get_logger("trademesh_execution.reconcile")

_WORKING = ("SUBMITTED", "ACCEPTED", "PARTIALLY_FILLED")
_ENDED_HERE = ("FILLED", "CANCELED", "REJECTED", "EXPIRED")


@dataclass
class Reconciliation:
    """What one run found and did, for the API and the account's row."""

    account_id: str
    started_at: str
    ok: bool = True
    error: str | None = None
    open_at_venue: int = 0
    orders_updated: int = 0
    trades_seen: int = 0
    fills_applied: int = 0
    discrepancies: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    balances_refreshed: bool = False

    def found(self, kind: DiscrepancyKind, new: bool) -> None:
        if new:
            self.discrepancies += 1
            self.kinds[kind.value] = self.kinds.get(kind.value, 0) + 1


class Reconciler:
    def __init__(
        self,
        *,
        db: Database,
        store: ExecutionStore,
        live: LiveOrders,
        clock: Callable[[], datetime],
        interval: timedelta = timedelta(minutes=5),
        lookback: timedelta = timedelta(hours=24),
        balances: BalanceRefresher | None = None,
    ) -> None:
        self.db = db
        self.store = store
        self.live = live
        self.balances = balances
        self.clock = clock
        self.interval = interval
        self.lookback = lookback
        self._due: set[AccountId] = set()
        self._wake = asyncio.Event()
        live.on_reconnect = self.request

    def request(self, account_id: AccountId) -> None:
        """Reconcile the account soon (a venue back, a stream reconnected)."""
        self._due.add(account_id)
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Every exchange account at start and every `interval`; requested ones in between."""
        await self._all()
        next_all = self.clock() + self.interval
        while not stop.is_set():
            waiter = asyncio.ensure_future(self._wake.wait())
            stopper = asyncio.ensure_future(stop.wait())
            timeout = max((next_all - self.clock()).total_seconds(), 0.0)
            await asyncio.wait({waiter, stopper}, timeout=timeout, return_when="FIRST_COMPLETED")
            for task in (waiter, stopper):
                task.cancel()
            if stop.is_set():
                return
            self._wake.clear()
            if self.clock() >= next_all:
                await self._all()
                next_all = self.clock() + self.interval
            due, self._due = self._due, set()
            for account_id in due:
                await self._safely(account_id)

    async def _all(self) -> None:
        try:
            accounts = await self.store.sealed_accounts()
        except Exception:
            log.warning("listing the exchange accounts failed", exc_info=True)
            return
        for account in accounts:
            await self._safely(account.account_id)

    async def _safely(self, account_id: AccountId) -> None:
        try:
            await self.account(account_id)
        except Exception:
            log.warning("reconciling an account failed", account_id=str(account_id), exc_info=True)

    async def account(self, account_id: AccountId) -> Reconciliation | None:
        """Reconcile one exchange account now; None when it is not one (a paper account, or
        gone) or another process is reconciling it."""
        account = await self.store.account(account_id)
        if account is None or account.credentials is None:
            return None
        result = Reconciliation(str(account_id), self.clock().isoformat())
        async with self.db.pool.acquire() as lock_conn:
            key = f"reconcile:{account_id}"
            if not await lock_conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", key):
                return None
            try:
                venue = await self.live.open_venue(account)
                try:
                    try:
                        await self._run(account, venue, result)
                        # Reconciled just now: a venue that was away needs no second run for it.
                        self.live.unreachable.discard(account_id)
                    except VenueError as exc:
                        result.ok, result.error = False, f"{type(exc).__name__}: {exc}"
                        log.warning(
                            "reconciliation stopped", account_id=str(account_id), error=str(exc)
                        )
                    if self.balances is not None:
                        refreshed = await self.balances.refresh(account, venue)
                        result.balances_refreshed = refreshed is not None
                finally:
                    await venue.close()
            finally:
                await lock_conn.execute("SELECT pg_advisory_unlock(hashtext($1))", key)
        await self.db.pool.execute(
            "UPDATE accounts SET reconciled_at = $2, reconcile_result = $3::jsonb "
            "WHERE account_id = $1",
            account_id,
            self.clock(),
            json.dumps(asdict(result)),
        )
        log.info("reconciled", **{k: v for k, v in asdict(result).items() if k != "kinds"})
        return result

    async def _run(self, account: AccountRow, venue: Venue, result: Reconciliation) -> None:
        listed = await venue.open_orders()
        result.open_at_venue = len(listed)
        open_ids = {r.client_order_id for r in listed if r.client_order_id is not None}
        for report in listed:
            await self._open_at_venue(account, venue, report, result)
        for client_order_id in await self._working_here(account.account_id):
            if client_order_id not in open_ids:
                await self._look_up(account, venue, client_order_id, result)
        await self._trades(account, venue, result)

    async def _raise(
        self,
        conn: asyncpg.Connection,
        account: AccountRow,
        result: Reconciliation,
        kind: DiscrepancyKind,
        **details: Any,
    ) -> None:
        new = await self.live.discrepancies.raise_(
            conn,
            account_id=account.account_id,
            user_id=account.user_id,
            venue=account.venue,
            kind=kind,
            **details,
        )
        result.found(kind, new)

    # ---- 1. the venue's open orders -------------------------------------------------------------

    async def _open_at_venue(
        self, account: AccountRow, venue: Venue, report: VenueReport, result: Reconciliation
    ) -> None:
        async with self.db.transaction() as conn:
            found = None
            if report.client_order_id is not None:
                found = await self.store.order(report.client_order_id, conn, lock=True)
            if found is None or found[0].account_id != account.account_id:
                await self._raise(
                    conn,
                    account,
                    result,
                    DiscrepancyKind.UNKNOWN_VENUE_ORDER,
                    venue_ref=f"order {report.venue_order_id}"
                    + (f" (client id {report.client_order_id})" if report.client_order_id else ""),
                    detail=f"the venue has a working order ({report.status.value}, filled "
                    f"{report.filled}, {report.remaining} left) that trademesh did not place",
                    resolution=None,
                )
                return
            order = found[0]
            if order.status.value in _ENDED_HERE:
                await self._ended_here_working_there(conn, account, venue, order, report, result)
                return
            if order.status in (OrderStatus.PENDING, OrderStatus.UNKNOWN):
                return  # the driver adopts it, by its client id, on its next round
            if _changed(order, report):
                await self.live.apply(conn, order, report, venue=venue)
                result.orders_updated += 1

    async def _ended_here_working_there(
        self,
        conn: asyncpg.Connection,
        account: AccountRow,
        venue: Venue,
        order: OrderView,
        report: VenueReport,
        result: Reconciliation,
    ) -> None:
        try:
            await venue.cancel(order)
            resolution = "the venue was asked to cancel it"
        except VenueError as exc:
            resolution = f"cancelling it at the venue failed ({type(exc).__name__}); for a human"
        await self._raise(
            conn,
            account,
            result,
            DiscrepancyKind.STATUS_MISMATCH,
            client_order_id=order.client_order_id,
            instrument_id=order.instrument_id,
            venue_ref=report.venue_order_id,
            detail=f"{order.status.value} here, {report.status.value} at the venue",
            resolution=resolution,
        )

    # ---- 2. our working orders the venue does not list ------------------------------------------

    async def _working_here(self, account_id: AccountId) -> list[ClientOrderId]:
        rows = await self.db.pool.fetch(
            "SELECT client_order_id FROM orders WHERE account_id = $1 "
            "AND status = ANY($2::text[]) ORDER BY created_at",
            account_id,
            list(_WORKING),
        )
        return [row["client_order_id"] for row in rows]

    async def _look_up(
        self,
        account: AccountRow,
        venue: Venue,
        client_order_id: ClientOrderId,
        result: Reconciliation,
    ) -> None:
        async with self.db.transaction() as conn:
            found = await self.store.order(client_order_id, conn, lock=True)
            if found is None or found[0].status.value not in _WORKING:
                return  # the driver moved it meanwhile
            order = found[0]
            try:
                report = await venue.fetch(order)
            except (VenueTimeout, MalformedResponse) as exc:
                log.warning(
                    "looking an order up failed", client_order_id=client_order_id, error=str(exc)
                )
                return
            if report is None:
                before = await self._discrepancy_count(conn, account.account_id)
                moved = await self.live.resolve_missing(conn, venue, order, account)
                if moved != order:
                    result.orders_updated += 1
                if await self._discrepancy_count(conn, account.account_id) > before:
                    result.found(DiscrepancyKind.ORDER_MISSING, True)
                return
            if _changed(order, report):
                await self.live.apply(conn, order, report, venue=venue)
                result.orders_updated += 1

    @staticmethod
    async def _discrepancy_count(conn: asyncpg.Connection, account_id: AccountId) -> int:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM discrepancies WHERE account_id = $1", account_id
        )
        return count

    # ---- 3. the venue's recent trades ----------------------------------------------------------

    async def _trades(self, account: AccountRow, venue: Venue, result: Reconciliation) -> None:
        since = self.clock() - self.lookback
        instruments = await self.db.pool.fetch(
            "SELECT DISTINCT instrument_id FROM orders WHERE account_id = $1 "
            "AND (created_at >= $2 OR status = ANY($3::text[]))",
            account.account_id,
            since,
            list(_WORKING),
        )
        for row in instruments:
            instrument_id = row["instrument_id"]
            try:
                trades = await venue.recent_trades(instrument_id, since)
            except VenueRejected as exc:  # e.g. an instrument the venue no longer lists
                log.warning("listing trades refused", instrument_id=instrument_id, error=str(exc))
                continue
            result.trades_seen += len(trades)
            by_order: dict[str, list[VenueTrade]] = defaultdict(list)
            for trade in trades:
                by_order[trade.venue_order_id].append(trade)
            for venue_order_id, of_order in by_order.items():
                await self._order_trades(
                    account, instrument_id, venue_order_id, of_order, since, result
                )

    async def _order_trades(
        self,
        account: AccountRow,
        instrument_id: InstrumentId,
        venue_order_id: str,
        trades: list[VenueTrade],
        since: datetime,
        result: Reconciliation,
    ) -> None:
        async with self.db.transaction() as conn:
            row = await conn.fetchrow(
                "SELECT * FROM orders WHERE account_id = $1 AND venue_order_id = $2 "
                "AND instrument_id = $3 FOR UPDATE",
                account.account_id,
                venue_order_id,
                instrument_id,
            )
            if row is None:
                if await conn.fetchval(
                    "SELECT EXISTS (SELECT 1 FROM orders WHERE account_id = $1 AND "
                    "instrument_id = $2 AND status IN ('PENDING', 'UNKNOWN'))",
                    account.account_id,
                    instrument_id,
                ):
                    # It may be one of ours that the driver has yet to look up by client id
                    # (trade lists name only the venue's order id): the next run will know.
                    return
                for trade in trades:
                    await self._raise(
                        conn,
                        account,
                        result,
                        DiscrepancyKind.UNMATCHED_TRADE,
                        instrument_id=instrument_id,
                        venue_ref=f"trade {trade.trade_id} of order {venue_order_id}",
                        detail=f"a {trade.side} of {trade.quantity} at {trade.price} by an order "
                        "trademesh did not place",
                    )
                return
            order = order_view(row)
            at_venue = sum((t.quantity for t in trades), Decimal(0))
            applied = {
                r["trade_id"]
                for r in await conn.fetch(
                    "SELECT trade_id FROM fills WHERE client_order_id = $1", order.client_order_id
                )
            }
            if order.filled < at_venue:
                for trade in sorted(trades, key=lambda t: (t.ts, t.trade_id)):
                    if order.filled >= at_venue:
                        break
                    if venue_trade_id(instrument_id, trade.trade_id) in applied:
                        continue
                    before = order
                    order = await self.live.apply_trade(conn, order, trade)
                    if order is before:
                        result.found(DiscrepancyKind.FILL_MISMATCH, True)
                        continue
                    result.fills_applied += 1
                    await self._raise(
                        conn,
                        account,
                        result,
                        DiscrepancyKind.MISSING_FILL,
                        client_order_id=order.client_order_id,
                        instrument_id=instrument_id,
                        venue_ref=f"trade {trade.trade_id}",
                        detail=f"a fill of {trade.quantity} at {trade.price} was not in our books",
                        resolution="applied",
                    )
            elif order.filled > at_venue and order.created_at - TRADE_SKEW >= since:
                await self._raise(
                    conn,
                    account,
                    result,
                    DiscrepancyKind.FILL_MISMATCH,
                    client_order_id=order.client_order_id,
                    instrument_id=instrument_id,
                    venue_ref=f"order {venue_order_id}",
                    detail=f"filled {order.filled} here, {at_venue} in the venue's trades",
                )


def _changed(order: OrderView, report: VenueReport) -> bool:
    """Whether the venue's report says more than our books: a fill, or another status."""
    if report.filled > order.filled:
        return True
    if report.status is OrderStatus.ACCEPTED:
        return order.status is OrderStatus.SUBMITTED
    return report.status is not order.status and report.status is not OrderStatus.PARTIALLY_FILLED
