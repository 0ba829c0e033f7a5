"""Opening an account and changing its buying-power terms: the row and, for a paper account, the
AccountChanged that tells risk its cash and terms, in one transaction
(docs/decisions/0112-buying-power.md). An exchange account's buying power is its venue's
balances, which balances.py reads and tells risk (docs/decisions/0116-venue-buying-power.md)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import asyncpg
from trademesh_bus.outbox import Outbox
from trademesh_db import Database
from trademesh_events.ids import AccountId
from trademesh_events.orders import AccountChanged
from trademesh_trading.buying_power import AccountTerms

from trademesh_execution.store import AccountRow, ExecutionStore


async def open_account(
    db: Database,
    store: ExecutionStore,
    outbox: Outbox,
    account: AccountRow,
    *,
    fee_bps: Decimal,
    now: datetime,
) -> None:
    """Store the account; a paper account's terms and cash go to risk on the account's
    partition of orders.events.v1, ahead of any fill of it (an exchange account's buying power
    is the venue's: balances.py tells risk)."""
    async with db.transaction() as conn:
        await store.add_account(account, conn)
        await _announce(conn, outbox, account, fee_bps, now)


async def change_terms(
    db: Database,
    store: ExecutionStore,
    outbox: Outbox,
    account_id: AccountId,
    terms: AccountTerms,
    *,
    now: datetime,
) -> AccountRow | None:
    """Set the account's margin mode, leverage and shorting (None: no such account); a paper
    account's new terms go to risk with its cash as it is now, after every fill before it."""
    async with db.transaction() as conn:
        account = await store.set_terms(
            conn, account_id, terms.mode.value, terms.max_leverage, terms.allow_short
        )
        if account is not None:
            await _announce(conn, outbox, account, terms.fee_bps, now)
        return account


async def _announce(
    conn: asyncpg.Connection,
    outbox: Outbox,
    account: AccountRow,
    fee_bps: Decimal,
    now: datetime,
) -> None:
    if account.venue != "paper":
        return
    await outbox.add(
        conn,
        AccountChanged(
            account_id=account.account_id,
            user_id=account.user_id,
            venue=account.venue,
            cash=account.cash,
            margin_mode="margin" if account.margin_mode == "margin" else "cash",
            max_leverage=account.max_leverage,
            allow_short=account.allow_short,
            fee_bps=fee_bps,
            changed_at=now,
        ),
    )
