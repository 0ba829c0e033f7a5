"""Equity and PnL per venue for the trading dashboard, read from the books every few seconds."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from trademesh_db import Database
from trademesh_observability import metrics
from trademesh_observability.logging import get_logger
from trademesh_trading.positions import equity, mark

log = get_logger("trademesh_execution.book_metrics")

ZERO = Decimal(0)
PAPER = "paper"  # every execution process runs the paper venue, accounts or not


@dataclass
class VenueTotals:
    equity: Decimal = ZERO  # over the accounts that can be valued now
    realised: Decimal = ZERO
    unrealised: Decimal = ZERO  # over the positions that have a price


def venue_totals(accounts: Iterable[Any], positions: Iterable[Any]) -> dict[str, VenueTotals]:
    """Totals per venue from account rows (account_id, venue, cash) and position rows
    (account_id, instrument_id, position, avg_price, realised, last_price or None), valued by the
    trading domain's rules."""
    held: dict[Any, dict[str, Decimal]] = {}
    prices: dict[str, Decimal] = {}
    realised: dict[Any, Decimal] = {}
    unrealised: dict[Any, Decimal] = {}
    for row in positions:
        account, instrument, position = row["account_id"], row["instrument_id"], row["position"]
        realised[account] = realised.get(account, ZERO) + row["realised"]
        held.setdefault(account, {})[instrument] = position
        last = row["last_price"]
        if last is not None:
            prices[instrument] = last
            if position != 0:
                opened = mark(position, row["avg_price"], last)
                unrealised[account] = unrealised.get(account, ZERO) + opened
    totals: dict[str, VenueTotals] = {PAPER: VenueTotals()}
    for row in accounts:
        account = row["account_id"]
        total = totals.setdefault(row["venue"], VenueTotals())
        total.realised += realised.get(account, ZERO)
        total.unrealised += unrealised.get(account, ZERO)
        with contextlib.suppress(ValueError):  # a position without a price: no honest value now
            total.equity += equity(row["cash"], held.get(account, {}), prices)
    return totals


class BookMetrics:
    """trademesh_execution_equity, _realised_pnl and _unrealised_pnl per venue, refreshed every
    `interval` seconds by two reads of the books (each replica reads the same books)."""

    def __init__(self, db: Database, service: str, *, interval: float = 10.0) -> None:
        self.db = db
        self.service = service
        self.interval = interval
        self._venues: set[str] = set()

    async def refresh(self) -> dict[str, VenueTotals]:
        # One snapshot for both reads, so that a fill's cash and its position agree.
        async with (
            self.db.pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            accounts = await conn.fetch("SELECT account_id, venue, cash FROM accounts")
            positions = await conn.fetch(
                "SELECT p.account_id, p.instrument_id, p.position, p.avg_price, p.realised, "
                "m.last_price FROM positions p LEFT JOIN market m USING (instrument_id)"
            )
        totals = venue_totals(accounts, positions)
        for venue, total in totals.items():
            labels = {"service": self.service, "venue": venue}
            # Floats for the exposition only; the books stay Decimal.
            metrics.EXECUTION_EQUITY.labels(**labels).set(float(total.equity))
            metrics.EXECUTION_REALISED_PNL.labels(**labels).set(float(total.realised))
            metrics.EXECUTION_UNREALISED_PNL.labels(**labels).set(float(total.unrealised))
        for venue in self._venues - totals.keys():  # its last account was deleted
            for gauge in (
                metrics.EXECUTION_EQUITY,
                metrics.EXECUTION_REALISED_PNL,
                metrics.EXECUTION_UNREALISED_PNL,
            ):
                gauge.remove(self.service, venue)
        self._venues = set(totals)
        return totals

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.refresh()
            except Exception:
                log.warning("reading equity and PnL for metrics failed; will retry", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)
