"""The decider on the real Postgres, called as the intents' and order events' handlers call it:
what a batch costs in statements, a batch's intents of one account decided one after the other,
and limits and rules read from memory yet never stale, also when another replica changes them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest
from trademesh_bus import Delivery, Outbox
from trademesh_db import Database, migrate
from trademesh_events.envelope import new_envelope
from trademesh_events.marketdata import Bar
from trademesh_events.orders import (
    CancelOrder,
    OrderApproved,
    OrderCanceled,
    OrderDenied,
    OrderFilled,
    OrderType,
    SubmitOrder,
)
from trademesh_events.risk import TradingState, TradingStateChanged, TradingStateReason
from trademesh_events.topics import ORDERS_INTENTS, get_topic
from trademesh_testing.accounts import AccountBook
from trademesh_testing.http import app_client
from trademesh_testing.logs import LogLines
from trademesh_testing.samples import account_changed
from trademesh_testing.tokens import bearer
from trademesh_trading.backtest import Backtester
from trademesh_trading.buying_power import AccountTerms
from trademesh_trading.fills import FillModel
from trademesh_trading.strategy import Context, Strategy, StrategyConfig

from trademesh_risk.app import MIGRATIONS, create_app
from trademesh_risk.config import Settings
from trademesh_risk.engine import InstrumentRules, Limits
from trademesh_risk.store import RiskStore
from trademesh_risk.usecases.decider import Decider
from trademesh_risk.usecases.prices import PriceBook

pytestmark = pytest.mark.integration

TRADER_ID, ADMIN_ID = uuid4(), uuid4()
PRICE = Decimal(100)


async def a_replica(settings: Settings, database_url: str) -> tuple[Decider, Database]:
    """A risk process's decider (its own pool, its own memory) on the test's schema, with a
    price of 100 for every instrument these tests use. One connection, so that a count of
    statements never includes asyncpg's first-use type lookups of another connection."""
    schema = settings.database_schema
    await asyncio.to_thread(migrate, database_url, schema, [MIGRATIONS])
    db = Database(database_url, schema, min_size=1, max_size=1)
    await db.connect()
    store = RiskStore(db)
    decider = Decider(
        db=db,
        store=store,
        prices=PriceBook(store),
        outbox=Outbox("risk"),
        service="risk",
        clock=lambda: datetime.now(UTC),
        default_limits=settings.default_limits(),
        instrument_bounds=settings.instrument_bounds(),
    )
    return decider, db


@pytest.fixture
async def replica(settings: Settings, database_url: str) -> AsyncIterator[Decider]:
    decider, db = await a_replica(settings, database_url)
    yield decider
    await db.close()


def instrument(decider: Decider) -> str:
    name = f"test:D{uuid4().hex[:10].upper()}/USD"
    decider.prices.update(name, PRICE, datetime.now(UTC))
    return name


def intent(account: UUID, name: str, side: str, quantity: str) -> SubmitOrder:
    return SubmitOrder(
        account_id=account,
        user_id=TRADER_ID,
        client_order_id=f"d-{uuid4().hex[:20]}",
        instrument_id=name,
        side=side,
        order_type=OrderType.MARKET,
        quantity=Decimal(quantity),
        source="manual",
        created_at=datetime.now(UTC),
    )


def filled(order: SubmitOrder, fee: str) -> OrderFilled:
    return OrderFilled(
        account_id=order.account_id,
        user_id=TRADER_ID,
        client_order_id=order.client_order_id,
        instrument_id=order.instrument_id,
        ts=datetime.now(UTC),
        trade_id=f"tr-{uuid4().hex[:12]}",
        side=order.side,
        last_qty=order.quantity,
        last_price=PRICE,
        cum_qty=order.quantity,
        leaves_qty=Decimal(0),
        fee=Decimal(fee),
        fee_currency="USD",
        liquidity="taker",
    )


@asynccontextmanager
async def counted(db: Database) -> AsyncIterator[tuple[asyncpg.Connection, list[str]]]:
    """A transaction, and the statements sent on it (BEGIN and COMMIT aside), as asyncpg's
    query logger reports them."""
    seen: list[str] = []

    def log(query: Any) -> None:
        seen.append(query.query)

    async with db.transaction() as conn:
        conn.add_query_logger(log)
        try:
            yield conn, seen
        finally:
            await asyncio.sleep(0)  # the logger is called soon after each statement
            conn.remove_query_logger(log)


