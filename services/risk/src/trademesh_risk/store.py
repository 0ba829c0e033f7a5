"""Where the risk service keeps its state: limits, accounts, decisions, positions and prices in its
own Postgres schema. Everything an intent is checked against is read from here, so a restarted
service (or another replica) decides exactly as the one before it.

Methods that change state take the caller's connection, so that the change, the inbox entry of
the event that caused it and the events it causes (outbox) commit together.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

import asyncpg
from trademesh_db import Database

from trademesh_risk.engine import InstrumentRules, Limits, TradingState

ZERO = Decimal(0)

RuleSource = Literal["venue", "admin"]


def limits_from_json(text: str | None) -> Limits | None:
    if text is None:
        return None
    values = json.loads(text)
    return Limits(**{k: _number(k, v) for k, v in values.items() if v is not None})


def limits_to_json(limits: Limits) -> str:
    return json.dumps(
        {f.name: _text(getattr(limits, f.name)) for f in fields(limits)}, sort_keys=True
    )


def rules_from_json(text: str | None) -> InstrumentRules | None:
    if text is None:
        return None
    values = json.loads(text)
    return InstrumentRules(**{k: Decimal(v) for k, v in values.items() if v is not None})


def rules_to_json(rules: InstrumentRules) -> str:
    return json.dumps(
        {f.name: _text(getattr(rules, f.name)) for f in fields(rules)}, sort_keys=True
    )


def _number(name: str, value: Any) -> Any:
    # Counts are ints, money and quantities Decimals (stored as strings, never floats).
    return (
        int(value)
        if name in ("max_open_orders", "max_orders_per_second", "max_orders_per_minute")
        else Decimal(value)
    )


def _text(value: Any) -> Any:
    return None if value is None else (value if isinstance(value, int) else str(value))


@dataclass(frozen=True)
class AccountRow:
    account_id: UUID
    state: TradingState
    state_reason: str | None
    kill_switch: bool
    kill_reason: str | None
    pnl_day: date
    realised_today: Decimal
    updated_at: datetime


def _account(row: asyncpg.Record) -> AccountRow:
    values = dict(row)
    values["state"] = TradingState(values["state"])
    return AccountRow(**values)


@dataclass(frozen=True)
class RuleLayer:
    """An instrument's rules from one source, and when they last changed."""

    rules: InstrumentRules
    updated_at: datetime


@dataclass(frozen=True)
class PositionRow:
    instrument_id: str
    position: Decimal
    avg_price: Decimal
    realised: Decimal


class RiskStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # ---- accounts and switches ----------------------------------------------------------------

    async def lock_accounts(
        self, conn: asyncpg.Connection, account_ids: list[UUID], today: date
    ) -> None:
        """Create the accounts that are new (ACTIVE) and lock all their rows for this
        transaction, in the order given (lock_account then finds each locked already)."""
        await conn.execute(
            "INSERT INTO accounts (account_id, pnl_day) SELECT a, $2 FROM unnest($1::uuid[]) AS a "
            "ON CONFLICT DO NOTHING",
            account_ids,
            today,
        )
        await conn.execute(
            "SELECT 1 FROM accounts a JOIN unnest($1::uuid[]) WITH ORDINALITY AS l(id, n) "
            "ON a.account_id = l.id ORDER BY l.n FOR UPDATE OF a",
            account_ids,
        )

    async def lock_account(
        self, conn: asyncpg.Connection, account_id: UUID, today: date
    ) -> AccountRow:
        """The account's row, created ACTIVE when new, locked for this transaction; its realised
        PnL starts again from zero on a new UTC day."""
        await conn.execute(
            "INSERT INTO accounts (account_id, pnl_day) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            account_id,
            today,
        )
        row = await conn.fetchrow(
            "SELECT * FROM accounts WHERE account_id = $1 FOR UPDATE", account_id
        )
        assert row is not None
        account = _account(row)
        if account.pnl_day != today:
            await conn.execute(
                "UPDATE accounts SET pnl_day = $2, realised_today = 0, updated_at = now() "
                "WHERE account_id = $1",
                account_id,
                today,
            )
            account = AccountRow(**{**account.__dict__, "pnl_day": today, "realised_today": ZERO})
        return account

    async def account(self, account_id: UUID) -> AccountRow | None:
        row = await self.db.pool.fetchrow(
            "SELECT * FROM accounts WHERE account_id = $1", account_id
        )
        return _account(row) if row is not None else None

    async def set_state(
        self, conn: asyncpg.Connection, account_id: UUID, state: TradingState, reason: str | None
    ) -> None:
        await conn.execute(
            "UPDATE accounts SET state = $2, state_reason = $3, updated_at = now() "
            "WHERE account_id = $1",
            account_id,
            state.value,
            reason,
        )

    async def set_kill_switch(
        self, conn: asyncpg.Connection, account_id: UUID, engaged: bool, reason: str | None
    ) -> None:
        await conn.execute(
            "UPDATE accounts SET kill_switch = $2, kill_reason = $3, updated_at = now() "
            "WHERE account_id = $1",
            account_id,
            engaged,
            reason if engaged else None,
        )

    async def global_switch(
        self, conn: asyncpg.Connection | None = None
    ) -> tuple[bool, str | None]:
        row = await (conn or self.db.pool).fetchrow("SELECT engaged, reason FROM global_switch")
        assert row is not None
        return bool(row["engaged"]), row["reason"]

    async def set_global_switch(
        self, conn: asyncpg.Connection, engaged: bool, reason: str | None
    ) -> None:
        await conn.execute(
            "UPDATE global_switch SET engaged = $1, reason = $2, updated_at = now()",
            engaged,
            reason if engaged else None,
        )

    async def accounts_with_open_orders(self, conn: asyncpg.Connection) -> list[UUID]:
        rows = await conn.fetch("SELECT DISTINCT account_id FROM decisions WHERE open ORDER BY 1")
        return [row["account_id"] for row in rows]

    # ---- limits and rules ------------------------------------------------------------------------

    async def limits(
        self, account_id: UUID, instrument_id: str | None, conn: asyncpg.Connection | None = None
    ) -> tuple[Limits | None, Limits | None]:
        """The account's own limits and its own limits for this instrument (either may be None;
        the second is when `instrument_id` is)."""
        db = conn or self.db.pool
        account = await db.fetchval(
            "SELECT limits::text FROM account_limits WHERE account_id = $1", account_id
        )
        if instrument_id is None:
            return limits_from_json(account), None
        instrument = await db.fetchval(
            "SELECT limits::text FROM instrument_limits WHERE account_id = $1 AND instrument_id = $2",
            account_id,
            instrument_id,
        )
        return limits_from_json(account), limits_from_json(instrument)

    async def admin_limits(
        self, account_id: UUID, conn: asyncpg.Connection | None = None
    ) -> Limits | None:
        """An admin's limits for the account, in place of the defaults (None: none set)."""
        text = await (conn or self.db.pool).fetchval(
            "SELECT limits::text FROM admin_limits WHERE account_id = $1", account_id
        )
        return limits_from_json(text)

    async def put_admin_limits(self, account_id: UUID, limits: Limits) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO admin_limits (account_id, limits) VALUES ($1, $2::jsonb) "
                "ON CONFLICT (account_id) DO UPDATE SET limits = EXCLUDED.limits, updated_at = now()",
                account_id,
                limits_to_json(limits),
            )
            await conn.execute(
                "INSERT INTO accounts (account_id) VALUES ($1) ON CONFLICT DO NOTHING", account_id
            )

    async def instrument_limits(self, account_id: UUID) -> dict[str, Limits]:
        rows = await self.db.pool.fetch(
            "SELECT instrument_id, limits::text AS limits FROM instrument_limits "
            "WHERE account_id = $1 ORDER BY instrument_id",
            account_id,
        )
        out: dict[str, Limits] = {}
        for row in rows:
            limits = limits_from_json(row["limits"])
            assert limits is not None
            out[row["instrument_id"]] = limits
        return out

    async def put_limits(
        self, account_id: UUID, limits: Limits, instrument_id: str | None = None
    ) -> None:
        async with self.db.transaction() as conn:
            if instrument_id is None:
                await conn.execute(
                    "INSERT INTO account_limits (account_id, limits) VALUES ($1, $2::jsonb) "
                    "ON CONFLICT (account_id) DO UPDATE SET limits = EXCLUDED.limits, updated_at = now()",
                    account_id,
                    limits_to_json(limits),
                )
            else:
                await conn.execute(
                    "INSERT INTO instrument_limits (account_id, instrument_id, limits) "
                    "VALUES ($1, $2, $3::jsonb) ON CONFLICT (account_id, instrument_id) "
                    "DO UPDATE SET limits = EXCLUDED.limits, updated_at = now()",
                    account_id,
                    instrument_id,
                    limits_to_json(limits),
                )
            await conn.execute(
                "INSERT INTO accounts (account_id) VALUES ($1) ON CONFLICT DO NOTHING", account_id
            )

    async def rule_layers(
        self, instrument_id: str, conn: asyncpg.Connection | None = None
    ) -> dict[RuleSource, RuleLayer]:
        """The instrument's rules by where they came from (no key for a source without rules)."""
        rows = await (conn or self.db.pool).fetch(
            "SELECT source, rules::text AS rules, updated_at FROM instrument_rules "
            "WHERE instrument_id = $1",
            instrument_id,
        )
        out: dict[RuleSource, RuleLayer] = {}
        for row in rows:
            rules = rules_from_json(row["rules"])
            assert rules is not None
            source: RuleSource = "admin" if row["source"] == "admin" else "venue"
            out[source] = RuleLayer(rules, row["updated_at"])
        return out

    async def put_rules(self, instrument_id: str, rules: InstrumentRules) -> None:
        """Set an admin's override of the instrument's rules (the venue sync never touches it)."""
        await self.db.pool.execute(
            "INSERT INTO instrument_rules (instrument_id, source, rules) VALUES ($1, 'admin', $2::jsonb) "
            "ON CONFLICT (instrument_id, source) DO UPDATE SET rules = EXCLUDED.rules, updated_at = now()",
            instrument_id,
            rules_to_json(rules),
        )

    async def delete_rules(self, instrument_id: str) -> bool:
        """Drop an admin's override, so that the venue's rules apply again; False if none."""
        status: str = await self.db.pool.execute(
            "DELETE FROM instrument_rules WHERE instrument_id = $1 AND source = 'admin'",
            instrument_id,
        )
        return status.endswith(" 1")

    async def put_venue_rules(self, rules: Mapping[str, InstrumentRules]) -> int:
        """Write the venue's rules of many instruments at once, leaving admin overrides alone;
        how many were new or different from the ones stored."""
        if not rules:
            return 0
        ids = list(rules)
        changed = await self.db.pool.fetch(
            "INSERT INTO instrument_rules (instrument_id, source, rules) "
            "SELECT id, 'venue', body::jsonb FROM unnest($1::text[], $2::text[]) AS t(id, body) "
            "ON CONFLICT (instrument_id, source) DO UPDATE SET rules = EXCLUDED.rules, "
            "updated_at = now() WHERE instrument_rules.rules IS DISTINCT FROM EXCLUDED.rules "
            "RETURNING instrument_id",
            ids,
            [rules_to_json(rules[i]) for i in ids],
        )
        return len(changed)

    # ---- exposure ------------------------------------------------------------------------------

    async def positions(
        self, account_id: UUID, conn: asyncpg.Connection | None = None
    ) -> list[PositionRow]:
        rows = await (conn or self.db.pool).fetch(
            "SELECT instrument_id, position, avg_price, realised FROM positions "
            "WHERE account_id = $1 ORDER BY instrument_id",
            account_id,
        )
        return [PositionRow(**dict(row)) for row in rows]

    async def pending(
        self, conn: asyncpg.Connection, account_id: UUID
    ) -> tuple[dict[str, tuple[Decimal, Decimal]], int]:
        """Per instrument, what approved orders not finished yet may still buy and sell; and
        how many such orders there are."""
        rows = await conn.fetch(
            "SELECT instrument_id, "
            "COALESCE(sum(quantity - filled) FILTER (WHERE side = 'buy'), 0) AS buy, "
            "COALESCE(sum(quantity - filled) FILTER (WHERE side = 'sell'), 0) AS sell, "
            "count(*) AS orders FROM decisions WHERE account_id = $1 AND open "
            "GROUP BY instrument_id",
            account_id,
        )
        pending = {row["instrument_id"]: (row["buy"], row["sell"]) for row in rows}
        return pending, sum(int(row["orders"]) for row in rows)

    async def recent_approvals(
        self, conn: asyncpg.Connection, account_id: UUID, since: datetime
    ) -> list[datetime]:
        rows = await conn.fetch(
            "SELECT decided_at FROM decisions WHERE account_id = $1 AND approved "
            "AND decided_at > $2 ORDER BY decided_at",
            account_id,
            since,
        )
        return [row["decided_at"] for row in rows]

    # ---- decisions -----------------------------------------------------------------------------

    async def decided(self, conn: asyncpg.Connection, client_order_id: str) -> bool:
        found = await conn.fetchval(
            "SELECT true FROM decisions WHERE client_order_id = $1", client_order_id
        )
        return bool(found)

    async def record_decision(
        self,
        conn: asyncpg.Connection,
        *,
        client_order_id: str,
        account_id: UUID,
        instrument_id: str,
        side: str,
        quantity: Decimal,
        approved: bool,
        reason: str | None,
        at: datetime,
    ) -> None:
        await conn.execute(
            "INSERT INTO decisions (client_order_id, account_id, instrument_id, side, quantity, "
            "approved, reason, open, decided_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $6, $8)",
            client_order_id,
            account_id,
            instrument_id,
            side,
            quantity,
            approved,
            reason,
            at,
        )

    async def close_order(self, conn: asyncpg.Connection, client_order_id: str) -> bool:
        status: str = await conn.execute(
            "UPDATE decisions SET open = false WHERE client_order_id = $1 AND open",
            client_order_id,
        )
        return status.endswith(" 1")

    async def add_fill(
        self,
        conn: asyncpg.Connection,
        client_order_id: str,
        trade_id: str,
        qty: Decimal,
        leaves: Decimal,
    ) -> bool:
        """Count a fill against its order once per trade id; False for one seen before."""
        added = await conn.fetchval(
            "INSERT INTO fills (client_order_id, trade_id) VALUES ($1, $2) "
            "ON CONFLICT DO NOTHING RETURNING true",
            client_order_id,
            trade_id,
        )
        if not added:
            return False
        await conn.execute(
            "UPDATE decisions SET filled = filled + $2, open = open AND $3 WHERE client_order_id = $1",
            client_order_id,
            qty,
            leaves > 0,
        )
        return True

    async def position(
        self, conn: asyncpg.Connection, account_id: UUID, instrument_id: str
    ) -> PositionRow:
        row = await conn.fetchrow(
            "SELECT instrument_id, position, avg_price, realised FROM positions "
            "WHERE account_id = $1 AND instrument_id = $2 FOR UPDATE",
            account_id,
            instrument_id,
        )
        if row is None:
            return PositionRow(instrument_id, ZERO, ZERO, ZERO)
        return PositionRow(**dict(row))

    async def save_position(
        self, conn: asyncpg.Connection, account_id: UUID, row: PositionRow
    ) -> None:
        await conn.execute(
            "INSERT INTO positions (account_id, instrument_id, position, avg_price, realised) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (account_id, instrument_id) DO UPDATE SET "
            "position = EXCLUDED.position, avg_price = EXCLUDED.avg_price, realised = EXCLUDED.realised",
            account_id,
            row.instrument_id,
            row.position,
            row.avg_price,
            row.realised,
        )

    async def add_realised(
        self, conn: asyncpg.Connection, account_id: UUID, amount: Decimal
    ) -> None:
        await conn.execute(
            "UPDATE accounts SET realised_today = realised_today + $2, updated_at = now() "
            "WHERE account_id = $1",
            account_id,
            amount,
        )

    # ---- prices --------------------------------------------------------------------------------

    async def save_prices(self, prices: dict[str, tuple[Decimal, datetime]]) -> None:
        if not prices:
            return
        await self.db.pool.executemany(
            "INSERT INTO prices (instrument_id, price, ts) VALUES ($1, $2, $3) "
            "ON CONFLICT (instrument_id) DO UPDATE SET price = EXCLUDED.price, ts = EXCLUDED.ts "
            "WHERE prices.ts <= EXCLUDED.ts",
            [(k, p, t) for k, (p, t) in prices.items()],
        )

    async def load_prices(self) -> dict[str, tuple[Decimal, datetime]]:
        rows = await self.db.pool.fetch("SELECT instrument_id, price, ts FROM prices")
        return {row["instrument_id"]: (row["price"], row["ts"]) for row in rows}
