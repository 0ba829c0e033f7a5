"""An exchange account's buying power from its venue: its balances read and told to risk as an
`AccountChanged`, through the outbox (docs/decisions/0116-venue-buying-power.md).

When. After the fills the service books for the account, once the transaction that booked them
has committed (so that the fills' events go out before the balances that include them), at most
once per account every `interval`, and trailing: a fill booked while a read is not due yet makes
one due `interval` after the last, so the last fill is always followed by a read. At every
reconciliation too (reconcile.py), on its venue, after the fills it applied; and when an account
is opened or its terms change (the API asks).

What. The event's `cash` is the venue's total (free and locked) of the account's settlement
currency, `holdings` the venue's totals of the other currencies it holds. Total, not free: risk's
own reservations already count the platform's pending orders, so what the venue locks for them
must not be taken off a second time; funds locked by orders placed outside the platform are then
counted as available, and the venue refuses an order that cannot be paid. The terms are the
account's; the fee rate is 0, as the venue charges its own fee (maybe in another currency).

A read that fails (the venue away, a refusal, a malformed answer) is logged and counted
(`trademesh_execution_balance_refreshes_total` by outcome) and sends nothing: risk keeps its last
figures, moved by the fills it books. Reads run in their own task, never on a fill's path.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal

import asyncpg
from trademesh_bus.outbox import Outbox
from trademesh_db import Database
from trademesh_events.ids import AccountId
from trademesh_events.orders import AccountChanged
from trademesh_observability import metrics
from trademesh_observability.logging import get_logger

from trademesh_execution.store import AccountRow, ExecutionStore
from trademesh_execution.usecases.live import LiveOrders
from trademesh_execution.venues import (
    MalformedResponse,
    Venue,
    VenueBalances,
    VenueError,
    VenueRejected,
    VenueTimeout,
)

log = get_logger("trademesh_execution.balances")

ZERO = Decimal(0)
_IDLE_S = 3600.0  # how long the loop sleeps with nothing due (a request wakes it)


def account_changed(
    account: AccountRow, balances: VenueBalances, *, now: datetime
) -> AccountChanged:
    """The AccountChanged that tells risk an exchange account's buying power from its venue's
    balances: cash the total of its settlement currency, holdings the other currencies' totals
    (those it holds), its terms, no fee rate (see the module docstring)."""
    if account.currency is None:
        raise ValueError(f"account {account.account_id} has no settlement currency")
    currency = account.currency
    holdings = {
        code: balance.total
        for code, balance in sorted(balances.currencies.items())
        if code != currency and balance.total > 0
    }
    return AccountChanged(
        account_id=account.account_id,
        user_id=account.user_id,
        venue=account.venue,
        cash=balances.total(currency),
        margin_mode="margin" if account.margin_mode == "margin" else "cash",
        max_leverage=account.max_leverage,
        allow_short=account.allow_short,
        fee_bps=ZERO,
        changed_at=now,
        currency=currency,
        holdings=holdings,
    )


def _outcome(error: VenueError) -> str:
    if isinstance(error, VenueTimeout):
        return "timeout"
    if isinstance(error, VenueRejected):
        return "rejected"
    if isinstance(error, MalformedResponse):
        return "malformed"
    return "unavailable"


class BalanceRefresher:
    def __init__(
        self,
        *,
        db: Database,
        store: ExecutionStore,
        outbox: Outbox,
        live: LiveOrders,
        service: str,
        clock: Callable[[], datetime],
        interval: timedelta = timedelta(seconds=5),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.store = store
        self.outbox = outbox
        self.live = live
        self.service = service
        self.clock = clock
        self.interval = interval.total_seconds()
        self._monotonic = monotonic
        self._due: dict[AccountId, float] = {}  # account -> when its next read is due (monotonic)
        self._last: dict[AccountId, float] = {}  # account -> when its last read started
        self._booked: dict[int, set[AccountId]] = {}  # open transactions (by connection) with fills
        self._wake = asyncio.Event()
        db.on_transaction_end(self._ended)
        live.on_fill = self.fill_booked

    def fill_booked(self, conn: asyncpg.Connection, account_id: AccountId) -> None:
        """A fill of the account was booked in `conn`'s transaction: its read is requested
        when that commits."""
        self._booked.setdefault(id(conn), set()).add(account_id)

    def _ended(self, conn: asyncpg.Connection, committed: bool) -> None:
        accounts = self._booked.pop(id(conn), None)
        if accounts and committed:
            for account_id in accounts:
                self.request(account_id)

    def request(self, account_id: AccountId) -> None:
        """Read the account's balances soon: now, or `interval` after its last read. A read
        already due covers the request (it starts after it)."""
        if account_id in self._due:
            return
        last = self._last.get(account_id, -math.inf)
        self._due[account_id] = max(self._monotonic(), last + self.interval)
        self._wake.set()

    def due_at(self, account_id: AccountId) -> float | None:
        """When the account's next read is due (monotonic seconds); None when none is."""
        return self._due.get(account_id)

    async def run(self, stop: asyncio.Event) -> None:
        """Read each account's balances when due, until `stop` is set."""
        while not stop.is_set():
            self._wake.clear()
            now = self._monotonic()
            ready = [account_id for account_id, at in self._due.items() if at <= now]
            for account_id in ready:
                del self._due[account_id]
                await self._refresh_account(account_id)
            if ready:
                continue
            timeout = min(self._due.values(), default=now + _IDLE_S) - now
            waiter = asyncio.ensure_future(self._wake.wait())
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait(
                {waiter, stopper}, timeout=max(timeout, 0.0), return_when="FIRST_COMPLETED"
            )
            for task in (waiter, stopper):
                task.cancel()

    async def _refresh_account(self, account_id: AccountId) -> None:
        try:
            account = await self.store.account(account_id)
            if account is None or account.credentials is None:
                return  # deleted, or not an exchange account
            venue = await self.live.open_venue(account)
            try:
                await self.refresh(account, venue)
            finally:
                await venue.close()
        except Exception:
            log.warning(
                "refreshing an account's balances failed", account_id=str(account_id), exc_info=True
            )

    async def refresh(self, account: AccountRow, venue: Venue) -> AccountChanged | None:
        """Read the account's balances on `venue` and tell risk (the event, in its own
        transaction); None when the venue could not be read (logged and counted)."""
        self._last[account.account_id] = self._monotonic()
        try:
            balances = await venue.balances()
        except VenueError as error:
            outcome = _outcome(error)
            metrics.EXECUTION_BALANCE_REFRESHES.labels(
                service=self.service, venue=account.venue, outcome=outcome
            ).inc()
            log.warning(
                "reading the venue's balances failed; risk keeps its last figures",
                account_id=str(account.account_id),
                venue=account.venue,
                outcome=outcome,
                error=str(error)[:300],
            )
            return None
        async with self.db.transaction() as conn:
            # The account as it is now: its terms may have changed since it was read.
            current = await self.store.account(account.account_id, conn)
            if current is None:
                return None
            event = account_changed(current, balances, now=self.clock())
            # The account API shows what risk is told: the venue's cash, not the amount the
            # account was opened with moved by the fills booked here.
            await self.store.set_cash(conn, account.account_id, event.cash)
            await self.outbox.add(conn, event)
        metrics.EXECUTION_BALANCE_REFRESHES.labels(
            service=self.service, venue=account.venue, outcome="ok"
        ).inc()
        log.info(
            "venue balances told to risk",
            account_id=str(account.account_id),
            currency=event.currency,
            cash=str(event.cash),
        )
        return event