async def written(conn: asyncpg.Connection) -> list[Any]:
    """The events the transaction on `conn` wrote into the outbox so far, in order (only those:
    a test's second app shares the schema, and its consumers may write events too), marked
    published so that no later call counts them again."""
    rows = await conn.fetch(
        "SELECT seq, topic, payload FROM outbox WHERE published_at IS NULL "
        "AND xmin::text = (pg_current_xact_id()::text::numeric % 4294967296)::text ORDER BY seq"
    )
    await conn.execute(
        "UPDATE outbox SET published_at = now() WHERE seq = ANY($1::bigint[])",
        [row["seq"] for row in rows],
    )
    return [get_topic(row["topic"]).decode(row["payload"]) for row in rows]


async def decide(decider: Decider, *events: Any) -> list[Any]:
    """One batch, as the intents' handler hands it over; the events it wrote, in order."""
    async with decider.db.transaction() as conn:
        await decider.on_intents(conn, [(event, None) for event in events])
        return await written(conn)


def outcome(event: Any) -> str:
    if isinstance(event, OrderApproved):
        return "approved"
    assert isinstance(event, OrderDenied), event
    return event.reason.value


async def test_a_batch_of_intents_costs_the_same_few_statements_whatever_its_size(
    replica: Decider,
) -> None:
    """Before, every intent cost 13 statements (a batch of 20: 2 + 20 x 13 = 262); now a batch
    costs 5 (lock the accounts: 2; read their state: 1; write decisions and events: 1 each),
    plus 1 when the limits and rules of an account or instrument new to the memory are read."""
    name = instrument(replica)
    await decide(replica, intent(uuid4(), name, "buy", "1"))  # the connection's first use
    first, second = uuid4(), uuid4()
    orders = [intent((first, second)[n % 2], name, "buy", "1") for n in range(20)]
    loads = replica.config.loads
    async with counted(replica.db) as (conn, seen):
        await replica.on_intents(conn, [(order, None) for order in orders])
    assert len(seen) == 6, seen
    assert replica.config.loads == loads + 1  # the two new accounts' limits
    more = [intent((first, second)[n % 2], name, "sell", "1") for n in range(20)]
    async with counted(replica.db) as (conn, seen):
        await replica.on_intents(conn, [(order, None) for order in more])
    assert len(seen) == 5, seen  # the configuration from memory
    assert replica.config.loads == loads + 1
    decided = await replica.db.pool.fetch(
        "SELECT client_order_id FROM decisions WHERE approved AND account_id = ANY($1::uuid[]) "
        "ORDER BY decided_at, client_order_id",
        [first, second],
    )
    assert {r["client_order_id"] for r in decided} == {o.client_order_id for o in orders + more}


async def test_a_fill_costs_two_statements(replica: Decider) -> None:
    """Before, a fill cost 13 statements; now 2 (count it and read the position; save the
    position and the realised PnL), after the batch's lock (2)."""
    name, account = instrument(replica), uuid4()
    orders = [intent(account, name, "buy", "1") for _ in range(5)]
    fills = [filled(order, fee="0.5") for order in orders]
    await decide(replica, *orders)
    async with counted(replica.db) as (conn, seen):
        await replica.lock_accounts(conn, [account])
        for fill in fills:
            await replica.on_fill(conn, fill)
    assert len(seen) == 2 + 2 * len(orders), seen
    held = await replica.store.positions(account)
    assert [(p.position, p.avg_price, p.realised) for p in held] == [
        (Decimal(5), PRICE, Decimal("-2.5"))
    ]
    row = await replica.store.account(account)
    assert row is not None and row.realised_today == Decimal("-2.5")
    async with replica.db.transaction() as conn:
        assert await replica.store.pending(conn, account) == ({}, 0)
        # The same trade again (a redelivered fill under a new event id) changes nothing.
        await replica.on_fill(conn, fills[0])
    again = await replica.store.positions(account)
    assert [(p.position, p.realised) for p in again] == [(Decimal(5), Decimal("-2.5"))]


