"""Where execution keeps accounts, orders, fills, positions and the market's time: its own schema.

Methods that change state take the caller's connection, so that the change, the inbox entry of
the event that caused it and the events it causes (outbox) commit together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg
from opentelemetry import propagate
from pydantic import TypeAdapter
from trademesh_bus.outbox import Outbox
from trademesh_db import Database
from trademesh_events.ids import AccountId, ClientOrderId, InstrumentId, UserId
from trademesh_events.marketdata import Bar
from trademesh_events.orders import (
    OrderDenied,
    OrderFilled,
    OrderStatus,
    OrderType,
    SubmitOrder,
    TimeInForce,
)

from trademesh_execution.engine import OrderView, Position
from trademesh_execution.order_log import log_order_events

ZERO = Decimal(0)
PAPER_BARS_KEPT = 5000  # per instrument and timeframe: 20 years of days, 3.5 days of minutes
PRUNE_EVERY = 200
OPEN_STATES = ("PENDING", "SUBMITTED", "ACCEPTED", "PARTIALLY_FILLED", "UNKNOWN")


@dataclass(frozen=True)
class AccountRow:
    account_id: AccountId
    user_id: UserId
    name: str
    venue: str
    cash: Decimal
    created_at: datetime
    credentials: str | None = None  # a sealed record (JSON), never the plaintext
    api_key_masked: str | None = None
    margin_mode: str = "cash"
    max_leverage: Decimal = Decimal(1)
    allow_short: bool = False
    currency: str | None = None  # an exchange account's settlement currency; None: paper

    def __repr__(self) -> str:
        return (
            f"AccountRow({self.account_id}, {self.venue!r}, sealed={self.credentials is not None})"
        )


_ACCOUNT_FIELDS = (
    "account_id",
    "user_id",
    "name",
    "venue",
    "cash",
    "created_at",
    "credentials",
    "api_key_masked",
)
_ACCOUNT = (
    "SELECT account_id, user_id, name, venue, cash, created_at, credentials::text AS credentials, "
    "api_key_masked, margin_mode, max_leverage, allow_short, currency FROM accounts"
)


_BARS = TypeAdapter(list[Bar])


@dataclass(frozen=True)
class Placed:
    """An approved order that place_pending stored PENDING, with what placing it takes: its
    venue (`unknown` for an account that does not exist), its instrument's market clock, the
    kept final bars opening at or after its decision when it came late (the clock is past the
    decision), in the order they came (by close time, the shorter bar first): None when it did
    not come late or the kept bars do not reach back to the decision (pruned, or none yet); and
    its account's position in the instrument."""

    client_order_id: ClientOrderId
    venue: str
    clock: datetime | None
    late: list[Bar] | None
    position: Position
    # The account's cash and buying-power terms (None: no such account).
    cash: Decimal | None = None
    terms: tuple[str, Decimal, bool] | None = None


@dataclass
class OrderWrites:
    """What placing a batch of orders changes, written by ExecutionStore.write in one statement:
    orders' new states, their history (in order), fills, positions and cash moves."""

    orders: dict[ClientOrderId, tuple[OrderView, str | None]] = field(default_factory=dict)
    notes: list[tuple[ClientOrderId, OrderStatus, str | None]] = field(default_factory=list)
    fills: list[OrderFilled] = field(default_factory=list)
    positions: dict[tuple[AccountId, InstrumentId], Position] = field(default_factory=dict)
    cash: dict[AccountId, Decimal] = field(default_factory=dict)

    def save(self, order: OrderView, previous: OrderStatus, reason: str | None = None) -> None:
        """The order's new state, noted in its history as save_order notes it."""
        self.orders[order.client_order_id] = (order, reason or self._reason(order))
        if previous is not order.status or order.status is OrderStatus.PARTIALLY_FILLED:
            self.notes.append((order.client_order_id, order.status, reason))

    def _reason(self, order: OrderView) -> str | None:
        kept = self.orders.get(order.client_order_id)
        return kept[1] if kept is not None else None

    def book(self, fill: OrderFilled, position: Position) -> None:
        """A fill, the position after it, and the cash it moves."""
        self.fills.append(fill)
        self.positions[(position.account_id, position.instrument_id)] = position
        signed = fill.last_qty if fill.side == "buy" else -fill.last_qty
        moved = -(signed * fill.last_price) - fill.fee
        self.cash[fill.account_id] = self.cash.get(fill.account_id, ZERO) + moved

    def __bool__(self) -> bool:
        return bool(self.orders or self.notes)


def order_view(row: asyncpg.Record) -> OrderView:
    """An order row as the engine's OrderView."""
    return OrderView(
        client_order_id=row["client_order_id"],
        account_id=AccountId(row["account_id"]),
        user_id=UserId(row["user_id"]),
        instrument_id=row["instrument_id"],
        side=row["side"],
        order_type=OrderType(row["order_type"]),
        quantity=row["quantity"],
        limit_price=row["limit_price"],
        stop_price=row["stop_price"],
        status=OrderStatus(row["status"]),
        created_at=row["created_at"],
        filled=row["filled"],
        avg_price=row["avg_price"],
        fees=row["fees"],
        venue_order_id=row["venue_order_id"],
        time_in_force=TimeInForce(row["time_in_force"]),
        fills=row["fills"],
        triggered=row["triggered"],
        accepted_at=row["accepted_at"],
        active_from=row["active_from"],
    )


