"""Where the risk service keeps its state: limits, accounts, decisions, positions and prices in its
own Postgres schema. Everything an intent is checked against is read from here, so a restarted
service (or another replica) decides exactly as the one before it.

Methods that change state take the caller's connection, so that the change, the inbox entry of
the event that caused it and the events it causes (outbox) commit together.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

import asyncpg
from trademesh_db import Database
from trademesh_events.ids import AccountId, ClientOrderId, InstrumentId
from trademesh_trading.buying_power import AccountTerms, MarginMode

from trademesh_risk.engine import InstrumentRules, Limits, TradingState

ZERO = Decimal(0)

RuleSource = Literal["venue", "admin"]


def limits_from_json(text: str | None) -> Limits | None:
    if text is None:
        return None
    values = json.loads(text)
    return Limits(**{k: _number(k, v) for k, v in values.items() if v is not None})


def _limits(text: str) -> Limits:
    found = limits_from_json(text)
    assert found is not None
    return found


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
    account_id: AccountId
    state: TradingState
    state_reason: str | None
    kill_switch: bool
    kill_reason: str | None
    pnl_day: date
    realised_today: Decimal
    updated_at: datetime
    cash: Decimal | None = None  # NULL: never funded in risk, its orders are not checked for cash
    margin_mode: str = "cash"
    max_leverage: Decimal = Decimal(1)
    allow_short: bool = False
    fee_bps: Decimal = ZERO
    # An exchange account's settlement currency and its venue's other holdings (None: paper).
    currency: str | None = None
    holdings: Mapping[str, Decimal] | None = None

    @property
    def terms(self) -> AccountTerms:
        return AccountTerms(
            MarginMode(self.margin_mode), self.max_leverage, self.allow_short, self.fee_bps
        )


def _account(row: asyncpg.Record) -> AccountRow:
    values = dict(row)
    values["state"] = TradingState(values["state"])
    values["holdings"] = holdings_from_json(values.get("holdings"))
    return AccountRow(**values)


def holdings_from_json(text: str | None) -> dict[str, Decimal] | None:
    """The venue's holdings of an account as stored (decimal strings by currency)."""
    if text is None:
        return None
    return {currency: Decimal(amount) for currency, amount in json.loads(text).items()}


def holdings_to_json(holdings: Mapping[str, Decimal]) -> str:
    return json.dumps({currency: format(amount, "f") for currency, amount in holdings.items()})


@dataclass(frozen=True)
class RuleLayer:
    """An instrument's rules from one source, and when they last changed."""

    rules: InstrumentRules
    updated_at: datetime


@dataclass(frozen=True)
class PositionRow:
    instrument_id: InstrumentId
    position: Decimal
    avg_price: Decimal
    realised: Decimal


@dataclass(frozen=True)
class AccountState:
    """What the checks need of one account, read at once: its row, filled positions, what its
    approved orders not finished yet may still buy and sell per instrument and how many there
    are, and the times of its approvals since the time asked for."""

    state: TradingState
    kill_switch: bool
    pnl_day: date
    realised_today: Decimal
    positions: Mapping[InstrumentId, Decimal]
    pending: Mapping[InstrumentId, tuple[Decimal, Decimal]]
    open_orders: int
    recent_approvals: Sequence[datetime]
    # Buying power: the account's cash (None: never funded in risk, not checked), its terms, and
    # what its open approved orders still reserve (their unfilled share).
    cash: Decimal | None = None
    terms: AccountTerms = field(default_factory=AccountTerms)
    reserved: Decimal = ZERO
    # An exchange account's settlement currency and its venue's other holdings (None: paper).
    currency: str | None = None
    holdings: Mapping[str, Decimal] | None = None


@dataclass(frozen=True)
class IntentsState:
    """What deciding a batch of intents reads, in one statement (RiskStore.intents_state)."""

    config_version: int
    global_kill_switch: bool
    decided: frozenset[ClientOrderId]  # of the client order ids asked about, decided before
    accounts: Mapping[AccountId, AccountState]


