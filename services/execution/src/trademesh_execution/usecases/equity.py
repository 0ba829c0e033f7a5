"""Equity history: every account's cash plus its positions at their last prices, sampled now and
then for charts. Each replica may sample; a sample is keyed by account and time, and the
sampling takes a transaction-level advisory lock so that replicas do not sample together."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

from trademesh_db import Database
from trademesh_events.ids import AccountId, InstrumentId
from trademesh_observability.logging import get_logger
from trademesh_trading.positions import equity

log = get_logger("trademesh_execution.equity")


class EquitySampler:
    def __init__(
        self, db: Database, *, clock: Callable[[], datetime], interval: float = 60.0
    ) -> None:
        self.db = db
        self.clock = clock
        self.interval = interval

    async def sample(self) -> int:
        """One sample of every account whose positions all have a price; how many were taken."""
        now = self.clock()
        taken = 0
        async with self.db.transaction() as conn:
            if not await conn.fetchval(
                "SELECT pg_try_advisory_xact_lock(hashtext('trademesh.equity.' || current_schema()))"
            ):
                return 0
            accounts = await conn.fetch("SELECT account_id, cash FROM accounts")
            rows = await conn.fetch(
                "SELECT p.account_id, p.instrument_id, p.position, m.last_price FROM positions p "
                "LEFT JOIN market m USING (instrument_id) WHERE p.position <> 0"
            )
            held: dict[AccountId, dict[InstrumentId, Decimal]] = {}
            prices: dict[InstrumentId, Decimal] = {}
            for row in rows:
                held.setdefault(row["account_id"], {})[row["instrument_id"]] = row["position"]
                if row["last_price"] is not None:
                    prices[row["instrument_id"]] = row["last_price"]
            for account in accounts:
                try:
                    value = equity(account["cash"], held.get(account["account_id"], {}), prices)
                except ValueError:  # a position without a price: no honest value now
                    continue
                await conn.execute(
                    "INSERT INTO equity_history (account_id, ts, cash, equity) "
                    "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    account["account_id"],
                    now,
                    account["cash"],
                    value,
                )
                taken += 1
        return taken

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.sample()
            except Exception:
                log.warning("sampling equity failed; will retry", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)