def _position(row: asyncpg.Record) -> Position:
    return Position(
        account_id=AccountId(row["account_id"]),
        instrument_id=row["instrument_id"],
        quantity=row["position"],
        avg_price=row["avg_price"],
        realised_pnl=row["realised"],
        fees=row["fees"],
    )


def current_traceparent() -> str | None:
    """The W3C traceparent of the current span, if any."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


async def emit_order_event(
    store: ExecutionStore, outbox: Outbox, conn: asyncpg.Connection, event: Any
) -> None:
    """An order's event, into the outbox under the order's own trace: a fill that a bar or a
    venue's report causes minutes later still belongs to the order's path (gateway or bot,
    risk, execution), and shows there in traces and in the audit log."""
    traceparent = await store.order_traceparent(conn, event.client_order_id)
    await outbox.add(conn, event, traceparent=traceparent)
    log_order_events([event], traceparent)


class ExecutionStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._kept = 0  # bars this process added to paper_bars (pruning is every PRUNE_EVERY)

    # ---- accounts ------------------------------------------------------------------------------

    async def add_account(
        self, account: AccountRow, conn: asyncpg.Connection | None = None
    ) -> None:
        await (conn or self.db.pool).execute(
            "INSERT INTO accounts (account_id, user_id, name, venue, cash, created_at, "
            "credentials, api_key_masked, margin_mode, max_leverage, allow_short, currency) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10, $11, $12)",
            account.account_id,
            account.user_id,
            account.name,
            account.venue,
            account.cash,
            account.created_at,
            account.credentials,
            account.api_key_masked,
            account.margin_mode,
            account.max_leverage,
            account.allow_short,
            account.currency,
        )

    async def delete_account(self, account_id: AccountId) -> bool:
        """Delete an account without open orders; False when it has some."""
        async with self.db.transaction() as conn:
            busy = await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM orders WHERE account_id = $1 "
                "AND status = ANY($2::text[]))",
                account_id,
                list(OPEN_STATES),
            )
            if busy:
                return False
            await conn.execute("DELETE FROM accounts WHERE account_id = $1", account_id)
            return True

    async def sealed_accounts(self) -> list[AccountRow]:
        rows = await self.db.pool.fetch(_ACCOUNT + " WHERE credentials IS NOT NULL")
        return [AccountRow(**dict(row)) for row in rows]

    async def replace_credentials(self, account_id: AccountId, record: str) -> None:
        await self.db.pool.execute(
            "UPDATE accounts SET credentials = $2::jsonb WHERE account_id = $1", account_id, record
        )

    async def account(
        self, account_id: AccountId, conn: asyncpg.Connection | None = None
    ) -> AccountRow | None:
        row = await (conn or self.db.pool).fetchrow(_ACCOUNT + " WHERE account_id = $1", account_id)
        return AccountRow(**dict(row)) if row is not None else None

    async def accounts(self, user_id: UserId) -> list[AccountRow]:
        rows = await self.db.pool.fetch(
            _ACCOUNT + " WHERE user_id = $1 ORDER BY created_at, account_id", user_id
        )
        return [AccountRow(**dict(row)) for row in rows]

    async def accounts_page(
        self, user_id: UserId, limit: int, after: tuple[datetime, AccountId] | None
    ) -> list[AccountRow]:
        """A user's accounts, oldest first, after the keyset position `after`."""
        moment, account_id = after if after is not None else (None, None)
        rows = await self.db.pool.fetch(
            _ACCOUNT + " WHERE user_id = $1 AND ($3::timestamptz IS NULL "
            "OR (created_at, account_id) > ($3, $4::uuid)) "
            "ORDER BY created_at, account_id LIMIT $2",
            user_id,
            limit,
            moment,
            account_id,
        )
        return [AccountRow(**dict(row)) for row in rows]

    async def set_terms(
        self,
        conn: asyncpg.Connection,
        account_id: AccountId,
        margin_mode: str,
        max_leverage: Decimal,
        allow_short: bool,
    ) -> AccountRow | None:
        """Change the account's buying-power terms; the account as it is now (its cash read
        under the row's lock, so no fill's cash moves in between), None if there is none."""
        row = await conn.fetchrow(
            "UPDATE accounts SET margin_mode = $2, max_leverage = $3, allow_short = $4 "
            "WHERE account_id = $1 RETURNING account_id, user_id, name, venue, cash, created_at, "
            "credentials::text AS credentials, api_key_masked, margin_mode, max_leverage, "
            "allow_short, currency",
            account_id,
            margin_mode,
            max_leverage,
            allow_short,
        )
        return AccountRow(**dict(row)) if row is not None else None

    async def funds(
        self, conn: asyncpg.Connection, account_id: AccountId
    ) -> tuple[AccountRow, dict[InstrumentId, Decimal], dict[InstrumentId, Decimal]] | None:
        """The account (cash and buying-power terms), its positions and their instruments' last
        prices, in one statement; None for an unknown account."""
        row = await conn.fetchrow(
            "SELECT a.margin_mode, a.max_leverage, a.allow_short, a.cash, a.venue, a.name, "
            "a.user_id, a.created_at, "
            "ARRAY(SELECT ROW(p.instrument_id, p.position, m.last_price) FROM positions p "
            "LEFT JOIN market m ON m.instrument_id = p.instrument_id "
            "WHERE p.account_id = a.account_id AND p.position <> 0) AS held "
            "FROM accounts a WHERE a.account_id = $1",
            account_id,
        )
        if row is None:
            return None
        account = AccountRow(
            account_id,
            row["user_id"],
            row["name"],
            row["venue"],
            row["cash"],
            row["created_at"],
            margin_mode=row["margin_mode"],
            max_leverage=row["max_leverage"],
            allow_short=row["allow_short"],
        )
        positions = {i: q for i, q, _ in row["held"]}
        prices = {i: price for i, _, price in row["held"] if price is not None}
        return account, positions, prices

    async def add_cash(
        self, conn: asyncpg.Connection, account_id: AccountId, amount: Decimal
    ) -> None:
        await conn.execute(
            "UPDATE accounts SET cash = cash + $2 WHERE account_id = $1", account_id, amount
        )

    async def set_cash(
        self, conn: asyncpg.Connection, account_id: AccountId, amount: Decimal
    ) -> None:
        """An exchange account's cash as its venue reported it (its settlement currency's
        total), in place of what its fills here added up to."""
        await conn.execute(
            "UPDATE accounts SET cash = $2 WHERE account_id = $1", account_id, amount
        )

    # ---- orders ----------------------------------------------------------------------------------

    async def order_traceparent(
        self, conn: asyncpg.Connection, client_order_id: ClientOrderId
    ) -> str | None:
        """The trace the order was placed under (None for an order placed before it was kept)."""
        value = await conn.fetchval(
            "SELECT traceparent FROM orders WHERE client_order_id = $1", client_order_id
        )
        return str(value) if value else None

    async def insert_pending(self, conn: asyncpg.Connection, order: OrderView, venue: str) -> bool:
        """The order as PENDING, before anything is sent; False when its client id exists."""
        added = await conn.fetchval(
            "INSERT INTO orders (client_order_id, account_id, user_id, instrument_id, side, "
            "order_type, quantity, limit_price, stop_price, time_in_force, venue, status, "
            "created_at, traceparent) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) "
            "ON CONFLICT (client_order_id) DO NOTHING RETURNING true",
            order.client_order_id,
            order.account_id,
            order.user_id,
            order.instrument_id,
            order.side,
            order.order_type.value,
            order.quantity,
            order.limit_price,
            order.stop_price,
            order.time_in_force.value,
            venue,
            order.status.value,
            order.created_at,
            current_traceparent(),
        )
        if added:
            await self.note(conn, order.client_order_id, order.status, None)
        return bool(added)

    async def place_pending(
        self, conn: asyncpg.Connection, orders: list[tuple[SubmitOrder, str | None]]
    ) -> dict[ClientOrderId, Placed]:
        """insert_pending of approved orders (each with the traceparent it is placed under) and
        the reads that placing them takes, in one statement: each order stored PENDING on its
        account's venue, and what Placed says of it; by client order id, only the orders this
        stored (an id that exists is left as it is, unless it is a recorded intent not yet
        decided, INITIALIZED: that row becomes the PENDING order). The caller holds the paper market locks
        of the orders' instruments (lock_markets): the clocks and bars read are current."""
        if not orders:
            return {}
        rows = await conn.fetch(
            _PLACE_PENDING,
            [o.client_order_id for o, _ in orders],
            [o.account_id for o, _ in orders],
            [o.user_id for o, _ in orders],
            [o.instrument_id for o, _ in orders],
            [o.side for o, _ in orders],
            [o.order_type.value for o, _ in orders],
            [o.quantity for o, _ in orders],
            [o.limit_price for o, _ in orders],
            [o.stop_price for o, _ in orders],
            [o.time_in_force.value for o, _ in orders],
            [o.created_at for o, _ in orders],
            [traceparent for _, traceparent in orders],
            [o.decided_at for o, _ in orders],
            [o.reduce_only for o, _ in orders],
        )
        return {
            row["client_order_id"]: Placed(
                client_order_id=row["client_order_id"],
                venue=row["venue"],
                clock=row["clock"],
                late=None if row["late"] is None else _BARS.validate_json(row["late"]),
                position=Position(
                    AccountId(row["account_id"]),
                    row["instrument_id"],
                    quantity=row["position"] if row["position"] is not None else ZERO,
                    avg_price=row["avg_price"] if row["avg_price"] is not None else ZERO,
                    realised_pnl=row["realised"] if row["realised"] is not None else ZERO,
                    fees=row["fees"] if row["fees"] is not None else ZERO,
                ),
                cash=row["cash"],
                terms=None
                if row["margin_mode"] is None
                else (row["margin_mode"], row["max_leverage"], row["allow_short"]),
            )
            for row in rows
        }

    async def record_intent(
        self, conn: asyncpg.Connection, intent: SubmitOrder, venue: str
    ) -> bool:
        """A manual order's intent as INITIALIZED (the order's story: risk has not decided it),
        with its first history entry; False when its client order id exists. Two transactions
        recording one id: the second waits for the first and then records nothing."""
        added = await conn.fetchval(
            _RECORD_INTENT,
            intent.client_order_id,
            intent.account_id,
            intent.user_id,
            intent.instrument_id,
            intent.side,
            intent.order_type.value,
            intent.quantity,
            intent.limit_price,
            intent.stop_price,
            intent.time_in_force.value,
            intent.reduce_only,
            venue,
            intent.created_at,
            current_traceparent(),
        )
        return bool(added)

    async def record_denials(self, conn: asyncpg.Connection, denials: list[OrderDenied]) -> int:
        """Risk's denials, each carrying its intent, in one statement: a recorded intent
        (INITIALIZED) becomes DENIED, an order not kept yet (a bot's) is kept DENIED with its
        INITIALIZED entry at the intent's time; an order in any other state is left as it is.
        The reason code and text go on the order and in its history. One denial per client
        order id (the caller's). How many orders this changed."""
        if not denials:
            return 0
        given = [(d, d.order) for d in denials if d.order is not None]
        return int(
            await conn.fetchval(
                _RECORD_DENIALS,
                [d.client_order_id for d, _ in given],
                [d.account_id for d, _ in given],
                [d.user_id for d, _ in given],
                [d.instrument_id for d, _ in given],
                [o.side for _, o in given],
                [o.order_type.value for _, o in given],
                [o.quantity for _, o in given],
                [o.limit_price for _, o in given],
                [o.stop_price for _, o in given],
                [o.time_in_force.value for _, o in given],
                [o.reduce_only for _, o in given],
                [o.created_at for _, o in given],
                [d.reason.value for d, _ in given],
                [d.message for d, _ in given],
                [d.denied_at for d, _ in given],
            )
        )

    async def write(self, conn: asyncpg.Connection, writes: OrderWrites) -> None:
        """Orders' new states with their history, fills, positions and cash, in one statement
        (save_order, add_fill, save_position and add_cash of many). The fills are new: they
        are of orders this transaction stored (their trade ids name them)."""
        if not writes:
            return
        orders = list(writes.orders.values())
        await conn.execute(
            _WRITE,
            [o.client_order_id for o, _ in orders],
            [o.status.value for o, _ in orders],
            [o.filled for o, _ in orders],
            [o.avg_price for o, _ in orders],
            [o.fees for o, _ in orders],
            [o.fills for o, _ in orders],
            [o.triggered for o, _ in orders],
            [o.venue_order_id for o, _ in orders],
            [o.accepted_at for o, _ in orders],
            [o.active_from for o, _ in orders],
            [reason for _, reason in orders],
            [n[0] for n in writes.notes],
            [n[1].value for n in writes.notes],
            [n[2] for n in writes.notes],
            [f.trade_id for f in writes.fills],
            [f.client_order_id for f in writes.fills],
            [f.account_id for f in writes.fills],
            [f.instrument_id for f in writes.fills],
            [f.side for f in writes.fills],
            [f.last_qty for f in writes.fills],
            [f.last_price for f in writes.fills],
            [f.fee for f in writes.fills],
            [f.fee_currency for f in writes.fills],
            [f.liquidity for f in writes.fills],
            [f.ts for f in writes.fills],
            [p.account_id for p in writes.positions.values()],
            [p.instrument_id for p in writes.positions.values()],
            [p.quantity for p in writes.positions.values()],
            [p.avg_price for p in writes.positions.values()],
            [p.realised_pnl for p in writes.positions.values()],
            [p.fees for p in writes.positions.values()],
            list(writes.cash),
            list(writes.cash.values()),
        )

    async def order(
        self,
        client_order_id: ClientOrderId,
        conn: asyncpg.Connection | None = None,
        *,
        lock: bool = False,
    ) -> tuple[OrderView, asyncpg.Record] | None:
        """The order and its row (venue, reason, timestamps), locked when asked."""
        query = (
            "SELECT * FROM orders WHERE client_order_id = $1 FOR UPDATE"
            if lock
            else "SELECT * FROM orders WHERE client_order_id = $1"
        )
        row = await (conn or self.db.pool).fetchrow(query, client_order_id)
        return (order_view(row), row) if row is not None else None

    async def open_orders(self, conn: asyncpg.Connection, account_id: AccountId) -> list[OrderView]:
        rows = await conn.fetch(
            "SELECT * FROM orders WHERE account_id = $1 AND status = ANY($2::text[]) "
            "ORDER BY created_at, client_order_id FOR UPDATE",
            account_id,
            list(OPEN_STATES),
        )
        return [order_view(row) for row in rows]

    async def working_paper_orders_of(
        self, conn: asyncpg.Connection, instrument_ids: list[InstrumentId]
    ) -> dict[InstrumentId, list[OrderView]]:
        """The working paper orders of the instruments (locked, in the order a bar tries them),
        by instrument, in one statement."""
        rows = await conn.fetch(
            "SELECT * FROM orders WHERE venue = 'paper' AND instrument_id = ANY($1::text[]) "
            "AND status IN ('ACCEPTED', 'PARTIALLY_FILLED') "
            "ORDER BY instrument_id, created_at, client_order_id FOR UPDATE",
            instrument_ids,
        )
        found: dict[InstrumentId, list[OrderView]] = {}
        for row in rows:
            found.setdefault(row["instrument_id"], []).append(order_view(row))
        return found

    async def save_order(
        self, conn: asyncpg.Connection, order: OrderView, reason: str | None = None
    ) -> None:
        """Store the order's new state (the engine made it) and note the transition."""
        previous = await conn.fetchval(
            "UPDATE orders o SET status = $2, filled = $3, avg_price = $4, fees = $5, fills = $6, "
            "triggered = $7, venue_order_id = $8, accepted_at = $9, active_from = $10, "
            "reason = COALESCE($11, o.reason), updated_at = now() FROM orders old "
            "WHERE o.client_order_id = $1 AND old.client_order_id = o.client_order_id "
            "RETURNING old.status",
            order.client_order_id,
            order.status.value,
            order.filled,
            order.avg_price,
            order.fees,
            order.fills,
            order.triggered,
            order.venue_order_id,
            order.accepted_at,
            order.active_from,
            reason,
        )
        if previous != order.status.value or order.status is OrderStatus.PARTIALLY_FILLED:
            await self.note(conn, order.client_order_id, order.status, reason)

    async def request_cancel(
        self, conn: asyncpg.Connection, client_order_id: ClientOrderId, reason: str
    ) -> None:
        await conn.execute(
            "UPDATE orders SET cancel_requested = true, reason = $2, updated_at = now() - "
            "interval '1 hour' WHERE client_order_id = $1",
            client_order_id,
            reason[:500],
        )

    async def note(
        self,
        conn: asyncpg.Connection,
        client_order_id: ClientOrderId,
        status: OrderStatus,
        reason: str | None,
    ) -> None:
        await conn.execute(
            "INSERT INTO order_history (client_order_id, status, reason) VALUES ($1, $2, $3)",
            client_order_id,
            status.value,
            reason,
        )

    async def add_fill(self, conn: asyncpg.Connection, fill: OrderFilled) -> bool:
        """Keep a fill, once per trade id; False for one seen before."""
        added = await conn.fetchval(
            "INSERT INTO fills (trade_id, client_order_id, account_id, instrument_id, side, "
            "quantity, price, fee, fee_currency, liquidity, ts) VALUES "
            "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING RETURNING true",
            fill.trade_id,
            fill.client_order_id,
            fill.account_id,
            fill.instrument_id,
            fill.side,
            fill.last_qty,
            fill.last_price,
            fill.fee,
            fill.fee_currency,
            fill.liquidity,
            fill.ts,
        )
        return bool(added)

    async def history(self, client_order_id: ClientOrderId) -> list[asyncpg.Record]:
        return list(
            await self.db.pool.fetch(
                "SELECT status, reason, at FROM order_history WHERE client_order_id = $1 "
                "ORDER BY seq",
                client_order_id,
            )
        )

    async def orders_page(
        self,
        account_ids: list[AccountId],
        limit: int,
        status: str | None,
        after: tuple[datetime, str] | None = None,
    ) -> list[asyncpg.Record]:
        """Orders of the accounts, newest first, after the keyset position `after`."""
        moment, client_id = after if after is not None else (None, None)
        return list(
            await self.db.pool.fetch(
                "SELECT * FROM orders WHERE account_id = ANY($1::uuid[]) "
                "AND ($3::text IS NULL OR status = $3) "
                "AND ($4::timestamptz IS NULL OR created_at < $4 "
                "OR (created_at = $4 AND client_order_id > $5)) "
                "ORDER BY created_at DESC, client_order_id LIMIT $2",
                account_ids,
                limit,
                status,
                moment,
                client_id,
            )
        )

    async def fills_of(
        self, account_id: AccountId, limit: int, after: tuple[datetime, str] | None = None
    ) -> list[asyncpg.Record]:
        """The account's fills, newest first, after the keyset position `after`."""
        moment, trade_id = after if after is not None else (None, None)
        return list(
            await self.db.pool.fetch(
                "SELECT * FROM fills WHERE account_id = $1 "
                "AND ($3::timestamptz IS NULL OR ts < $3 OR (ts = $3 AND trade_id > $4)) "
                "ORDER BY ts DESC, trade_id LIMIT $2",
                account_id,
                limit,
                moment,
                trade_id,
            )
        )

    # ---- positions and the market --------------------------------------------------------------

    async def position(
        self, conn: asyncpg.Connection, account_id: AccountId, instrument_id: InstrumentId
    ) -> Position:
        row = await conn.fetchrow(
            "SELECT * FROM positions WHERE account_id = $1 AND instrument_id = $2 FOR UPDATE",
            account_id,
            instrument_id,
        )
        if row is None:
            return Position(account_id, instrument_id)
        return _position(row)

    async def save_position(self, conn: asyncpg.Connection, position: Position) -> None:
        await conn.execute(
            "INSERT INTO positions (account_id, instrument_id, position, avg_price, realised, fees) "
            "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (account_id, instrument_id) DO UPDATE "
            "SET position = EXCLUDED.position, avg_price = EXCLUDED.avg_price, "
            "realised = EXCLUDED.realised, fees = EXCLUDED.fees",
            position.account_id,
            position.instrument_id,
            position.quantity,
            position.avg_price,
            position.realised_pnl,
            position.fees,
        )

    async def positions(self, account_id: AccountId) -> list[Position]:
        rows = await self.db.pool.fetch(
            "SELECT * FROM positions WHERE account_id = $1 ORDER BY instrument_id", account_id
        )
        return [_position(row) for row in rows]

    async def lock_markets(
        self, conn: asyncpg.Connection, instrument_ids: list[InstrumentId]
    ) -> None:
        """One paper-venue change of an instrument at a time, across replicas: a bar's matching
        and an approval's acceptance (with its catch-up on stored bars) never interleave, so
        neither misses the other. The instruments' locks are taken in one statement, in a fixed
        order (so that two transactions never wait for each other's locks)."""
        if not instrument_ids:
            return
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('paper:' || i, 0)) "
            "FROM (SELECT DISTINCT i FROM unnest($1::text[]) AS i ORDER BY i) AS ids",
            instrument_ids,
        )

    async def keep_bars(self, conn: asyncpg.Connection, bars: list[Bar]) -> None:
        """Final bars, for approvals that come after them, in one statement; the oldest beyond
        PAPER_BARS_KEPT of an instrument and timeframe go now and then."""
        added = await conn.fetch(
            "INSERT INTO paper_bars (instrument_id, timeframe, open_time, close_time, bar) "
            "SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[], "
            "$5::json[]) ON CONFLICT DO NOTHING RETURNING instrument_id, timeframe",
            [b.instrument_id for b in bars],
            [b.timeframe for b in bars],
            [b.open_time for b in bars],
            [b.close_time for b in bars],
            [b.model_dump_json() for b in bars],
        )
        for row in added:
            self._kept += 1
            if self._kept % PRUNE_EVERY == 0:
                await self._prune_bars(conn, row["instrument_id"], row["timeframe"])

    async def mark_markets(
        self, conn: asyncpg.Connection, marks: list[tuple[InstrumentId, datetime, Decimal]]
    ) -> None:
        """The instruments' market clocks, each moved forward only (a redelivered old bar changes
        nothing), with the price of the bar that moved it; one statement, one mark each."""
        await conn.execute(
            "INSERT INTO market (instrument_id, clock, last_price) "
            "SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::numeric[]) "
            "ON CONFLICT (instrument_id) DO UPDATE SET clock = EXCLUDED.clock, "
            "last_price = EXCLUDED.last_price WHERE market.clock <= EXCLUDED.clock",
            [m[0] for m in marks],
            [m[1] for m in marks],
            [m[2] for m in marks],
        )

    async def _prune_bars(
        self, conn: asyncpg.Connection, instrument_id: InstrumentId, timeframe: str
    ) -> None:
        await conn.execute(
            "DELETE FROM paper_bars WHERE instrument_id = $1 AND timeframe = $2 AND "
            "open_time < (SELECT open_time FROM paper_bars WHERE instrument_id = $1 AND "
            "timeframe = $2 ORDER BY open_time DESC OFFSET $3 LIMIT 1)",
            instrument_id,
            timeframe,
            PAPER_BARS_KEPT,
        )

    async def equity_history(
        self,
        account_id: AccountId,
        since: datetime | None,
        limit: int,
        after: datetime | None = None,
    ) -> list[asyncpg.Record]:
        return list(
            await self.db.pool.fetch(
                "SELECT ts, cash, equity FROM equity_history WHERE account_id = $1 "
                "AND ($2::timestamptz IS NULL OR ts >= $2) "
                "AND ($4::timestamptz IS NULL OR ts > $4) ORDER BY ts LIMIT $3",
                account_id,
                since,
                limit,
                after,
            )
        )

    async def valuation(
        self, account_id: AccountId
    ) -> tuple[AccountRow | None, list[tuple[Position, Decimal | None]]]:
        """The account, its positions and each one's last price, read by one statement: cash
        and positions from the same moment (a fill booked between two reads would otherwise
        show its cash and not its position), in one round trip."""
        rows = await self.db.pool.fetch(
            "SELECT a.account_id, a.user_id, a.name, a.venue, a.cash, a.created_at, "
            "a.credentials::text AS credentials, a.api_key_masked, p.instrument_id, "
            "p.position, p.avg_price, p.realised, p.fees, m.last_price "
            "FROM accounts a LEFT JOIN positions p ON p.account_id = a.account_id "
            "LEFT JOIN market m ON m.instrument_id = p.instrument_id "
            "WHERE a.account_id = $1 ORDER BY p.instrument_id",
            account_id,
        )
        if not rows:
            return None, []
        first = rows[0]
        account = AccountRow(**{f: first[f] for f in _ACCOUNT_FIELDS})
        held = [(_position(row), row["last_price"]) for row in rows if row["instrument_id"]]
        return account, held

    async def last_prices(self, instruments: list[InstrumentId]) -> dict[InstrumentId, Decimal]:
        rows = await self.db.pool.fetch(
            "SELECT instrument_id, last_price FROM market WHERE instrument_id = ANY($1::text[])",
            instruments,
        )
        return {row["instrument_id"]: row["last_price"] for row in rows}


