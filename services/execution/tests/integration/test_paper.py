"""Execution on the real broker and Postgres: approved orders through the paper venue to FILLED
with fees and PnL, partial fills, cancels, unknown accounts, and approvals applied once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from fastapi import FastAPI
from trademesh_bus import Bus
from trademesh_events.envelope import new_envelope
from trademesh_events.marketdata import Bar
from trademesh_events.orders import (
    AccountChanged,
    CancelAllOrders,
    CancelOrder,
    OrderApproved,
    OrderFilled,
    OrderType,
    SubmitOrder,
)
from trademesh_events.topics import ORDERS_APPROVED, ORDERS_EVENTS, get_topic
from trademesh_testing.http import app_client
from trademesh_testing.logs import LogLines
from trademesh_testing.samples import decoded, read_all
from trademesh_testing.tokens import bearer
from trademesh_testing.waiting import eventually
from trademesh_trading.currencies import in_currency

from trademesh_execution.app import create_app
from trademesh_execution.config import Settings

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 2, tzinfo=UTC)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Paper costs the tests compute by hand: 5 bps of slippage, 10 bps of fees."""
    return settings.model_copy(
        update={"paper_slippage_bps": Decimal(5), "paper_fee_bps": Decimal(10)}
    )


@pytest.fixture
async def peer(settings: Settings) -> AsyncIterator[Bus]:
    """The other services' side of the bus: risk's approvals, market-data's bars."""
    bus = Bus(settings, "test-peer", telemetry=False)
    await bus.start()
    yield bus
    await bus.stop()


def instrument() -> str:
    return f"test:E{uuid4().hex[:10].upper()}/USD"


def bar(name: str, day: int, o: str, h: str, lo: str, c: str, volume: str = "1000") -> Bar:
    opens = T0 + timedelta(days=day)
    return Bar(
        instrument_id=name,
        timeframe="1d",
        open_time=opens,
        close_time=opens + timedelta(days=1),
        open=Decimal(o),
        high=Decimal(h),
        low=Decimal(lo),
        close=Decimal(c),
        volume=Decimal(volume),
    )


def approved(
    account: UUID, user: UUID, name: str, side: str, qty: str, **fields: Any
) -> OrderApproved:
    order = SubmitOrder(
        account_id=account,
        user_id=user,
        client_order_id=f"t-{uuid4().hex[:20]}",
        instrument_id=name,
        side=side,  # type: ignore[arg-type]
        order_type=fields.pop("order_type", OrderType.MARKET),
        quantity=Decimal(qty),
        source="manual",
        created_at=datetime.now(UTC),
        **fields,
    )
    return OrderApproved(account_id=account, order=order, approved_at=datetime.now(UTC))


async def market(app: FastAPI, peer: Bus, session: Bar) -> None:
    """Publish a bar and wait until execution has it. Bars and approvals travel on different
    topics, so nothing orders one after the other: an approval handled before the bar would be
    timed before it and filled by it. (A new consumer group also starts at the end of the topic,
    so this shows the app reads the instrument's bars at all.)"""

    async def seen() -> bool:
        prices = await app.state.runtime.store.last_prices([session.instrument_id])
        return prices.get(session.instrument_id) == session.close

    await peer.publish(session)
    await eventually(seen)


async def paper_account(client: httpx.AsyncClient, user: UUID, cash: str = "10000") -> UUID:
    response = await client.post(
        "/api/v1/accounts", json={"name": "paper", "cash": cash}, headers=bearer(user)
    )
    assert response.status_code == 201, response.text
    return UUID(response.json()["account_id"])


async def events_of(settings: Settings, client_order_id: str, last: str) -> list[Any]:
    """The order's events on orders.events.v1, once its `last` event type is there."""

    async def there() -> list[Any] | None:
        records = await read_all(settings.kafka_bootstrap, ORDERS_EVENTS, expect=1, timeout=1)
        mine = [
            e
            for e in decoded(ORDERS_EVENTS, records)
            if getattr(e, "client_order_id", None) == client_order_id
        ]
        return mine if mine and mine[-1].type == f"trademesh.order.{last}" else None

    found: list[Any] = await eventually(there)
    return found


def kinds(events: list[Any]) -> list[str]:
    return [e.type.removeprefix("trademesh.order.") for e in events]