async def test_a_fill_past_the_daily_loss_limit_switches_the_account_to_reducing_once(
    replica: Decider,
) -> None:
    """The switch and its TradingStateChanged are written in the fill's transaction; a further
    loss, already REDUCING, writes no second one."""
    name, account = instrument(replica), uuid4()
    await replica.store.put_limits(account, Limits(daily_loss_limit=Decimal(1)))
    first, second = intent(account, name, "buy", "1"), intent(account, name, "buy", "1")
    await decide(replica, first, second)
    async with replica.db.transaction() as conn:
        await replica.lock_accounts(conn, [account])
        await replica.on_fill(conn, filled(first, fee="1"))  # realised: -1
        [changed] = await written(conn)
    row = await replica.store.account(account)
    assert row is not None and row.state.value == "REDUCING"
    assert isinstance(changed, TradingStateChanged)
    assert (changed.account_id, changed.old_state, changed.new_state, changed.reason) == (
        account,
        TradingState.ACTIVE,
        TradingState.REDUCING,
        TradingStateReason.DAILY_LOSS_LIMIT,
    )
    assert changed.changed_by is None
    assert changed.message == "realised PnL today -1 has reached the daily_loss_limit 1"
    async with replica.db.transaction() as conn:
        await replica.lock_accounts(conn, [account])
        await replica.on_fill(conn, filled(second, fee="1"))  # realised: -2
        assert await written(conn) == []


async def test_a_batch_that_finds_an_account_past_its_daily_loss_limit_switches_it_once(
    replica: Decider,
) -> None:
    """The limit lowered under the day's loss: the batch's first intent switches the account to
    REDUCING, with one TradingStateChanged among the batch's events; the next intents of the
    batch, and the next batch, find it REDUCING already."""
    name, account = instrument(replica), uuid4()
    order = intent(account, name, "buy", "2")
    await decide(replica, order)
    async with replica.db.transaction() as conn:
        await replica.lock_accounts(conn, [account])
        await replica.on_fill(conn, filled(order, fee="5"))  # realised: -5, no limit yet
    await replica.store.put_limits(account, Limits(daily_loss_limit=Decimal(5)))
    more = [intent(account, name, "buy", "1") for _ in range(3)]
    events = await decide(replica, *more, intent(account, name, "sell", "1"))
    changes = [e for e in events if isinstance(e, TradingStateChanged)]
    assert [(c.old_state, c.new_state, c.reason) for c in changes] == [
        (TradingState.ACTIVE, TradingState.REDUCING, TradingStateReason.DAILY_LOSS_LIMIT)
    ]
    decided = [outcome(e) for e in events if not isinstance(e, TradingStateChanged)]
    assert decided == ["DAILY_LOSS_LIMIT", "REDUCE_ONLY", "REDUCE_ONLY", "approved"]
    again = await decide(replica, intent(account, name, "buy", "1"))
    assert [outcome(e) for e in again] == ["REDUCE_ONLY"]


async def test_switches_and_states_change_the_trading_state_with_one_event_each(
    replica: Decider,
) -> None:
    """Each change by hand writes its TradingStateChanged in its own transaction, naming who
    acted; what changes nothing (the switch set again, a state set under the switch) writes
    none; the global kill switch writes one for the platform, not one per account."""
    account = uuid4()

    async def outbox_of(account_id: UUID | None) -> list[tuple[Any, ...]]:
        rows = await replica.db.pool.fetch(
            "SELECT payload FROM outbox WHERE topic = 'risk.events.v1' ORDER BY seq"
        )
        events = [get_topic("risk.events.v1").decode(row["payload"]) for row in rows]
        return [
            (e.old_state.value, e.new_state.value, e.reason.value, e.changed_by, e.message)
            for e in events
            if e.account_id == account_id
        ]

    await replica.set_kill_switch(account, True, "going home", by=TRADER_ID)
    await replica.set_kill_switch(account, True, "still going home", by=TRADER_ID)
    await replica.set_state(account, TradingState.REDUCING, "cool down", by=ADMIN_ID)
    await replica.set_kill_switch(account, False, None, by=TRADER_ID)
    await replica.set_state(account, TradingState.ACTIVE, None, by=ADMIN_ID)
    await replica.set_state(account, TradingState.HALTED, "audit", by=ADMIN_ID)
    assert await outbox_of(account) == [
        ("ACTIVE", "HALTED", "KILL_SWITCH_ENGAGED", TRADER_ID, "going home"),
        ("HALTED", "REDUCING", "KILL_SWITCH_RELEASED", TRADER_ID, None),
        ("REDUCING", "ACTIVE", "MANUAL", ADMIN_ID, None),
        ("ACTIVE", "HALTED", "MANUAL", ADMIN_ID, "audit"),
    ]
    before = await outbox_of(None)
    await replica.set_global_switch(True, "drill", by=ADMIN_ID)
    await replica.set_global_switch(True, "drill again", by=ADMIN_ID)
    await replica.set_global_switch(False, None, by=ADMIN_ID)
    assert (await outbox_of(None))[len(before) :] == [
        ("ACTIVE", "HALTED", "GLOBAL_KILL_SWITCH_ENGAGED", ADMIN_ID, "drill"),
        ("HALTED", "ACTIVE", "GLOBAL_KILL_SWITCH_RELEASED", ADMIN_ID, None),
    ]