# place_pending: the approved orders inserted PENDING (ON CONFLICT: an id seen before places
# nothing), their PENDING noted, and for each one stored: its venue, its instrument's clock, the
# kept bars after its decision when it came late (see Placed), and the account's position in the
# instrument.
_PLACE_PENDING = """
WITH given AS (
    SELECT * FROM unnest($1::text[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[],
        $7::numeric[], $8::numeric[], $9::numeric[], $10::text[], $11::timestamptz[],
        $12::text[], $13::timestamptz[], $14::boolean[]) WITH ORDINALITY
        AS g(client_order_id, account_id, user_id, instrument_id, side, order_type, quantity,
             limit_price, stop_price, time_in_force, created_at, traceparent, decided_at,
             reduce_only, n)
), placed AS (
    INSERT INTO orders (client_order_id, account_id, user_id, instrument_id, side, order_type,
        quantity, limit_price, stop_price, time_in_force, venue, status, created_at, traceparent,
        reduce_only)
    SELECT g.client_order_id, g.account_id, g.user_id, g.instrument_id, g.side, g.order_type,
        g.quantity, g.limit_price, g.stop_price, g.time_in_force, COALESCE(a.venue, 'unknown'),
        'PENDING', g.created_at, g.traceparent, g.reduce_only
    FROM given g LEFT JOIN accounts a ON a.account_id = g.account_id
    ORDER BY g.n
    -- A recorded intent (INITIALIZED) becomes the approved order, keeping its creation time;
    -- any other known id places nothing.
    ON CONFLICT (client_order_id) DO UPDATE SET account_id = EXCLUDED.account_id,
        user_id = EXCLUDED.user_id, instrument_id = EXCLUDED.instrument_id,
        side = EXCLUDED.side, order_type = EXCLUDED.order_type, quantity = EXCLUDED.quantity,
        limit_price = EXCLUDED.limit_price, stop_price = EXCLUDED.stop_price,
        time_in_force = EXCLUDED.time_in_force, venue = EXCLUDED.venue, status = 'PENDING',
        traceparent = EXCLUDED.traceparent, reduce_only = EXCLUDED.reduce_only,
        updated_at = now()
    WHERE orders.status = 'INITIALIZED'
    RETURNING client_order_id, venue
), noted AS (
    INSERT INTO order_history (client_order_id, status)
    SELECT client_order_id, 'PENDING' FROM placed
)
SELECT p.client_order_id, p.venue, g.account_id, g.instrument_id, m.clock,
    CASE WHEN p.venue = 'paper' AND g.decided_at < m.clock AND (
        SELECT min(b.open_time) FROM paper_bars b WHERE b.instrument_id = g.instrument_id
    ) <= g.decided_at THEN COALESCE((
        SELECT json_agg(b.bar ORDER BY b.close_time, b.open_time DESC) FROM paper_bars b
        WHERE b.instrument_id = g.instrument_id AND b.open_time >= g.decided_at
    ), '[]') END AS late,
    s.position, s.avg_price, s.realised, s.fees,
    a.cash, a.margin_mode, a.max_leverage, a.allow_short
FROM placed p
JOIN given g ON g.client_order_id = p.client_order_id
LEFT JOIN accounts a ON a.account_id = g.account_id
LEFT JOIN market m ON m.instrument_id = g.instrument_id
LEFT JOIN positions s ON s.account_id = g.account_id AND s.instrument_id = g.instrument_id
ORDER BY g.n
"""