async def test_market_and_limit_orders_fill_on_paper_with_fees_and_pnl(
    app: FastAPI, client: httpx.AsyncClient, peer: Bus, settings: Settings
) -> None:
    user, name = uuid4(), instrument()
    account = await paper_account(client, user)
    await market(app, peer, bar(name, 0, "100", "101", "99", "100"))  # day 0 has closed
    buy = approved(account, user, name, "buy", "10")
    await peer.publish(buy)
    accepted = await events_of(settings, buy.order.client_order_id, "accepted")
    assert kinds(accepted) == ["submitted", "accepted"]
    # Day 1 opens at 102: filled at 102 + 5 bps = 102.051, fee 10 bps of 1020.51.
    await peer.publish(bar(name, 1, "102", "104", "101", "103"))
    (*_, filled) = await events_of(settings, buy.order.client_order_id, "filled")
    assert isinstance(filled, OrderFilled)
    assert (filled.last_qty, filled.last_price, filled.fee, filled.leaves_qty) == (
        Decimal(10),
        Decimal("102.051"),
        Decimal("1.02051"),
        Decimal(0),
    )
    assert filled.liquidity == "taker" and filled.fee_currency == "USD"

    # A sell limit at 105 rests on day 2 (high 104.5) and fills on day 3 (high 106) at 105.
    sell = approved(
        account, user, name, "sell", "4", order_type=OrderType.LIMIT, limit_price=Decimal(105)
    )
    await peer.publish(sell)
    await events_of(settings, sell.order.client_order_id, "accepted")
    await peer.publish(bar(name, 2, "103", "104.5", "102", "104"))
    await peer.publish(bar(name, 3, "104", "106", "103", "105.5"))
    (*_, sold) = await events_of(settings, sell.order.client_order_id, "filled")
    assert (sold.last_price, sold.fee, sold.liquidity) == (Decimal(105), Decimal("0.42"), "maker")

    headers = bearer(user)
    pnl = (await client.get(f"/api/v1/accounts/{account}/pnl", headers=headers)).json()
    (position,) = pnl["positions"]
    # Realised: (105 - 102.051) * 4, minus both fees as the fills paid them.
    realised = (Decimal(105) - Decimal("102.051")) * 4 - Decimal("1.02051") - Decimal("0.42")
    assert Decimal(position["quantity"]) == 6
    assert Decimal(position["avg_price"]) == Decimal("102.051")
    # A position's PnL is shown at its quote currency's places (USD: 2); the account's cash and
    # equity (a paper account's cash has no currency) at 8.
    assert position["realised_pnl"] == str(in_currency(realised, "USD")) == "10.36"
    assert Decimal(position["last_price"]) == Decimal("105.5")
    unrealised = (Decimal("105.5") - Decimal("102.051")) * 6
    assert position["unrealised_pnl"] == str(in_currency(unrealised, "USD")) == "20.69"
    cash = Decimal(10_000) - Decimal("1020.51") - Decimal("1.02051") + 420 - Decimal("0.42")
    assert Decimal(pnl["cash"]) == cash
    assert Decimal(pnl["equity"]) == cash + 6 * Decimal("105.5")

    # Equity sampled for charts: cash plus 6 at the last close.
    assert await app.state.runtime.equity.sample() >= 1
    points = (await client.get(f"/api/v1/accounts/{account}/equity", headers=headers)).json()[
        "items"
    ]
    assert [(Decimal(p["cash"]), Decimal(p["equity"])) for p in points][-1] == (
        cash,
        cash + 6 * Decimal("105.5"),
    )

    order = (
        await client.get(f"/api/v1/orders/{sell.order.client_order_id}", headers=headers)
    ).json()
    assert [h["status"] for h in order["history"]] == ["PENDING", "SUBMITTED", "ACCEPTED", "FILLED"]
    fills = (await client.get(f"/api/v1/accounts/{account}/fills", headers=headers)).json()["items"]
    assert len(fills) == 2
    assert (
        await client.get(f"/api/v1/accounts/{account}/pnl", headers=bearer(uuid4()))
    ).status_code == 404