def delivered(event: SubmitOrder, trace_id: str) -> tuple[SubmitOrder, Delivery]:
    """The intent as the batch handler gets it: with the trace it was published under."""
    return event, Delivery(
        envelope=new_envelope(event, "strategy"),
        topic=ORDERS_INTENTS,
        partition=0,
        offset=0,
        key=None,
        traceparent=f"00-{trace_id}-{uuid4().hex[:16]}-01",
    )


async def test_each_decision_is_logged_under_its_own_intents_trace(
    replica: Decider, log_lines: LogLines
) -> None:
    name, account = instrument(replica), uuid4()
    await replica.store.put_limits(account, Limits(max_order_quantity=Decimal(5)))
    bot_id = uuid4()
    fits = intent(account, name, "buy", "2").model_copy(update={"bot_id": bot_id, "source": "bot"})
    too_big = intent(account, name, "buy", "9")
    traces = uuid4().hex, uuid4().hex
    async with replica.db.transaction() as conn:
        await replica.on_intents(conn, [delivered(fits, traces[0]), delivered(too_big, traces[1])])

    [approved] = log_lines.named("order approved")
    assert approved == approved | {
        "level": "info",
        "client_order_id": fits.client_order_id,
        "account_id": str(account),
        "bot_id": str(bot_id),
        "source": "bot",
        "instrument_id": name,
        "side": "buy",
        "quantity": "2",
        "trace_id": traces[0],
    }
    [denied] = log_lines.named("order denied")
    assert denied == denied | {
        "level": "info",
        "client_order_id": too_big.client_order_id,
        "account_id": str(account),
        "bot_id": None,
        "source": "manual",
        "reason": "MAX_ORDER_QUANTITY",
        "trace_id": traces[1],
    }
    assert len(denied["span_id"]) == 16


async def test_two_intents_of_an_account_in_one_batch_where_only_one_fits(
    replica: Decider,
) -> None:
    """The first approved order counts as pending at once: the second, which would fit alone,
    is denied; a third that shrinks the worst case passes; a re-sent one is decided once."""
    name, account = instrument(replica), uuid4()
    await replica.store.put_limits(account, Limits(max_position=Decimal(10)))
    first, second = intent(account, name, "buy", "6"), intent(account, name, "buy", "6")
    selling = intent(account, name, "sell", "3")
    cancel = CancelOrder(
        account_id=account,
        user_id=TRADER_ID,
        client_order_id=first.client_order_id,
        created_at=datetime.now(UTC),
    )
    events = await decide(replica, first, second, first, cancel, selling)
    assert [outcome(e) if not isinstance(e, CancelOrder) else "cancel" for e in events] == [
        "approved",
        "MAX_POSITION",
        "cancel",
        "approved",
    ]
    assert events[0].order.client_order_id == first.client_order_id
    assert events[1].client_order_id == second.client_order_id
    async with replica.db.transaction() as conn:
        pending, open_orders = await replica.store.pending(conn, account)
    assert (pending, open_orders) == ({name: (Decimal(6), Decimal(3))}, 2)
    # In a batch of its own, the second intent meets the same pending exposure.
    alone = intent(account, name, "buy", "6")
    assert [outcome(e) for e in await decide(replica, alone)] == ["MAX_POSITION"]