# record_intent: the intent INITIALIZED on its account's venue, unless its id exists, and its
# first history entry at its creation time.
_RECORD_INTENT = """
WITH recorded AS (
    INSERT INTO orders (client_order_id, account_id, user_id, instrument_id, side, order_type,
        quantity, limit_price, stop_price, time_in_force, reduce_only, venue, status, created_at,
        traceparent)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'INITIALIZED', $13, $14)
    ON CONFLICT (client_order_id) DO NOTHING
    RETURNING client_order_id, created_at
), noted AS (
    INSERT INTO order_history (client_order_id, status, at)
    SELECT client_order_id, 'INITIALIZED', created_at FROM recorded
)
SELECT EXISTS (SELECT 1 FROM recorded)
"""

# record_denials: each denial's order DENIED (a recorded intent updated, an unknown one inserted;
# `xmax = 0` tells an inserted row), its history (INITIALIZED at the intent's time for an order
# inserted here, then DENIED at the decision's), in the order given.
_RECORD_DENIALS = """
WITH given AS (
    SELECT * FROM unnest($1::text[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[],
        $7::numeric[], $8::numeric[], $9::numeric[], $10::text[], $11::boolean[],
        $12::timestamptz[], $13::text[], $14::text[], $15::timestamptz[]) WITH ORDINALITY
        AS g(client_order_id, account_id, user_id, instrument_id, side, order_type, quantity,
             limit_price, stop_price, time_in_force, reduce_only, created_at, code, message,
             denied_at, n)
), denied AS (
    INSERT INTO orders (client_order_id, account_id, user_id, instrument_id, side, order_type,
        quantity, limit_price, stop_price, time_in_force, reduce_only, venue, status, reason,
        reason_code, created_at)
    SELECT g.client_order_id, g.account_id, g.user_id, g.instrument_id, g.side, g.order_type,
        g.quantity, g.limit_price, g.stop_price, g.time_in_force, g.reduce_only,
        COALESCE(a.venue, 'unknown'), 'DENIED', g.message, g.code, g.created_at
    FROM given g LEFT JOIN accounts a ON a.account_id = g.account_id
    ORDER BY g.n
    ON CONFLICT (client_order_id) DO UPDATE SET status = 'DENIED', reason = EXCLUDED.reason,
        reason_code = EXCLUDED.reason_code, updated_at = now()
    WHERE orders.status = 'INITIALIZED'
    RETURNING client_order_id, xmax = 0 AS inserted
), noted AS (
    INSERT INTO order_history (client_order_id, status, reason, at)
    SELECT d.client_order_id, s.status, s.reason, s.at
    FROM denied d JOIN given g ON g.client_order_id = d.client_order_id
    CROSS JOIN LATERAL (VALUES (1, 'INITIALIZED', NULL, g.created_at),
                               (2, 'DENIED', g.message, g.denied_at)) AS s(k, status, reason, at)
    WHERE d.inserted OR s.k = 2
    ORDER BY g.n, s.k
)
SELECT count(*) FROM denied
"""

