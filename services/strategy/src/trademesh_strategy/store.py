"""Where the strategy service keeps bots, their runs, orders and fills: its own Postgres schema.

Every method that changes state takes the caller's connection, so that the change, the inbox
entry of the event that caused it and the events it causes (outbox) commit together.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg
from trademesh_db import Database
from trademesh_events.bots import BotState
from trademesh_events.ids import AccountId, BotId, ClientOrderId, InstrumentId, UserId
from trademesh_trading.backtest import Sizing

from trademesh_strategy.engine import BotConfig, OpenOrder, OrderRequest

TERMINAL = ("FILLED", "CANCELED", "REJECTED", "EXPIRED", "DENIED")


@dataclass(frozen=True)
class BotRecord:
    bot_id: BotId
    user_id: UserId
    account_id: AccountId
    name: str
    strategy: str
    params: dict[str, Any]
    instrument_id: InstrumentId
    timeframe: str
    venue: str
    sizing: Sizing
    capital: Decimal
    state: BotState
    error: str | None
    warm_from: datetime | None
    last_bar_time: datetime | None
    bars_seen: int
    position: Decimal
    cash: Decimal
    created_at: datetime
    updated_at: datetime
    approval: str = "none"  # "required": each order waits for its owner's decision
    approval_expiry_s: int = 60
    run_id: UUID | None = None  # the open run, where the query asked for it (running_for_pairs)

    @property
    def config(self) -> BotConfig:
        return BotConfig(
            self.bot_id,
            self.user_id,
            self.account_id,
            self.instrument_id,
            self.timeframe,
            self.sizing,
        )


def _bot(row: asyncpg.Record) -> BotRecord:
    # SELECT * is safe here: the table's columns are exactly BotRecord's fields (the migration),
    # with the open run's id where a query adds it.
    values = dict(row)
    values["params"] = json.loads(values["params"])
    values["sizing"] = Sizing.model_validate_json(values["sizing"])
    values["state"] = BotState(values["state"])
    return BotRecord(**values)


@dataclass(frozen=True)
class RunRecord:
    run_id: UUID
    bot_id: BotId
    started_at: datetime
    ended_at: datetime | None
    end_state: str | None
    reason: str | None
    bars: int
    orders: int
    fills: int


@dataclass(frozen=True)
class OrderRecord:
    client_order_id: ClientOrderId
    bot_id: BotId
    run_id: UUID
    bar_time: datetime
    leg: str
    side: str
    order_type: str
    quantity: Decimal
    limit_price: Decimal | None
    stop_price: Decimal | None
    status: str
    filled: Decimal
    open: bool
    reason: str | None
    created_at: datetime
    updated_at: datetime


class BotStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # ---- bots ------------------------------------------------------------------------------

    async def insert_bot(self, conn: asyncpg.Connection, bot: BotRecord) -> None:
        await conn.execute(
            "INSERT INTO bots (bot_id, user_id, account_id, name, strategy, params, instrument_id, "
            "timeframe, venue, sizing, capital, state, error, warm_from, last_bar_time, bars_seen, "
            "position, cash, created_at, updated_at, approval, approval_expiry_s) VALUES "
            "($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10::jsonb, $11, $12, $13, $14, $15, "
            "$16, $17, $18, $19, $20, $21, $22)",
            bot.bot_id,
            bot.user_id,
            bot.account_id,
            bot.name,
            bot.strategy,
            json.dumps(bot.params),
            bot.instrument_id,
            bot.timeframe,
            bot.venue,
            bot.sizing.model_dump_json(),
            bot.capital,
            bot.state.value,
            bot.error,
            bot.warm_from,
            bot.last_bar_time,
            bot.bars_seen,
            bot.position,
            bot.cash,
            bot.created_at,
            bot.updated_at,
            bot.approval,
            bot.approval_expiry_s,
        )

    async def get(
        self, bot_id: BotId, *, conn: asyncpg.Connection | None = None, lock: bool = False
    ) -> BotRecord | None:
        query = (
            "SELECT * FROM bots WHERE bot_id = $1 FOR UPDATE"
            if lock
            else "SELECT * FROM bots WHERE bot_id = $1"
        )
        row = await (conn or self.db.pool).fetchrow(query, bot_id)
        return _bot(row) if row is not None else None

    async def page(
        self, user_id: UserId, after: tuple[datetime, BotId] | None, limit: int
    ) -> list[BotRecord]:
        if after is None:
            rows = await self.db.pool.fetch(
                "SELECT * FROM bots WHERE user_id = $1 ORDER BY created_at, bot_id LIMIT $2",
                user_id,
                limit,
            )
        else:
            rows = await self.db.pool.fetch(
                "SELECT * FROM bots WHERE user_id = $1 "
                "AND (created_at, bot_id) > ($2, $3) ORDER BY created_at, bot_id LIMIT $4",
                user_id,
                after[0],
                after[1],
                limit,
            )
        return [_bot(row) for row in rows]

    async def running_pairs(
        self, pairs: list[tuple[InstrumentId, str]]
    ) -> set[tuple[InstrumentId, str]]:
        """Which of these (instrument, timeframe) pairs have a running bot: the cheap check, in
        one statement and outside a transaction, before a batch of bars opens one."""
        rows = await self.db.pool.fetch(
            "SELECT DISTINCT b.instrument_id, b.timeframe FROM bots b "
            "JOIN unnest($1::text[], $2::text[]) AS p(instrument_id, timeframe) "
            "USING (instrument_id, timeframe) WHERE b.state = 'RUNNING'",
            [instrument for instrument, _ in pairs],
            [timeframe for _, timeframe in pairs],
        )
        return {(row["instrument_id"], row["timeframe"]) for row in rows}

    async def running_for_pairs(
        self, conn: asyncpg.Connection, pairs: list[tuple[InstrumentId, str]]
    ) -> list[BotRecord]:
        """The running bots of these (instrument, timeframe) pairs, with their open runs, locked
        for this transaction (in id order, so that two transactions lock them in the same
        order)."""
        rows = await conn.fetch(
            "SELECT b.*, (SELECT run_id FROM bot_runs r WHERE r.bot_id = b.bot_id AND "
            "r.ended_at IS NULL ORDER BY started_at DESC LIMIT 1) AS run_id FROM bots b "
            "JOIN unnest($1::text[], $2::text[]) AS p(instrument_id, timeframe) "
            "USING (instrument_id, timeframe) WHERE b.state = 'RUNNING' "
            "ORDER BY b.bot_id FOR UPDATE OF b",
            [instrument for instrument, _ in pairs],
            [timeframe for _, timeframe in pairs],
        )
        return [_bot(row) for row in rows]

    async def all_running(self) -> list[BotRecord]:
        rows = await self.db.pool.fetch(
            "SELECT * FROM bots WHERE state = 'RUNNING' ORDER BY bot_id"
        )
        return [_bot(row) for row in rows]

    async def set_state(
        self, conn: asyncpg.Connection, bot_id: BotId, state: BotState, error: str | None = None
    ) -> None:
        await conn.execute(
            "UPDATE bots SET state = $2, error = $3, updated_at = now() WHERE bot_id = $1",
            bot_id,
            state.value,
            error,
        )

    async def set_history(
        self,
        conn: asyncpg.Connection,
        bot_id: BotId,
        *,
        warm_from: datetime | None,
        last_bar_time: datetime | None,
        bars: int,
    ) -> None:
        """Record the bars the bot's strategy has seen (`bars` more of them)."""
        await conn.execute(
            "UPDATE bots SET warm_from = COALESCE(warm_from, $2), last_bar_time = $3, "
            "bars_seen = bars_seen + $4, updated_at = now() WHERE bot_id = $1",
            bot_id,
            warm_from,
            last_bar_time,
            bars,
        )

    async def bars_seen(
        self, conn: asyncpg.Connection, seen: list[tuple[BotId, UUID, datetime, int, int]]
    ) -> None:
        """Live bars handled: per (bot, run, last bar time, bars, orders), the bot's history and
        its run's counters, for every bot of a batch in one statement."""
        await conn.execute(
            "WITH p AS (SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[], "
            "$4::int[], $5::int[]) AS p(bot_id, run_id, last_bar_time, bars, orders)), "
            "seen AS (UPDATE bots b SET last_bar_time = p.last_bar_time, "
            "bars_seen = b.bars_seen + p.bars, updated_at = now() FROM p WHERE b.bot_id = p.bot_id) "
            "UPDATE bot_runs r SET bars = r.bars + p.bars, orders = r.orders + p.orders "
            "FROM p WHERE r.run_id = p.run_id",
            [row[0] for row in seen],
            [row[1] for row in seen],
            [row[2] for row in seen],
            [row[3] for row in seen],
            [row[4] for row in seen],
        )

    # ---- runs ------------------------------------------------------------------------------

    async def open_run(self, conn: asyncpg.Connection, bot_id: BotId, run_id: UUID) -> None:
        await conn.execute("INSERT INTO bot_runs (run_id, bot_id) VALUES ($1, $2)", run_id, bot_id)

    async def current_run(self, conn: asyncpg.Connection, bot_id: BotId) -> UUID:
        run_id = await conn.fetchval(
            "SELECT run_id FROM bot_runs WHERE bot_id = $1 AND ended_at IS NULL "
            "ORDER BY started_at DESC LIMIT 1",
            bot_id,
        )
        if run_id is None:
            raise LookupError(f"bot {bot_id} has no open run")
        return run_id  # type: ignore[no-any-return]

    async def close_run(
        self, conn: asyncpg.Connection, bot_id: BotId, end_state: BotState, reason: str | None
    ) -> None:
        await conn.execute(
            "UPDATE bot_runs SET ended_at = now(), end_state = $2, reason = $3 "
            "WHERE bot_id = $1 AND ended_at IS NULL",
            bot_id,
            end_state.value,
            reason,
        )

    async def count_run(
        self,
        conn: asyncpg.Connection,
        run_id: UUID,
        *,
        bars: int = 0,
        orders: int = 0,
        fills: int = 0,
    ) -> None:
        await conn.execute(
            "UPDATE bot_runs SET bars = bars + $2, orders = orders + $3, fills = fills + $4 "
            "WHERE run_id = $1",
            run_id,
            bars,
            orders,
            fills,
        )

    async def runs(
        self, bot_id: BotId, limit: int | None = None, after: tuple[datetime, UUID] | None = None
    ) -> list[RunRecord]:
        """A bot's runs, oldest first, after the keyset position `after`."""
        moment, run_id = after if after is not None else (None, None)
        rows = await self.db.pool.fetch(
            "SELECT run_id, bot_id, started_at, ended_at, end_state, reason, bars, orders, fills "
            "FROM bot_runs WHERE bot_id = $1 AND ($3::timestamptz IS NULL "
            "OR (started_at, run_id) > ($3, $4::uuid)) ORDER BY started_at, run_id LIMIT $2",
            bot_id,
            limit,
            moment,
            run_id,
        )
        return [RunRecord(**dict(row)) for row in rows]

    # ---- orders and fills ------------------------------------------------------------------

    async def open_orders_of(
        self, conn: asyncpg.Connection, bot_ids: list[BotId]
    ) -> dict[BotId, list[OpenOrder]]:
        """open_orders of several bots in one statement, by bot (every bot has a list)."""
        rows = await conn.fetch(
            "SELECT bot_id, client_order_id, leg, side, quantity - filled AS remaining "
            "FROM bot_orders WHERE bot_id = ANY($1::uuid[]) AND open "
            "ORDER BY created_at, client_order_id",
            bot_ids,
        )
        found: dict[BotId, list[OpenOrder]] = {bot_id: [] for bot_id in bot_ids}
        for r in rows:
            found[r["bot_id"]].append(
                OpenOrder(r["client_order_id"], r["leg"], r["side"], r["remaining"])
            )
        return found

    async def open_orders(self, conn: asyncpg.Connection, bot_id: BotId) -> list[OpenOrder]:
        rows = await conn.fetch(
            "SELECT client_order_id, leg, side, quantity - filled AS remaining FROM bot_orders "
            "WHERE bot_id = $1 AND open ORDER BY created_at, client_order_id",
            bot_id,
        )
        return [OpenOrder(r["client_order_id"], r["leg"], r["side"], r["remaining"]) for r in rows]

    async def add_order(
        self, conn: asyncpg.Connection, bot_id: BotId, run_id: UUID, order: OrderRequest
    ) -> bool:
        """Store an order the bot asks for; False when that client order id exists already."""
        added = await conn.fetchval(
            # clock_timestamp(), not the transaction's now(): the orders of one batch of bars
            # share a transaction, and their creation order is the order they are listed in.
            "INSERT INTO bot_orders (client_order_id, bot_id, run_id, bar_time, leg, side, "
            "order_type, quantity, limit_price, stop_price, created_at) VALUES "
            "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, clock_timestamp()) "
            "ON CONFLICT (client_order_id) DO NOTHING RETURNING true",
            order.client_order_id,
            bot_id,
            run_id,
            order.bar_time,
            order.leg,
            order.side,
            order.kind.upper(),
            order.quantity,
            order.limit_price,
            order.stop_price,
        )
        return bool(added)

    async def order_owner(
        self, client_order_id: ClientOrderId, conn: asyncpg.Connection | None = None
    ) -> BotId | None:
        bot_id = await (conn or self.db.pool).fetchval(
            "SELECT bot_id FROM bot_orders WHERE client_order_id = $1", client_order_id
        )
        return None if bot_id is None else BotId(bot_id)

    async def set_order_status(
        self,
        conn: asyncpg.Connection,
        client_order_id: ClientOrderId,
        status: str,
        reason: str | None = None,
    ) -> None:
        await conn.execute(
            "UPDATE bot_orders SET status = $2, open = $3, reason = COALESCE($4, reason), "
            "updated_at = now() WHERE client_order_id = $1",
            client_order_id,
            status,
            status not in TERMINAL,
            reason,
        )

    async def add_fill(
        self,
        conn: asyncpg.Connection,
        *,
        bot_id: BotId,
        client_order_id: ClientOrderId,
        trade_id: str,
        side: str,
        quantity: Decimal,
        price: Decimal,
        fee: Decimal,
        ts: datetime,
        leaves: Decimal,
    ) -> bool:
        """Apply a fill to the order, and to the bot's position and cash, once per trade id."""
        added = await conn.fetchval(
            "INSERT INTO bot_fills (client_order_id, trade_id, side, quantity, price, fee, ts) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING true",
            client_order_id,
            trade_id,
            side,
            quantity,
            price,
            fee,
            ts,
        )
        if not added:
            return False
        status = "FILLED" if leaves == 0 else "PARTIALLY_FILLED"
        await conn.execute(
            "UPDATE bot_orders SET filled = filled + $2, status = $3, open = $4, "
            "updated_at = now() WHERE client_order_id = $1",
            client_order_id,
            quantity,
            status,
            leaves != 0,
        )
        signed = quantity if side == "buy" else -quantity
        await conn.execute(
            "UPDATE bots SET position = position + $2, cash = cash - $3, updated_at = now() "
            "WHERE bot_id = $1",
            bot_id,
            signed,
            signed * price + fee,
        )
        return True

    async def orders(
        self, bot_id: BotId, limit: int, after: tuple[datetime, str] | None = None
    ) -> list[OrderRecord]:
        """A bot's orders, oldest first, after the keyset position `after`."""
        moment, client_id = after if after is not None else (None, None)
        rows = await self.db.pool.fetch(
            "SELECT client_order_id, bot_id, run_id, bar_time, leg, side, order_type, quantity, "
            "limit_price, stop_price, status, filled, open, reason, created_at, updated_at "
            "FROM bot_orders WHERE bot_id = $1 AND ($3::timestamptz IS NULL "
            "OR (created_at, client_order_id) > ($3, $4::text)) "
            "ORDER BY created_at, client_order_id LIMIT $2",
            bot_id,
            limit,
            moment,
            client_id,
        )
        return [OrderRecord(**dict(row)) for row in rows]
