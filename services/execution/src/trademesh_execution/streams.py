"""Order updates from the venues' private streams (WebSocket), where a venue has one.

A watcher per exchange account follows the account's orders on its venue's stream
(`Venue.watch_orders`). Each update is applied to its order under the order's row lock, through
the live driver's own `apply` (so the stream, the driver's polling and reconciliation never
apply a trade twice): the execution it reports becomes a fill under the venue's trade id, and the
order moves to the status the venue reports.

While an account's stream is up, its working orders are polled only as a safety net
(`LiveOrders.streamed_poll`); when it drops, polling takes over again at once. A stream that
(re)connects asks for the account to be reconciled: what happened while it was down is not
replayed by the venue, and reconciliation fetches it. A venue without a stream
(`StreamUnsupported`) is simply polled. Refused credentials stop the watcher until the account's
credentials change; any other failure is retried after a pause that grows to `max_pause`.

Updates of orders the service does not know (placed elsewhere, or of another account using the
same key) are left to reconciliation, which raises them as discrepancies.

The watcher keeps its venue (and so the account's credentials, in memory) while the stream is
open, as a stream needs them to authenticate its connection; each reconnection opens them again
from the sealed record.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import timedelta

from trademesh_db import Database
from trademesh_events.ids import AccountId
from trademesh_observability.logging import get_logger

from trademesh_execution.store import ExecutionStore
from trademesh_execution.usecases.live import LiveOrders
from trademesh_execution.venues import (
    StreamUnsupported,
    Venue,
    VenueError,
    VenueRejected,
    VenueUpdate,
)

log = get_logger("trademesh_execution.streams")


class OrderStreams:
    def __init__(
        self,
        *,
        db: Database,
        store: ExecutionStore,
        live: LiveOrders,
        on_connect: Callable[[AccountId], None],
        rescan: timedelta = timedelta(seconds=5),
        pause: timedelta = timedelta(seconds=1),
        max_pause: timedelta = timedelta(seconds=60),
    ) -> None:
        self.db = db
        self.store = store
        self.live = live
        self.on_connect = on_connect
        self.rescan = rescan
        self.pause = pause
        self.max_pause = max_pause
        self.watchers: dict[AccountId, asyncio.Task[None]] = {}
        self.applied = 0  # updates applied to an order of ours (for tests and the log)

    async def run(self, stop: asyncio.Event) -> None:
        """Keep one watcher per exchange account: new accounts get one within `rescan`, deleted
        ones lose theirs, and a watcher that ended (a refusal) is restarted when the account's
        sealed credentials change."""
        sealed: dict[AccountId, str | None] = {}
        try:
            while not stop.is_set():
                try:
                    accounts = await self.store.sealed_accounts()
                except Exception:
                    log.warning("listing the exchange accounts failed", exc_info=True)
                    accounts = []
                current = {a.account_id: a.credentials for a in accounts}
                for account_id, task in list(self.watchers.items()):
                    changed = sealed.get(account_id) != current.get(account_id)
                    if account_id not in current or (task.done() and changed):
                        task.cancel()
                        del self.watchers[account_id]
                for account_id in current:
                    if account_id not in self.watchers:
                        self.watchers[account_id] = asyncio.create_task(
                            self._watch(account_id, stop)
                        )
                sealed = current
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.rescan.total_seconds())
        finally:
            for task in self.watchers.values():
                task.cancel()
            await asyncio.gather(*self.watchers.values(), return_exceptions=True)
            self.watchers.clear()

    async def _watch(self, account_id: AccountId, stop: asyncio.Event) -> None:
        pause = self.pause
        while not stop.is_set():
            account = await self.store.account(account_id)
            if account is None or account.credentials is None:
                return
            venue = await self.live.open_venue(account)
            try:
                if not venue.streams_orders:
                    return  # polled
                # Polled only as a safety net from now on; reconciled, as what happened while
                # the stream was down will not come on it.
                self.live.streamed.add(account_id)
                self.on_connect(account_id)
                while not stop.is_set():
                    updates = await venue.watch_orders()
                    for update in updates:
                        await self._apply(account_id, venue, update)
                    pause = self.pause
            except StreamUnsupported:
                return
            except VenueRejected as exc:
                log.error(
                    "the order stream refused the account's credentials; polling it instead",
                    account_id=str(account_id),
                    error=str(exc),
                )
                return
            except VenueError as exc:
                log.warning(
                    "order stream down; reconnecting", account_id=str(account_id), error=str(exc)
                )
            except Exception:
                log.warning("order stream failed; reconnecting", exc_info=True)
            finally:
                self.live.streamed.discard(account_id)
                await venue.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause.total_seconds())
            pause = min(pause * 2, self.max_pause)

    async def _apply(self, account_id: AccountId, venue: Venue, update: VenueUpdate) -> None:
        report = update.report
        if report.client_order_id is None:
            return  # not placed by the service: reconciliation raises it
        async with self.db.transaction() as conn:
            found = await self.store.order(report.client_order_id, conn, lock=True)
            if found is None or found[0].account_id != account_id:
                return
            order = found[0]
            trades = [update.trade] if update.trade is not None else []
            await self.live.apply(conn, order, report, venue=venue, trades=trades)
            self.applied += 1