async def test_a_partial_fill_sequence(settings: Settings, peer: Bus) -> None:
    capped = create_app(settings.model_copy(update={"paper_max_volume_share": Decimal("0.5")}))
    user, name = uuid4(), instrument()
    async with app_client(capped) as client:
        account = await paper_account(client, user)
        await market(capped, peer, bar(name, 0, "50", "50", "50", "50"))
        order = approved(account, user, name, "buy", "10")
        await peer.publish(order)
        await events_of(settings, order.order.client_order_id, "accepted")
        await peer.publish(bar(name, 1, "50", "51", "49", "50", volume="8"))  # takes 4
        await peer.publish(bar(name, 2, "50", "51", "49", "50", volume="6"))  # takes 3
        await peer.publish(bar(name, 3, "50", "51", "49", "50", volume="100"))  # the last 3

        async def done() -> list[Any] | None:
            found = await events_of(settings, order.order.client_order_id, "filled")
            fills = [e for e in found if isinstance(e, OrderFilled)]
            return found if fills and fills[-1].leaves_qty == 0 else None

        fills = [e for e in await eventually(done) if isinstance(e, OrderFilled)]
        assert [(f.last_qty, f.cum_qty, f.leaves_qty) for f in fills] == [
            (Decimal(4), Decimal(4), Decimal(6)),
            (Decimal(3), Decimal(7), Decimal(3)),
            (Decimal(3), Decimal(10), Decimal(0)),
        ]
        assert len({f.trade_id for f in fills}) == 3
        got = (
            await client.get(f"/api/v1/orders/{order.order.client_order_id}", headers=bearer(user))
        ).json()
        assert [h["status"] for h in got["history"]] == [
            "PENDING",
            "SUBMITTED",
            "ACCEPTED",
            "PARTIALLY_FILLED",
            "PARTIALLY_FILLED",
            "FILLED",
        ]


async def test_an_approval_places_one_order_and_unknown_accounts_are_rejected(
    client: httpx.AsyncClient, peer: Bus, settings: Settings
) -> None:
    user, name = uuid4(), instrument()
    account = await paper_account(client, user)
    order = approved(account, user, name, "buy", "1")
    spec = get_topic(ORDERS_APPROVED)
    envelope = await peer.publish(order)
    # Redelivered (same event id), and approved again (same client order id, a new event).
    await peer.publish_raw(spec.name, spec.encode(order), spec.key_of(order), envelope.to_headers())
    await peer.publish(order)
    marker = approved(account, user, name, "buy", "2")
    await peer.publish(marker)  # same account, same partition: behind the duplicates
    await events_of(settings, marker.order.client_order_id, "accepted")
    events = await events_of(settings, order.order.client_order_id, "accepted")
    assert kinds(events) == ["submitted", "accepted"]

    stranger = approved(uuid4(), user, name, "buy", "1")
    await peer.publish(stranger)
    (rejected,) = await events_of(settings, stranger.order.client_order_id, "rejected")
    assert rejected.reason == "unknown account"


async def test_cancels_by_api_and_by_kill_switch(
    client: httpx.AsyncClient, peer: Bus, settings: Settings
) -> None:
    user, name = uuid4(), instrument()
    headers = bearer(user)
    account = await paper_account(client, user)
    resting = [
        approved(
            account, user, name, "buy", "1", order_type=OrderType.LIMIT, limit_price=Decimal(price)
        )
        for price in ("90", "91", "92")
    ]
    for each in resting:
        await peer.publish(each)
    for each in resting:
        await events_of(settings, each.order.client_order_id, "accepted")

    first = resting[0].order.client_order_id
    cancelled = await client.post(f"/api/v1/orders/{first}/cancel", headers=headers)
    assert cancelled.json()["status"] == "CANCELED"
    assert kinds(await events_of(settings, first, "canceled"))[-1] == "canceled"
    again = await client.post(f"/api/v1/orders/{first}/cancel", headers=headers)
    assert again.json()["status"] == "CANCELED"  # nothing more happens to a finished order
    other = await client.post(f"/api/v1/orders/{first}/cancel", headers=bearer(uuid4()))
    assert other.status_code == 404

    # Risk's kill switch asks for every open order of the account to be cancelled.
    await peer.publish(
        CancelAllOrders(account_id=account, reason="kill switch", created_at=datetime.now(UTC))
    )
    for each in resting[1:]:
        (*_, last) = await events_of(settings, each.order.client_order_id, "canceled")
        assert last.reason == "kill switch"
    open_orders = (await client.get("/api/v1/orders?status=ACCEPTED", headers=headers)).json()[
        "items"
    ]
    assert open_orders == []