async def test_limits_and_rules_changed_by_another_replica_apply_to_the_very_next_intent(
    replica: Decider, settings: Settings, account_book: AccountBook
) -> None:
    """This replica keeps the limits and rules in memory; another one (a whole app, sharing the
    database) changes them through its API, one layer after the other: every change decides the
    next intent here, and nothing changed is read again."""
    name, account = instrument(replica), account_book.open(TRADER_ID)
    trader, admin = bearer(TRADER_ID, "trader"), bearer(ADMIN_ID, "admin")

    async def next_intent(quantity: str) -> str:
        [event] = await decide(replica, intent(account, name, "buy", quantity))
        return outcome(event)

    assert await next_intent("5") == "approved"
    loads = replica.config.loads
    assert await next_intent("5") == "approved"
    assert replica.config.loads == loads  # unchanged: from memory

    other = create_app(settings, execution_transport=account_book.transport)
    async with app_client(other) as client:

        async def put(path: str, body: dict[str, Any], headers: dict[str, str]) -> None:
            response = await client.put(f"/api/v1{path}", json=body, headers=headers)
            assert response.status_code == 200, response.text

        await put(f"/accounts/{account}/limits", {"max_order_quantity": "4"}, trader)
        assert await next_intent("5") == "MAX_ORDER_QUANTITY"
        assert await next_intent("4") == "approved"

        await put("/instruments/rules", {"instrument_id": name, "max_quantity": "3"}, admin)
        assert await next_intent("3.5") == "INSTRUMENT_MAXIMUM"
        deleted = await client.delete(
            "/api/v1/instruments/rules", params={"instrument_id": name}, headers=admin
        )
        assert deleted.status_code == 204
        assert await next_intent("3.5") == "approved"

        await put(
            f"/accounts/{account}/instrument-limits",
            {"instrument_id": name, "limits": {"max_order_quantity": "2"}},
            trader,
        )
        assert await next_intent("3") == "MAX_ORDER_QUANTITY"

        await put(f"/accounts/{account}/limits", {"max_order_notional": "150"}, admin)
        assert await next_intent("1.6") == "MAX_ORDER_NOTIONAL"  # 160 at 100
        assert await next_intent("1.5") == "approved"

    # The venue sync writes rules too (no API call): the same holds.
    await RiskStore(replica.db).put_venue_rules({name: InstrumentRules(min_quantity=Decimal(1))})
    assert await next_intent("0.5") == "INSTRUMENT_MINIMUM"


async def test_a_second_replica_decides_with_what_the_first_approved(
    replica: Decider, settings: Settings, database_url: str
) -> None:
    """Two processes deciding one account's intents in turn (a rebalance moved its partition):
    each reads what the other approved, and the limits in force, at its batch's start."""
    other, db = await a_replica(settings, database_url)
    try:
        name, account = instrument(replica), uuid4()
        other.prices.update(name, PRICE, datetime.now(UTC))
        await replica.store.put_limits(account, Limits(max_position=Decimal(10)))
        assert [outcome(e) for e in await decide(replica, intent(account, name, "buy", "6"))] == [
            "approved"
        ]
        assert [outcome(e) for e in await decide(other, intent(account, name, "buy", "5"))] == [
            "MAX_POSITION"
        ]
        await other.store.put_limits(account, Limits(max_position=Decimal(11)))
        assert [outcome(e) for e in await decide(replica, intent(account, name, "buy", "5"))] == [
            "approved"
        ]
    finally:
        await db.close()


async def funded(decider: Decider, cash: str, fee_bps: str = "10") -> UUID:
    """A new account with this cash in risk (cash mode, fees of `fee_bps`)."""
    account = uuid4()
    terms = AccountTerms(fee_bps=Decimal(fee_bps))
    await decider.store.put_buying_power(account, terms, Decimal(cash), True)
    return account


def canceled(order: SubmitOrder) -> OrderCanceled:
    return OrderCanceled(
        account_id=order.account_id,
        user_id=TRADER_ID,
        client_order_id=order.client_order_id,
        instrument_id=order.instrument_id,
        ts=datetime.now(UTC),
        reason="cancel requested",
    )