# write: save_order (one row per order: its state after the batch), the history in the order
# given, add_fill, save_position and add_cash (one row per account: the sum of its moves), of
# many. The parts touch different tables, so that one statement's snapshot serves them all.
_WRITE = """
WITH saved AS (
    UPDATE orders o SET status = u.status, filled = u.filled, avg_price = u.avg_price,
        fees = u.fees, fills = u.fills, triggered = u.triggered, venue_order_id = u.venue_order_id,
        accepted_at = u.accepted_at, active_from = u.active_from,
        reason = COALESCE(u.reason, o.reason), updated_at = now()
    FROM unnest($1::text[], $2::text[], $3::numeric[], $4::numeric[], $5::numeric[], $6::int[],
        $7::boolean[], $8::text[], $9::timestamptz[], $10::timestamptz[], $11::text[])
        AS u(client_order_id, status, filled, avg_price, fees, fills, triggered, venue_order_id,
             accepted_at, active_from, reason)
    WHERE o.client_order_id = u.client_order_id
), noted AS (
    INSERT INTO order_history (client_order_id, status, reason)
    SELECT h.client_order_id, h.status, h.reason
    FROM unnest($12::text[], $13::text[], $14::text[]) WITH ORDINALITY
        AS h(client_order_id, status, reason, n)
    ORDER BY h.n
), filled AS (
    INSERT INTO fills (trade_id, client_order_id, account_id, instrument_id, side, quantity,
        price, fee, fee_currency, liquidity, ts)
    SELECT * FROM unnest($15::text[], $16::text[], $17::uuid[], $18::text[], $19::text[],
        $20::numeric[], $21::numeric[], $22::numeric[], $23::text[], $24::text[],
        $25::timestamptz[])
), held AS (
    INSERT INTO positions (account_id, instrument_id, position, avg_price, realised, fees)
    SELECT * FROM unnest($26::uuid[], $27::text[], $28::numeric[], $29::numeric[],
        $30::numeric[], $31::numeric[])
    ON CONFLICT (account_id, instrument_id) DO UPDATE SET position = EXCLUDED.position,
        avg_price = EXCLUDED.avg_price, realised = EXCLUDED.realised, fees = EXCLUDED.fees
)
UPDATE accounts a SET cash = a.cash + c.amount
FROM unnest($32::uuid[], $33::numeric[]) AS c(account_id, amount)
WHERE a.account_id = c.account_id
"""