@dataclass(frozen=True)
class ConfigRows:
    """Stored limits and instrument rules of some accounts and instruments (a key without
    rows has none)."""

    own: Mapping[AccountId, Limits]
    admin: Mapping[AccountId, Limits]
    per_instrument: Mapping[tuple[AccountId, InstrumentId], Limits]
    rules: Mapping[InstrumentId, Mapping[RuleSource, InstrumentRules]]


@dataclass(frozen=True)
class FillState:
    """A fill just counted (`added`; False: its trade id was seen before, nothing changed), and
    what booking it needs: the position held before it, the account's state, kill switch and
    realised PnL (as stored: of `pnl_day`), and the configuration's version. The account is None
    when its row does not exist (a caller that did not lock it first)."""

    added: bool
    held: PositionRow
    account: tuple[TradingState, bool, date, Decimal] | None
    config_version: int
    currency: str | None = None  # the account's settlement currency (an exchange account's)


@dataclass(frozen=True)
class Decision:
    client_order_id: ClientOrderId
    account_id: AccountId
    instrument_id: InstrumentId
    side: str
    quantity: Decimal
    approved: bool
    reason: str | None
    at: datetime
    reserved: Decimal = ZERO  # of the account's buying power, while the order is open


class RiskStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # ---- accounts and switches ----------------------------------------------------------------

    async def lock_accounts(
        self, conn: asyncpg.Connection, account_ids: list[AccountId], today: date
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
        self, conn: asyncpg.Connection, account_id: AccountId, today: date
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

    async def account(self, account_id: AccountId) -> AccountRow | None:
        row = await self.db.pool.fetchrow(
            "SELECT * FROM accounts WHERE account_id = $1", account_id
        )
        return _account(row) if row is not None else None

    async def set_state(
        self,
        conn: asyncpg.Connection,
        account_id: AccountId,
        state: TradingState,
        reason: str | None,
    ) -> None:
        await conn.execute(
            "UPDATE accounts SET state = $2, state_reason = $3, updated_at = now() "
            "WHERE account_id = $1",
            account_id,
            state.value,
            reason,
        )

    async def set_kill_switch(
        self, conn: asyncpg.Connection, account_id: AccountId, engaged: bool, reason: str | None
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
    ) -> bool:
        """Set the global kill switch; whether it was engaged before (read under its lock, so
        that two admins setting it at once see each other's change)."""
        was = await conn.fetchval("SELECT engaged FROM global_switch FOR UPDATE")
        await conn.execute(
            "UPDATE global_switch SET engaged = $1, reason = $2, updated_at = now()",
            engaged,
            reason if engaged else None,
        )
        return bool(was)

    async def accounts_with_open_orders(self, conn: asyncpg.Connection) -> list[AccountId]:
        rows = await conn.fetch("SELECT DISTINCT account_id FROM decisions WHERE open ORDER BY 1")
        return [row["account_id"] for row in rows]

    # ---- limits and rules ------------------------------------------------------------------------

    async def limits(
        self,
        account_id: AccountId,
        instrument_id: InstrumentId | None,
        conn: asyncpg.Connection | None = None,
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
        self, account_id: AccountId, conn: asyncpg.Connection | None = None
    ) -> Limits | None:
        """An admin's limits for the account, in place of the defaults (None: none set)."""
        text = await (conn or self.db.pool).fetchval(
            "SELECT limits::text FROM admin_limits WHERE account_id = $1", account_id
        )
        return limits_from_json(text)

    async def put_admin_limits(self, account_id: AccountId, limits: Limits) -> None:
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

    async def instrument_limits(self, account_id: AccountId) -> dict[InstrumentId, Limits]:
        rows = await self.db.pool.fetch(
            "SELECT instrument_id, limits::text AS limits FROM instrument_limits "
            "WHERE account_id = $1 ORDER BY instrument_id",
            account_id,
        )
        out: dict[InstrumentId, Limits] = {}
        for row in rows:
            limits = limits_from_json(row["limits"])
            assert limits is not None
            out[row["instrument_id"]] = limits
        return out

    async def put_limits(
        self, account_id: AccountId, limits: Limits, instrument_id: InstrumentId | None = None
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
        self, instrument_id: InstrumentId, conn: asyncpg.Connection | None = None
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

    async def put_rules(self, instrument_id: InstrumentId, rules: InstrumentRules) -> None:
        """Set an admin's override of the instrument's rules (the venue sync never touches it)."""
        await self.db.pool.execute(
            "INSERT INTO instrument_rules (instrument_id, source, rules) VALUES ($1, 'admin', $2::jsonb) "
            "ON CONFLICT (instrument_id, source) DO UPDATE SET rules = EXCLUDED.rules, updated_at = now()",
            instrument_id,
            rules_to_json(rules),
        )

    async def delete_rules(self, instrument_id: InstrumentId) -> bool:
        """Drop an admin's override, so that the venue's rules apply again; False if none."""
        status: str = await self.db.pool.execute(
            "DELETE FROM instrument_rules WHERE instrument_id = $1 AND source = 'admin'",
            instrument_id,
        )
        return status.endswith(" 1")

    async def put_venue_rules(self, rules: Mapping[InstrumentId, InstrumentRules]) -> int:
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
        self, account_id: AccountId, conn: asyncpg.Connection | None = None
    ) -> list[PositionRow]:
        rows = await (conn or self.db.pool).fetch(
            "SELECT instrument_id, position, avg_price, realised FROM positions "
            "WHERE account_id = $1 ORDER BY instrument_id",
            account_id,
        )
        return [PositionRow(**dict(row)) for row in rows]

    async def pending(
        self, conn: asyncpg.Connection, account_id: AccountId
    ) -> tuple[dict[InstrumentId, tuple[Decimal, Decimal]], int]:
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

    async def intents_state(
        self,
        conn: asyncpg.Connection,
        account_ids: Sequence[AccountId],
        client_order_ids: Sequence[ClientOrderId],
        since: datetime,
    ) -> IntentsState:
        """Everything deciding intents of these accounts reads from the database, in one
        statement: each account's row, positions, pending orders and approvals after `since`;
        the global kill switch; which of the client order ids were decided before; and the
        configuration's version (the limits and rules themselves come from ConfigCache).
        Call it after locking the accounts, so that it sees their last committed state."""
        row = await conn.fetchrow(
            "SELECT (SELECT version FROM config_version) AS config_version, "
            "(SELECT engaged FROM global_switch) AS global_kill_switch, "
            "ARRAY(SELECT client_order_id FROM decisions "
            "WHERE client_order_id = ANY($2::text[])) AS decided, "
            "ARRAY(SELECT ROW(account_id, state, kill_switch, pnl_day, realised_today, cash, "
            "margin_mode, max_leverage, allow_short, fee_bps, currency, holdings::text) "
            "FROM accounts WHERE account_id = ANY($1::uuid[])) AS accounts, "
            "ARRAY(SELECT ROW(account_id, instrument_id, position) "
            "FROM positions WHERE account_id = ANY($1::uuid[])) AS positions, "
            "ARRAY(SELECT ROW(account_id, instrument_id, "
            "COALESCE(sum(quantity - filled) FILTER (WHERE side = 'buy'), 0), "
            "COALESCE(sum(quantity - filled) FILTER (WHERE side = 'sell'), 0), count(*), "
            "sum(reserved * (quantity - filled) / quantity)) "
            "FROM decisions WHERE account_id = ANY($1::uuid[]) AND open "
            "GROUP BY account_id, instrument_id) AS pending, "
            "ARRAY(SELECT ROW(account_id, decided_at) FROM decisions "
            "WHERE account_id = ANY($1::uuid[]) AND approved AND decided_at > $3 "
            "ORDER BY decided_at) AS recent",
            list(account_ids),
            list(client_order_ids),
            since,
        )
        assert row is not None
        positions: dict[AccountId, dict[InstrumentId, Decimal]] = {}
        for account_id, instrument_id, position in row["positions"]:
            positions.setdefault(account_id, {})[instrument_id] = position
        pending: dict[AccountId, dict[InstrumentId, tuple[Decimal, Decimal]]] = {}
        orders: dict[AccountId, int] = {}
        reserved: dict[AccountId, Decimal] = {}
        for account_id, instrument_id, buy, sell, count, held in row["pending"]:
            pending.setdefault(account_id, {})[instrument_id] = (buy, sell)
            orders[account_id] = orders.get(account_id, 0) + count
            reserved[account_id] = reserved.get(account_id, ZERO) + held
        recent: dict[AccountId, list[datetime]] = {}
        for account_id, at in row["recent"]:
            recent.setdefault(account_id, []).append(at)
        accounts = {
            account_id: AccountState(
                state=TradingState(state),
                kill_switch=kill_switch,
                pnl_day=pnl_day,
                realised_today=realised_today,
                positions=positions.get(account_id, {}),
                pending=pending.get(account_id, {}),
                open_orders=orders.get(account_id, 0),
                recent_approvals=recent.get(account_id, []),
                cash=cash,
                terms=AccountTerms(MarginMode(mode), leverage, allow_short, fee_bps),
                reserved=reserved.get(account_id, ZERO),
                currency=currency,
                holdings=holdings_from_json(holdings),
            )
            for (
                account_id,
                state,
                kill_switch,
                pnl_day,
                realised_today,
                cash,
                mode,
                leverage,
                allow_short,
                fee_bps,
                currency,
                holdings,
            ) in row["accounts"]
        }
        return IntentsState(
            config_version=row["config_version"],
            global_kill_switch=row["global_kill_switch"],
            decided=frozenset(row["decided"]),
            accounts=accounts,
        )

    async def start_day(
        self, conn: asyncpg.Connection, account_ids: Sequence[AccountId], today: date
    ) -> None:
        """The accounts' realised PnL starts again from zero: a new UTC day (`today`)."""
        await conn.execute(
            "UPDATE accounts SET pnl_day = $2, realised_today = 0, updated_at = now() "
            "WHERE account_id = ANY($1::uuid[]) AND pnl_day <> $2",
            list(account_ids),
            today,
        )

    async def config_of(
        self,
        conn: asyncpg.Connection,
        account_ids: Sequence[AccountId],
        pairs: Sequence[tuple[AccountId, InstrumentId]],
        instrument_ids: Sequence[InstrumentId],
    ) -> ConfigRows:
        """The stored limits of these accounts (their own and an admin's), of these (account,
        instrument) pairs, and the rules of these instruments, in one statement."""
        row = await conn.fetchrow(
            "SELECT ARRAY(SELECT ROW(account_id, limits::text) FROM account_limits "
            "WHERE account_id = ANY($1::uuid[])) AS own, "
            "ARRAY(SELECT ROW(account_id, limits::text) FROM admin_limits "
            "WHERE account_id = ANY($1::uuid[])) AS admin, "
            "ARRAY(SELECT ROW(l.account_id, l.instrument_id, l.limits::text) "
            "FROM instrument_limits l JOIN unnest($2::uuid[], $3::text[]) AS k(a, i) "
            "ON l.account_id = k.a AND l.instrument_id = k.i) AS per_instrument, "
            "ARRAY(SELECT ROW(instrument_id, source, rules::text) FROM instrument_rules "
            "WHERE instrument_id = ANY($4::text[])) AS rules",
            list(account_ids),
            [account_id for account_id, _ in pairs],
            [instrument_id for _, instrument_id in pairs],
            list(instrument_ids),
        )
        assert row is not None
        rules: dict[InstrumentId, dict[RuleSource, InstrumentRules]] = {}
        for instrument_id, source, text in row["rules"]:
            found = rules_from_json(text)
            assert found is not None
            rules.setdefault(instrument_id, {})["admin" if source == "admin" else "venue"] = found
        return ConfigRows(
            own={a: _limits(text) for a, text in row["own"]},
            admin={a: _limits(text) for a, text in row["admin"]},
            per_instrument={(a, i): _limits(text) for a, i, text in row["per_instrument"]},
            rules=rules,
        )

    # ---- decisions -----------------------------------------------------------------------------

    async def record_decisions(
        self, conn: asyncpg.Connection, decisions: Sequence[Decision]
    ) -> None:
        """Store a batch's decisions, in their order, with one statement (an approved order is
        open from now on)."""
        if not decisions:
            return
        await conn.execute(
            "INSERT INTO decisions (client_order_id, account_id, instrument_id, side, quantity, "
            "approved, reason, open, decided_at, reserved) "
            "SELECT d.id, d.account, d.instrument, d.side, d.quantity, d.approved, d.reason, "
            "d.approved, d.at, d.reserved FROM unnest($1::text[], $2::uuid[], $3::text[], "
            "$4::text[], $5::numeric[], $6::boolean[], $7::text[], $8::timestamptz[], "
            "$9::numeric[]) WITH ORDINALITY "
            "AS d(id, account, instrument, side, quantity, approved, reason, at, reserved, n) "
            "ORDER BY d.n",
            [d.client_order_id for d in decisions],
            [d.account_id for d in decisions],
            [d.instrument_id for d in decisions],
            [d.side for d in decisions],
            [d.quantity for d in decisions],
            [d.approved for d in decisions],
            [d.reason for d in decisions],
            [d.at for d in decisions],
            [d.reserved for d in decisions],
        )

    async def close_order(self, conn: asyncpg.Connection, client_order_id: ClientOrderId) -> bool:
        status: str = await conn.execute(
            "UPDATE decisions SET open = false WHERE client_order_id = $1 AND open",
            client_order_id,
        )
        return status.endswith(" 1")

    async def count_fill(
        self,
        conn: asyncpg.Connection,
        *,
        account_id: AccountId,
        instrument_id: InstrumentId,
        client_order_id: ClientOrderId,
        trade_id: str,
        qty: Decimal,
        leaves: Decimal,
    ) -> FillState:
        """Count a fill against its order once per trade id (its order stops being open when
        nothing is left of it), and read what booking it needs, in one statement. Positions
        and the account's realised PnL are only written under the account's lock, so reading
        them here, with the lock held, is reading what the booking will overwrite."""
        row = await conn.fetchrow(
            "WITH added AS (INSERT INTO fills (client_order_id, trade_id) VALUES ($1, $2) "
            "ON CONFLICT DO NOTHING RETURNING client_order_id), "
            "counted AS (UPDATE decisions SET filled = filled + $3, open = open AND $4 "
            "WHERE client_order_id = (SELECT client_order_id FROM added)) "
            "SELECT EXISTS (SELECT 1 FROM added) AS added, "
            "p.position, p.avg_price, p.realised, a.state, a.kill_switch, a.pnl_day, a.realised_today, "
            "a.currency, (SELECT version FROM config_version) AS config_version "
            "FROM (VALUES ($5::uuid, $6::text)) AS k(account_id, instrument_id) "
            "LEFT JOIN accounts a ON a.account_id = k.account_id "
            "LEFT JOIN positions p "
            "ON p.account_id = k.account_id AND p.instrument_id = k.instrument_id",
            client_order_id,
            trade_id,
            qty,
            leaves > 0,
            account_id,
            instrument_id,
        )
        assert row is not None
        held = (
            PositionRow(instrument_id, ZERO, ZERO, ZERO)
            if row["position"] is None
            else PositionRow(instrument_id, row["position"], row["avg_price"], row["realised"])
        )
        account = (
            None
            if row["state"] is None
            else (
                TradingState(row["state"]),
                row["kill_switch"],
                row["pnl_day"],
                row["realised_today"],
            )
        )
        return FillState(row["added"], held, account, row["config_version"], row["currency"])

    async def book_fill(
        self,
        conn: asyncpg.Connection,
        account_id: AccountId,
        position: PositionRow,
        realised_today: Decimal,
        today: date,
        cash_delta: Decimal = ZERO,
        holdings_delta: Mapping[str, Decimal] | None = None,
    ) -> None:
        """Save the position a fill left, the account's realised PnL of `today`, its cash moved
        by `cash_delta` (an account never funded keeps NULL) and its venue holdings by
        `holdings_delta` per currency (an account without them keeps NULL), in one statement
        (the account's row is written only when that changed)."""
        moved = holdings_to_json({k: v for k, v in (holdings_delta or {}).items() if v != 0})
        await conn.execute(
            "WITH saved AS (INSERT INTO positions "
            "(account_id, instrument_id, position, avg_price, realised) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (account_id, instrument_id) DO UPDATE SET "
            "position = EXCLUDED.position, avg_price = EXCLUDED.avg_price, "
            "realised = EXCLUDED.realised) "
            "UPDATE accounts SET realised_today = $6, pnl_day = $7, cash = cash + $8::numeric, "
            "holdings = holdings || COALESCE((SELECT jsonb_object_agg(d.key, "
            "(COALESCE(accounts.holdings ->> d.key, '0')::numeric + d.value::numeric)::text) "
            "FROM jsonb_each_text($9::jsonb) AS d), '{}'::jsonb), updated_at = now() "
            "WHERE account_id = $1 AND (realised_today <> $6 OR pnl_day <> $7 "
            "OR $8::numeric <> 0 OR $9::jsonb <> '{}'::jsonb)",
            account_id,
            position.instrument_id,
            position.position,
            position.avg_price,
            position.realised,
            realised_today,
            today,
            cash_delta,
            moved,
        )

    async def put_buying_power(
        self, account_id: AccountId, terms: AccountTerms, cash: Decimal | None, set_cash: bool
    ) -> None:
        """Set the account's margin mode, leverage, shorting and fee rate, and its cash when
        `set_cash` (None: stop checking it for cash), under the account's lock, so that no
        fill's cash moves in between."""
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO accounts (account_id) VALUES ($1) ON CONFLICT DO NOTHING", account_id
            )
            await self._put_buying_power(conn, account_id, terms, cash, set_cash)

    async def set_buying_power(
        self,
        conn: asyncpg.Connection,
        account_id: AccountId,
        terms: AccountTerms,
        cash: Decimal,
        *,
        currency: str | None = None,
        holdings: Mapping[str, Decimal] | None = None,
    ) -> None:
        """put_buying_power in the caller's transaction, cash included, and the account's
        settlement currency and venue holdings (an AccountChanged from execution: None for a
        paper account); the caller holds the account's lock (lock_accounts creates the row)."""
        venue = (currency, None if holdings is None else holdings_to_json(holdings))
        await self._put_buying_power(conn, account_id, terms, cash, True, venue)

    @staticmethod
    async def _put_buying_power(
        conn: asyncpg.Connection,
        account_id: AccountId,
        terms: AccountTerms,
        cash: Decimal | None,
        set_cash: bool,
        venue: tuple[str | None, str | None] | None = None,
    ) -> None:
        """`venue`: the currency and holdings (JSON) to set; None keeps them (an admin's
        override of the terms and cash)."""
        currency, holdings = venue if venue is not None else (None, None)
        await conn.execute(
            "UPDATE accounts SET margin_mode = $2, max_leverage = $3, allow_short = $4, "
            "fee_bps = $5, cash = CASE WHEN $6 THEN $7::numeric ELSE cash END, "
            "currency = CASE WHEN $8 THEN $9 ELSE currency END, "
            "holdings = CASE WHEN $8 THEN $10::jsonb ELSE holdings END, "
            "updated_at = now() WHERE account_id = $1",
            account_id,
            terms.mode.value,
            terms.max_leverage,
            terms.allow_short,
            terms.fee_bps,
            set_cash,
            cash,
            venue is not None,
            currency,
            holdings,
        )

    async def reserved(self, account_id: AccountId) -> Decimal:
        """What the account's open approved orders still reserve of its buying power."""
        value = await self.db.pool.fetchval(
            "SELECT COALESCE(sum(reserved * (quantity - filled) / quantity), 0) FROM decisions "
            "WHERE account_id = $1 AND open",
            account_id,
        )
        return Decimal(value)

    # ---- prices --------------------------------------------------------------------------------

    async def save_prices(self, prices: dict[InstrumentId, tuple[Decimal, datetime]]) -> None:
        if not prices:
            return
        await self.db.pool.executemany(
            "INSERT INTO prices (instrument_id, price, ts) VALUES ($1, $2, $3) "
            "ON CONFLICT (instrument_id) DO UPDATE SET price = EXCLUDED.price, ts = EXCLUDED.ts "
            "WHERE prices.ts <= EXCLUDED.ts",
            [(k, p, t) for k, (p, t) in prices.items()],
        )

    async def load_prices(self) -> dict[InstrumentId, tuple[Decimal, datetime]]:
        rows = await self.db.pool.fetch("SELECT instrument_id, price, ts FROM prices")
        return {row["instrument_id"]: (row["price"], row["ts"]) for row in rows}