async def test_an_order_over_the_cash_is_denied_insufficient_funds_with_the_figures(
    replica: Decider,
) -> None:
    """A market buy is valued at the last price plus the 1 % collar, fees at 10 bps: 10 at 101
    is 1010 + 1.01, over the 1000 of cash; 9 (909 + 0.909) fits."""
    name, account = instrument(replica), await funded(replica, "1000")
    over, within = intent(account, name, "buy", "10"), intent(account, name, "buy", "9")
    events = await decide(replica, over, within)
    assert [outcome(e) for e in events] == ["INSUFFICIENT_FUNDS", "approved"]
    assert "needs 1011.01" in events[0].message and "1000 is available" in events[0].message
    row = await replica.db.pool.fetchrow(
        "SELECT reserved FROM decisions WHERE client_order_id = $1", within.client_order_id
    )
    assert row is not None and row["reserved"] == Decimal("909.909")


async def test_a_reservation_released_on_cancel_and_on_fill_lets_the_next_order_fit(
    replica: Decider,
) -> None:
    name, account = instrument(replica), await funded(replica, "1000")
    first, second = intent(account, name, "buy", "5"), intent(account, name, "buy", "5")
    # 5 at 101 + fee = 505.505 reserved: the second (505.505) meets 494.495 available.
    assert [outcome(e) for e in await decide(replica, first, second)] == [
        "approved",
        "INSUFFICIENT_FUNDS",
    ]
    async with replica.db.transaction() as conn:
        await replica.on_finished(conn, canceled(first))
    third = intent(account, name, "buy", "5")
    assert [outcome(e) for e in await decide(replica, third)] == ["approved"]
    # Filled at 100 with a fee of 0.5: the cash is 499.5 and nothing is reserved any more, so an
    # order of 4 (404.404) fits and one of 5 (505.505) does not.
    async with replica.db.transaction() as conn:
        await replica.lock_accounts(conn, [account])
        await replica.on_fill(conn, filled(third, fee="0.5"))
    assert await replica.store.reserved(account) == 0
    row = await replica.store.account(account)
    assert row is not None and row.cash == Decimal("499.5")
    four, five = intent(account, name, "buy", "4"), intent(account, name, "buy", "5")
    assert [outcome(e) for e in await decide(replica, five, four)] == [
        "INSUFFICIENT_FUNDS",
        "approved",
    ]


async def test_reservations_survive_a_restart_of_risk(
    replica: Decider, settings: Settings, database_url: str
) -> None:
    name, account = instrument(replica), await funded(replica, "1000")
    assert [outcome(e) for e in await decide(replica, intent(account, name, "buy", "9"))] == [
        "approved"
    ]
    restarted, db = await a_replica(settings, database_url)  # a new process: nothing in memory
    try:
        restarted.prices.update(name, PRICE, datetime.now(UTC))
        events = await decide(restarted, intent(account, name, "buy", "1"))
        assert [outcome(e) for e in events] == ["INSUFFICIENT_FUNDS"]
        assert "90.091 is available" in events[0].message
    finally:
        await db.close()


async def test_a_cash_account_cannot_sell_what_it_does_not_hold(replica: Decider) -> None:
    name, account = instrument(replica), await funded(replica, "1000000")
    events = await decide(replica, intent(account, name, "sell", "1"))
    assert [outcome(e) for e in events] == ["INSUFFICIENT_FUNDS"]
    assert "does not allow shorting" in events[0].message


async def test_an_account_never_funded_in_risk_is_not_checked_for_cash(replica: Decider) -> None:
    name = instrument(replica)
    events = await decide(replica, intent(uuid4(), name, "buy", "50"))
    assert [outcome(e) for e in events] == ["approved"]


class _Ladder(Strategy[StrategyConfig]):
    """Buys 3 at every close from bar 1 on, and notes each order it placed and on which bar."""

    name = "ladder"
    config_class = StrategyConfig

    def __init__(self) -> None:
        super().__init__(StrategyConfig())
        self.placed: list[tuple[int, str]] = []

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        if ctx.bar_index >= 1:
            self.placed.append((ctx.bar_index, ctx.submit_order("buy", Decimal(3))))


