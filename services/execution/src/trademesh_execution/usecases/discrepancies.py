"""Disagreements between the service's books and a venue: raised, kept and counted, never
silently resolved.

Each finding is stored once (a venue order still unknown at the next reconciliation is the same
finding, not a new one: `dedupe_key`), and a new one is a `DiscrepancyDetected` event on
orders.discrepancies.v1 (through the outbox, in the caller's transaction), a count in
`trademesh_execution_discrepancies_total{kind}` and an error log line. `resolution` says what
the service did about it, or None when it did nothing because nothing was safe to do without a
human (a venue order it did not place is never cancelled by the service, for instance).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import asyncpg
from trademesh_bus.outbox import Outbox
from trademesh_events.ids import AccountId, ClientOrderId, InstrumentId, UserId
from trademesh_events.orders import DiscrepancyDetected, DiscrepancyKind
from trademesh_observability import metrics
from trademesh_observability.logging import get_logger

log = get_logger("trademesh_execution.discrepancies")


class Discrepancies:
    def __init__(self, *, outbox: Outbox, service: str, clock: Callable[[], datetime]) -> None:
        self.outbox = outbox
        self.service = service
        self.clock = clock
        # Every kind counted from 0, so that the first of a kind is an increase an alert sees.
        for kind in DiscrepancyKind:
            metrics.EXECUTION_DISCREPANCIES.labels(service=service, kind=kind.value.lower())

    async def raise_(
        self,
        conn: asyncpg.Connection,
        *,
        account_id: AccountId,
        user_id: UserId,
        venue: str,
        kind: DiscrepancyKind,
        detail: str,
        client_order_id: ClientOrderId | None = None,
        instrument_id: InstrumentId | None = None,
        venue_ref: str | None = None,
        resolution: str | None = None,
    ) -> bool:
        """Record the finding and raise its event; False (and nothing raised) when the same
        finding is on record already."""
        subject = venue_ref or client_order_id or detail
        key = f"{account_id}|{kind.value}|{subject}"[:500]
        event = DiscrepancyDetected(
            account_id=account_id,
            user_id=user_id,
            venue=venue,
            kind=kind,
            client_order_id=client_order_id,
            instrument_id=instrument_id,
            venue_ref=None if venue_ref is None else venue_ref[:200],
            detail=detail[:500],
            resolution=None if resolution is None else resolution[:500],
            detected_at=self.clock(),
        )
        added = await conn.fetchval(
            "INSERT INTO discrepancies (account_id, venue, kind, client_order_id, instrument_id, "
            "venue_ref, detail, resolution, detected_at, dedupe_key) VALUES "
            "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (dedupe_key) DO NOTHING "
            "RETURNING true",
            account_id,
            venue,
            kind.value,
            client_order_id,
            instrument_id,
            event.venue_ref,
            event.detail,
            event.resolution,
            event.detected_at,
            key,
        )
        if not added:
            return False
        await self.outbox.add(conn, event)
        metrics.EXECUTION_DISCREPANCIES.labels(service=self.service, kind=kind.value.lower()).inc()
        log.error(
            "discrepancy detected",
            account_id=str(account_id),
            instrument_id=instrument_id,
            venue=venue,
            kind=kind.value,
            client_order_id=client_order_id,
            venue_ref=event.venue_ref,
            detail=event.detail,
            resolution=event.resolution,
        )
        return True

    @staticmethod
    async def of_account(
        pool: asyncpg.Pool,
        account_id: AccountId,
        limit: int,
        after: tuple[datetime, int] | None = None,
    ) -> list[asyncpg.Record]:
        """The account's findings, newest first, after the keyset position `after`."""
        moment, row_id = after if after is not None else (None, None)
        return list(
            await pool.fetch(
                "SELECT id, kind, client_order_id, instrument_id, venue_ref, detail, resolution, "
                "detected_at FROM discrepancies WHERE account_id = $1 "
                "AND ($3::timestamptz IS NULL OR (detected_at, id) < ($3, $4::bigint)) "
                "ORDER BY detected_at DESC, id DESC LIMIT $2",
                account_id,
                limit,
                moment,
                row_id,
            )
        )