async def test_an_order_is_never_filled_by_a_bar_before_its_decision(
    app: FastAPI, client: httpx.AsyncClient, peer: Bus, settings: Settings
) -> None:
    """The approval of an order decided on day 1's close comes before execution has read day 1
    (bars and approvals travel on different topics): the paper venue still times it at its
    decision, so day 1, redelivered or late, does not fill it; day 2 does, at its open."""
    user, name = uuid4(), instrument()
    account = await paper_account(client, user)
    await market(app, peer, bar(name, 0, "100", "101", "99", "100"))  # execution is at day 0
    day1 = bar(name, 1, "102", "104", "101", "103")
    buy = approved(account, user, name, "buy", "1", decided_at=day1.close_time)
    await peer.publish(buy)
    await events_of(settings, buy.order.client_order_id, "accepted")
    await market(app, peer, day1)  # read late: it must not fill the order
    found = await app.state.runtime.store.order(buy.order.client_order_id)
    assert found[0].filled == 0 and found[0].active_from == day1.close_time
    await peer.publish(bar(name, 2, "110", "111", "109", "110"))
    (*_, filled) = await events_of(settings, buy.order.client_order_id, "filled")
    assert filled.last_price == Decimal("110") * Decimal("1.0005")


async def test_a_late_approval_fills_from_the_bar_after_its_decision(
    app: FastAPI, client: httpx.AsyncClient, peer: Bus, settings: Settings
) -> None:
    """The other way round: execution has read days 1 to 3 when the approval of an order decided
    on day 0's close comes (the order pipeline behind the market data: a fast replay, a restart
    of risk). The order is tried against the kept bars after its decision, as if it had come in
    time: day 1 fills it at its open; day 3 (the last seen) would not have, and no later bar is
    needed. A limit order the kept bars never reach waits for the next bar."""
    user, name = uuid4(), instrument()
    account = await paper_account(client, user)
    day0 = bar(name, 0, "100", "101", "99", "100")
    await market(app, peer, day0)
    for day, price in ((1, "102"), (2, "105"), (3, "108")):
        await market(app, peer, bar(name, day, price, price, price, price))
    buy = approved(account, user, name, "buy", "2", decided_at=day0.close_time)
    await peer.publish(buy)
    (*_, filled) = await events_of(settings, buy.order.client_order_id, "filled")
    assert filled.last_price == Decimal("102") * Decimal("1.0005")
    assert filled.ts == day0.close_time  # day 1's open
    cheap = approved(account, user, name, "buy", "1", decided_at=day0.close_time,
                     order_type=OrderType.LIMIT, limit_price=Decimal("90"))  # fmt: skip
    await peer.publish(cheap)
    await events_of(settings, cheap.order.client_order_id, "accepted")
    found = await app.state.runtime.store.order(cheap.order.client_order_id)
    assert found[0].filled == 0 and found[0].active_from == day0.close_time
    await peer.publish(bar(name, 4, "89", "90", "88", "89"))
    (*_, limit_fill) = await events_of(settings, cheap.order.client_order_id, "filled")
    assert limit_fill.last_price == Decimal("89")  # a better open than the limit