async def test_live_risk_and_the_backtester_take_the_same_trades_at_the_limit(
    replica: Decider,
) -> None:
    """The same orders on the same bars: the backtester's refusals (its own use of the rule)
    are exactly risk's INSUFFICIENT_FUNDS denials when the intents come with the bars' closes
    and the backtest's fills are booked between them, as execution would report them."""
    name = instrument(replica)
    closes = ["100", "98", "103", "97", "105", "99", "100"]
    bars = [
        Bar(
            instrument_id=name,
            timeframe="1d",
            open_time=datetime(2026, 1, 1 + n, tzinfo=UTC),
            close_time=datetime(2026, 1, 2 + n, tzinfo=UTC),
            open=Decimal(close),
            high=Decimal(close) + 1,
            low=Decimal(close) - 1,
            close=Decimal(close),
            volume=Decimal(1000),
        )
        for n, close in enumerate(closes)
    ]
    ladder = _Ladder()
    result = Backtester(
        ladder,
        instrument_id=name,
        timeframe="1d",
        cash=Decimal(1000),
        fill_model=FillModel(fee_bps=Decimal(10)),
    ).run(bars)
    assert result.stats.refused_orders >= 1 and result.stats.refused_fills == 0
    filled_ids = {fill.client_order_id for fill in result.fills}
    assert len(filled_ids) >= 2  # some fit, then the limit is reached

    account, run = await funded(replica, "1000"), uuid4().hex[:8]
    fills = {fill.client_order_id: fill for fill in result.fills}
    placed_on = dict((cid, index) for index, cid in ladder.placed)
    outcomes: dict[str, str] = {}
    for index, bar in enumerate(bars):
        # The bar's open fills what the bar before placed; then its close prices new intents.
        for cid, fill in fills.items():
            if placed_on[cid] == index - 1 and outcomes.get(cid) == "approved":
                async with replica.db.transaction() as conn:
                    await replica.lock_accounts(conn, [account])
                    await replica.on_fill(
                        conn,
                        OrderFilled(
                            account_id=account,
                            user_id=TRADER_ID,
                            client_order_id=f"{run}-{cid}",
                            instrument_id=name,
                            ts=bar.open_time,
                            trade_id=f"tr-{run}-{cid}",
                            side="buy",
                            last_qty=fill.quantity,
                            last_price=fill.price,
                            cum_qty=fill.quantity,
                            leaves_qty=Decimal(0),
                            fee=fill.fee,
                            fee_currency="USD",
                            liquidity="taker",
                        ),
                    )
        replica.prices.update(name, bar.close, datetime.now(UTC))
        for cid in [cid for i, cid in ladder.placed if i == index]:
            order = intent(account, name, "buy", "3").model_copy(
                update={"client_order_id": f"{run}-{cid}"}
            )
            (event,) = await decide(replica, order)
            outcomes[cid] = outcome(event)
    assert {cid for cid, seen in outcomes.items() if seen == "approved"} == filled_ids
    denied = [seen for seen in outcomes.values() if seen != "approved"]
    assert denied == ["INSUFFICIENT_FUNDS"] * result.stats.refused_orders


async def test_a_sell_decided_before_risk_sees_the_fill_of_its_buy_is_approved(
    replica: Decider,
) -> None:
    """Strategy may ask to close a position as soon as it saw its entry's fill, before risk's
    own consumer of order events has: the approved buy still pending counts as held."""
    name, account = instrument(replica), await funded(replica, "1000")
    buy = intent(account, name, "buy", "2")
    assert [outcome(e) for e in await decide(replica, buy)] == ["approved"]
    close, beyond = intent(account, name, "sell", "2"), intent(account, name, "sell", "1")
    assert [outcome(e) for e in await decide(replica, close, beyond)] == [
        "approved",
        "INSUFFICIENT_FUNDS",
    ]


def venue_instrument(decider: Decider, quote: str = "USDT") -> tuple[str, str]:
    """An exchange instrument `binance:BASE/quote` at 100, and its base."""
    base = f"E{uuid4().hex[:8].upper()}"
    name = f"binance:{base}/{quote}"
    decider.prices.update(name, PRICE, datetime.now(UTC))
    return name, base


async def tell(decider: Decider, account: UUID, cash: str, holdings: dict[str, Decimal]) -> None:
    """Execution's AccountChanged of an exchange account (USDT), as the order events' handler
    hands it over: the account locked first."""
    event = account_changed(
        account, TRADER_ID, cash, venue="binance", currency="USDT", holdings=holdings
    )
    async with decider.db.transaction() as conn:
        await decider.lock_accounts(conn, [account])
        await decider.on_account(conn, event)


async def test_an_exchange_account_is_checked_on_its_venues_cash_and_holdings(
    replica: Decider,
) -> None:
    """The venue holds 1000 USDT and 2 of the base: a buy over the cash is denied, a sell of the
    base held there approved (risk booked no fill of it), an order quoted in another currency
    not checked; fills move the cash and holdings, and the next snapshot replaces them."""
    (name, base), account = venue_instrument(replica), uuid4()
    euro, _ = venue_instrument(replica, "EUR")
    await tell(replica, account, "1000", {base: Decimal(2)})
    over, within = intent(account, name, "buy", "10"), intent(account, name, "buy", "9")
    sell, beyond = intent(account, name, "sell", "2"), intent(account, name, "sell", "1")
    elsewhere = intent(account, euro, "buy", "50")  # 5050 EUR: the venue refuses if it must
    # (The sells go before the buy that fits: a pending buy counts as held for a sell.)
    events = await decide(replica, over, sell, beyond, within, elsewhere)
    assert [outcome(e) for e in events] == [
        "INSUFFICIENT_FUNDS",
        "approved",
        "INSUFFICIENT_FUNDS",
        "approved",
        "approved",
    ]
    assert "needs 1010, 1000 is available" in events[0].message
    assert "selling 1" in events[2].message and "0 is available" in events[2].message
    rows = await replica.db.pool.fetch(
        "SELECT client_order_id, reserved FROM decisions WHERE account_id = $1", account
    )
    reserved = {r["client_order_id"]: r["reserved"] for r in rows}
    assert reserved[within.client_order_id] == Decimal(909)  # no fee: the venue charges its own
    assert reserved[elsewhere.client_order_id] == 0  # not in the account's currency

    # The sale fills at 100 (fee 0.5 USDT): 200 in, the base out.
    async with replica.db.transaction() as conn:
        await replica.lock_accounts(conn, [account])
        await replica.on_fill(
            conn, filled(sell, fee="0.5").model_copy(update={"fee_currency": "USDT"})
        )
    row = await replica.store.account(account)
    assert row is not None and (row.cash, row.holdings) == (Decimal("1199.5"), {base: Decimal(0)})

    # A snapshot replaces them: 50 USDT left at the venue, nothing else.
    await tell(replica, account, "50", {})
    row = await replica.store.account(account)
    assert row is not None and (row.cash, row.holdings) == (Decimal(50), {})
    # 1 at 101 fitted the 1199.5 less the 909 the open buy reserves; it does not fit 50.
    events = await decide(replica, intent(account, name, "buy", "1"))
    assert [outcome(e) for e in events] == ["INSUFFICIENT_FUNDS"]
    assert "needs 101, 0 is available" in events[0].message


async def test_an_exchange_accounts_batch_and_fills_cost_no_more_statements(
    replica: Decider,
) -> None:
    """The currency and holdings are read in the batch's one state read, and moved by the
    statement that books a fill: 5 statements a batch (from memory), 2 a fill (decision 0109)."""
    (name, base), first, second = venue_instrument(replica), uuid4(), uuid4()
    for account in (first, second):
        await tell(replica, account, "100000", {base: Decimal(50)})
    warm = [intent(a, name, "buy", "1") for a in (first, second)]
    await decide(replica, *warm)  # the accounts' limits into memory
    orders = [
        intent((first, second)[n % 2], name, ("buy", "sell")[n % 3 == 0], "1") for n in range(20)
    ]
    async with counted(replica.db) as (conn, seen):
        await replica.on_intents(conn, [(order, None) for order in orders])
    assert len(seen) == 5, seen
    fills = [filled(order, fee="0.1").model_copy(update={"fee_currency": "USDT"}) for order in warm]
    async with counted(replica.db) as (conn, seen):
        await replica.lock_accounts(conn, [first, second])
        for fill in fills:
            await replica.on_fill(conn, fill)
    assert len(seen) == 2 + 2 * len(fills), seen
    row = await replica.store.account(first)
    assert row is not None and row.holdings == {base: Decimal(51)}
    assert row.cash == Decimal(100000) - Decimal(100) - Decimal("0.1")