async def test_a_resting_orders_fill_travels_under_the_orders_own_trace(
    app: FastAPI, client: httpx.AsyncClient, peer: Bus, settings: Settings, log_lines: LogLines
) -> None:
    """A limit order's fill comes from a later bar, which has a trace of its own; the fill's
    event still carries the trace the order was placed under (one trace per order path), and
    so do the lines logged for the order's changes."""
    user, name = uuid4(), instrument()
    account = await paper_account(client, user)
    await market(app, peer, bar(name, 0, "100", "101", "99", "100"))
    order_trace = f"{uuid4().hex}"
    resting = approved(
        account, user, name, "buy", "1", order_type=OrderType.LIMIT, limit_price=Decimal("95")
    )
    spec = get_topic("orders.approved.v1")
    envelope = new_envelope(resting, "test-risk")
    headers = {**envelope.to_headers(), "traceparent": f"00-{order_trace}-{'1' * 16}-01"}
    await peer.publish_raw(spec.name, spec.encode(resting), spec.key_of(resting), headers)
    await events_of(settings, resting.order.client_order_id, "accepted")
    bar_trace = f"{uuid4().hex}"
    session = bar(name, 1, "96", "97", "94", "96")
    md = get_topic("md.bars.v1")
    bar_headers = {
        **new_envelope(session, "test-market-data").to_headers(),
        "traceparent": f"00-{bar_trace}-{'2' * 16}-01",
    }
    await peer.publish_raw(md.name, md.encode(session), md.key_of(session), bar_headers)
    await events_of(settings, resting.order.client_order_id, "filled")
    records = await read_all(settings.kafka_bootstrap, ORDERS_EVENTS, expect=1)
    traces = {
        e.type: dict(r.headers)["traceparent"].decode().split("-")[1]
        for r in records
        for e in decoded(ORDERS_EVENTS, [r])
        if getattr(e, "client_order_id", None) == resting.order.client_order_id
    }
    assert traces == {
        "trademesh.order.submitted": order_trace,
        "trademesh.order.accepted": order_trace,
        "trademesh.order.filled": order_trace,
    }
    cid = resting.order.client_order_id
    lines = {line["event"]: line for line in log_lines.all() if line.get("client_order_id") == cid}
    assert set(lines) == {"order submitted", "order accepted", "order filled"}, lines
    for line in lines.values():
        assert line["level"] == "info"
        assert line["trace_id"] == order_trace
        assert line["account_id"] == str(account)
        assert line["instrument_id"] == name
    [fill] = [
        e
        for r in records
        for e in decoded(ORDERS_EVENTS, [r])
        if isinstance(e, OrderFilled) and e.client_order_id == cid
    ]
    filled = lines["order filled"]
    assert (filled["price"], filled["quantity"], filled["fee"]) == (
        str(fill.last_price),
        str(fill.last_qty),
        str(fill.fee),
    )
    assert filled["fee_currency"] == fill.fee_currency and filled["leaves"] == "0"


# ---- approvals in batches: few statements, applied once, fills in order -------------------------

# What asyncpg asks Postgres about a type the first time a connection uses it: once per
# connection, not per statement of the service, so not counted.
_TYPE_LOOKUPS = ("typeinfo_tree", "current_setting('jit')", "set_config('jit'")


@dataclass
class Statements:
    """The statements of every transaction the service's database runs, BEGIN and COMMIT aside,
    seen by asyncpg's query loggers on the real connections."""

    transactions: list[list[Any]] = field(default_factory=list)

    def of_consumer(self, group: str) -> list[tuple[int, list[str]]]:
        """The transactions that claimed events of `group` in the inbox: how many events each
        claimed, and its statements."""
        found = []
        for queries in self.transactions:
            claims = [
                q for q in queries if q.query.startswith("INSERT INTO inbox") and q.args[0] == group
            ]
            if claims:
                ours = [q.query for q in queries if not any(t in q.query for t in _TYPE_LOOKUPS)]
                found.append((len(claims[0].args[1]), ours))
        return found


@pytest.fixture
def statements(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> Statements:
    db = app.state.runtime.db
    seen = Statements()
    transaction = db.transaction

    @asynccontextmanager
    async def counted() -> AsyncIterator[Any]:
        async with transaction() as conn:
            queries: list[Any] = []
            seen.transactions.append(queries)
            conn.add_query_logger(queries.append)
            try:
                yield conn
            finally:
                conn.remove_query_logger(queries.append)

    monkeypatch.setattr(db, "transaction", counted)
    return seen


async def test_a_batch_of_approvals_costs_a_bounded_number_of_statements(
    app: FastAPI, client: httpx.AsyncClient, peer: Bus, settings: Settings, statements: Statements
) -> None:
    """However many approvals a batch holds (resting orders, an unknown account's, a late one
    that fills at once), its transaction runs five statements: the inbox claim, the paper
    market locks, the orders stored with what placing them reads, their changes, their events.
    (Placed one by one, an approval took 12 statements, a late one that filled 22.)"""
    user, name = uuid4(), instrument()
    account = await paper_account(client, user)
    day0 = bar(name, 0, "100", "101", "99", "100")
    await market(app, peer, day0)
    await market(app, peer, bar(name, 1, "102", "102", "102", "102"))
    batch = [
        approved(
            account, user, name, "buy", "1", order_type=OrderType.LIMIT, limit_price=Decimal(80 + n)
        )
        for n in range(20)
    ]
    batch.append(approved(uuid4(), user, name, "buy", "1"))  # an account that does not exist
    batch.append(approved(account, user, name, "buy", "1", decided_at=day0.close_time))
    statements.transactions.clear()
    await peer.publish_many(batch)
    await events_of(settings, batch[-1].order.client_order_id, "filled")
    await events_of(settings, batch[-2].order.client_order_id, "rejected")
    for each in batch[:-2]:
        await events_of(settings, each.order.client_order_id, "accepted")
    handled = statements.of_consumer(f"{settings.consumer_group}.{ORDERS_APPROVED}")
    assert sum(claimed for claimed, _ in handled) == len(batch)
    for claimed, queries in handled:
        assert len(queries) <= 5, (claimed, queries)


async def test_a_redelivered_or_repeated_batch_of_approvals_changes_nothing(
    app: FastAPI, client: httpx.AsyncClient, peer: Bus, settings: Settings
) -> None:
    user, name = uuid4(), instrument()
    account = await paper_account(client, user)
    day0 = bar(name, 0, "100", "101", "99", "100")
    await market(app, peer, day0)
    await market(app, peer, bar(name, 1, "102", "102", "102", "102"))
    batch = [
        approved(account, user, name, "buy", "2", decided_at=day0.close_time),  # fills at once
        approved(
            account, user, name, "buy", "1", order_type=OrderType.LIMIT, limit_price=Decimal("90")
        ),
        approved(uuid4(), user, name, "buy", "1"),
    ]
    envelopes = await peer.publish_many(batch)
    await events_of(settings, batch[0].order.client_order_id, "filled")
    await events_of(settings, batch[1].order.client_order_id, "accepted")
    await events_of(settings, batch[2].order.client_order_id, "rejected")
    db = app.state.runtime.db

    async def state() -> list[Any]:
        return [
            await db.pool.fetch(f"SELECT * FROM {table} ORDER BY 1, 2")
            for table in ("orders", "order_history", "fills", "positions", "accounts")
        ] + [await db.pool.fetchval("SELECT count(*) FROM outbox")]

    before = await state()
    spec = get_topic(ORDERS_APPROVED)
    for event, envelope in zip(batch, envelopes, strict=True):  # redelivered: the same events
        await peer.publish_raw(
            spec.name, spec.encode(event), spec.key_of(event), envelope.to_headers()
        )
    await peer.publish_many(batch)  # approved again: new events of the same orders
    marker = approved(account, user, name, "buy", "1", order_type=OrderType.LIMIT,
                      limit_price=Decimal("80"))  # fmt: skip
    await peer.publish(marker)  # same account, same partition: behind them
    await events_of(settings, marker.order.client_order_id, "accepted")
    after = await state()
    marked = marker.order.client_order_id
    assert [r for r in after[0] if r["client_order_id"] != marked] == list(before[0])
    assert [r for r in after[1] if r["client_order_id"] != marked] == list(before[1])
    assert after[2:5] == before[2:5]
    assert after[5] == before[5] + 2  # the marker's submitted and accepted
    records = decoded(
        ORDERS_EVENTS, await read_all(settings.kafka_bootstrap, ORDERS_EVENTS, expect=1)
    )
    published = {
        each.order.client_order_id: kinds(
            [
                e
                for e in records
                if getattr(e, "client_order_id", None) == each.order.client_order_id
            ]
        )
        for each in batch
    }
    assert list(published.values()) == [
        ["submitted", "accepted", "filled"],
        ["submitted", "accepted"],
        ["rejected"],
    ]


async def test_late_market_orders_in_one_batch_fill_at_once_with_their_events_in_order(
    app: FastAPI, client: httpx.AsyncClient, peer: Bus, settings: Settings
) -> None:
    """Two late market orders of one account and instrument in one batch fill from the kept
    bars at once, one after the other in the position and cash; a cancel behind an approval in
    the same batch finds its order placed. Each order's events come out in order."""
    user, name = uuid4(), instrument()
    account = await paper_account(client, user)
    day0 = bar(name, 0, "100", "101", "99", "100")
    await market(app, peer, day0)
    await market(app, peer, bar(name, 1, "102", "103", "101", "102"))
    buy = approved(account, user, name, "buy", "2", decided_at=day0.close_time)
    sell = approved(account, user, name, "sell", "1", decided_at=day0.close_time)
    resting = approved(account, user, name, "buy", "1", order_type=OrderType.LIMIT,
                       limit_price=Decimal("50"))  # fmt: skip
    cancel = CancelOrder(
        account_id=account,
        user_id=user,
        client_order_id=resting.order.client_order_id,
        created_at=datetime.now(UTC),
    )
    await peer.publish_many([buy, sell, resting, cancel], topic=get_topic(ORDERS_APPROVED))
    bought = await events_of(settings, buy.order.client_order_id, "filled")
    sold = await events_of(settings, sell.order.client_order_id, "filled")
    cancelled = await events_of(settings, resting.order.client_order_id, "canceled")
    assert kinds(bought) == kinds(sold) == ["submitted", "accepted", "filled"]
    assert kinds(cancelled) == ["submitted", "accepted", "canceled"]
    assert bought[-1].last_price == Decimal("102") * Decimal("1.0005")
    assert sold[-1].last_price == Decimal("102") * Decimal("0.9995")
    assert bought[-1].ts == sold[-1].ts == day0.close_time  # day 1's open

    runtime = app.state.runtime
    (held,) = await runtime.store.positions(account)
    assert held.quantity == 1 and held.avg_price == bought[-1].last_price
    fees = bought[-1].fee + sold[-1].fee
    assert held.realised_pnl == sold[-1].last_price - bought[-1].last_price - fees
    assert bought[-1].fee == 2 * bought[-1].last_price * Decimal("0.001")
    cash = await runtime.db.pool.fetchval(
        "SELECT cash FROM accounts WHERE account_id = $1", account
    )
    assert cash == Decimal(10000) - 2 * bought[-1].last_price + sold[-1].last_price - fees
    history = await runtime.store.history(buy.order.client_order_id)
    assert [h["status"] for h in history] == ["PENDING", "SUBMITTED", "ACCEPTED", "FILLED"]


async def test_a_paper_fill_the_account_can_no_longer_pay_for_cancels_the_order(
    app: FastAPI, client: httpx.AsyncClient, peer: Bus, settings: Settings
) -> None:
    """Two buys of 5 on 1000 of cash, both working (risk not in the way): day 1 opens at 102,
    so the first fills at 102.051 (510.255 + 0.510255 of fee) and the second, which needs as
    much again with 489.234745 left, is cancelled with the figures; cash never goes negative.
    A sell of what the cash account does not hold is cancelled too."""
    user, name = uuid4(), instrument()
    account = await paper_account(client, user, cash="1000")
    await market(app, peer, bar(name, 0, "100", "101", "99", "100"))
    first, second = (approved(account, user, name, "buy", "5") for _ in range(2))
    short = approved(account, user, name, "sell", "6")
    for each in (first, second, short):
        await peer.publish(each)
        await events_of(settings, each.order.client_order_id, "accepted")
    await peer.publish(bar(name, 1, "102", "104", "101", "103"))
    assert kinds(await events_of(settings, first.order.client_order_id, "filled"))[-1] == "filled"
    (*_, refused) = await events_of(settings, second.order.client_order_id, "canceled")
    assert "insufficient funds" in refused.reason
    assert "needs 510.765255" in refused.reason and "489.234745 is available" in refused.reason
    (*_, unheld) = await events_of(settings, short.order.client_order_id, "canceled")
    assert "selling 6" in unheld.reason and "5 is available" in unheld.reason
    pnl = (await client.get(f"/api/v1/accounts/{account}/pnl", headers=bearer(user))).json()
    assert Decimal(pnl["cash"]) == Decimal("489.234745")


async def test_a_margin_account_needs_an_admin_and_reads_back_its_terms(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    user = uuid4()
    body = {"name": "levered", "cash": "1000", "margin_mode": "margin", "max_leverage": "3"}
    refused = await client.post("/api/v1/accounts", json=body, headers=bearer(user))
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    bad = {"name": "x", "margin_mode": "cash", "max_leverage": "2"}
    invalid = await client.post("/api/v1/accounts", json=bad, headers=bearer(user, "admin"))
    assert invalid.status_code == 422
    assert invalid.headers["content-type"] == "application/problem+json"
    made = await client.post("/api/v1/accounts", json=body, headers=bearer(user, "admin"))
    assert made.status_code == 201, made.text
    assert (made.json()["margin_mode"], Decimal(made.json()["max_leverage"])) == ("margin", 3)
    assert made.json()["allow_short"] is False
    # Risk learns the account's cash and terms from orders.events.v1, on its partition.
    account = UUID(made.json()["account_id"])

    async def announced() -> list[Any] | None:
        records = await read_all(settings.kafka_bootstrap, ORDERS_EVENTS, expect=1, timeout=1)
        mine = [
            e
            for e in decoded(ORDERS_EVENTS, records)
            if isinstance(e, AccountChanged) and e.account_id == account
        ]
        return mine or None

    (changed,) = await eventually(announced)
    assert (changed.cash, changed.margin_mode, changed.max_leverage) == (Decimal(1000), "margin", 3)
    assert changed.fee_bps == Decimal(10) and changed.allow_short is False


async def test_a_late_approval_the_cash_cannot_pay_for_is_cancelled_not_filled(
    app: FastAPI, client: httpx.AsyncClient, peer: Bus, settings: Settings
) -> None:
    """A late order filled at once from the kept bars meets the same check: two buys of 5 at
    day 1's open (102.051) on 600 of cash, in one batch: the first fills, the second is
    cancelled with the figures."""
    user, name = uuid4(), instrument()
    account = await paper_account(client, user, cash="600")
    day0 = bar(name, 0, "100", "101", "99", "100")
    await market(app, peer, day0)
    await market(app, peer, bar(name, 1, "102", "102", "102", "102"))
    first, second = (
        approved(account, user, name, "buy", "5", decided_at=day0.close_time) for _ in range(2)
    )
    await peer.publish_many([first, second])
    await events_of(settings, first.order.client_order_id, "filled")
    (*_, refused) = await events_of(settings, second.order.client_order_id, "canceled")
    assert "needs 510.765255" in refused.reason and "89.234745 is available" in refused.reason
    found = await app.state.runtime.store.order(second.order.client_order_id)
    assert found is not None and found[0].filled == 0
    assert "insufficient funds" in (found[1]["reason"] or "")


async def test_an_accounts_terms_change_through_the_api_and_reach_risk(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    user = uuid4()
    account = await paper_account(client, user, cash="500")
    path = f"/api/v1/accounts/{account}"
    shorting = await client.patch(
        path, json={"margin_mode": "cash", "allow_short": True}, headers=bearer(user)
    )
    assert shorting.status_code == 200, shorting.text
    assert (shorting.json()["margin_mode"], shorting.json()["allow_short"]) == ("cash", True)
    for body, status in (
        ({"margin_mode": "margin", "max_leverage": "4"}, 403),
        ({"margin_mode": "credit"}, 422),
        ({"margin_mode": "cash", "nonsense": 1}, 422),
    ):
        refused = await client.patch(path, json=body, headers=bearer(user))
        assert refused.status_code == status, body
        assert refused.headers["content-type"] == "application/problem+json"
    stranger = await client.patch(path, json={"margin_mode": "cash"}, headers=bearer(uuid4()))
    assert stranger.status_code == 404
    admin = bearer(uuid4(), "admin")
    levered = await client.patch(
        path, json={"margin_mode": "margin", "max_leverage": "4"}, headers=admin
    )
    assert levered.status_code == 200, levered.text
    assert Decimal(levered.json()["max_leverage"]) == 4
    cash_levered = await client.patch(
        path, json={"margin_mode": "cash", "max_leverage": "2"}, headers=admin
    )
    assert cash_levered.status_code == 422

    async def announced() -> list[Any] | None:
        records = await read_all(settings.kafka_bootstrap, ORDERS_EVENTS, expect=3, timeout=1)
        mine = [
            (e.margin_mode, e.max_leverage, e.allow_short, e.cash)
            for e in decoded(ORDERS_EVENTS, records)
            if isinstance(e, AccountChanged) and e.account_id == account
        ]
        return mine if len(mine) >= 3 else None

    assert await eventually(announced) == [
        ("cash", Decimal(1), False, Decimal(500)),
        ("cash", Decimal(1), True, Decimal(500)),
        ("margin", Decimal(4), False, Decimal(500)),
    ]
