"""Risk on the real broker and Postgres: intents decided by the account's limits, pending exposure,
kill switches, the daily loss limit, redeliveries, and state that survives a restart."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from fastapi import FastAPI
from trademesh_bus import Bus
from trademesh_events.orders import (
    CancelAllOrders,
    OrderApproved,
    OrderDenied,
    OrderFilled,
    OrderType,
    SubmitOrder,
)
from trademesh_events.risk import TradingStateChanged
from trademesh_events.topics import (
    ORDERS_APPROVED,
    ORDERS_DENIED,
    ORDERS_INTENTS,
    RISK_EVENTS,
    get_topic,
)
from trademesh_testing.accounts import AccountBook
from trademesh_testing.http import app_client
from trademesh_testing.samples import account_changed, decoded, price_bar, read_all
from trademesh_testing.tokens import bearer
from trademesh_testing.waiting import eventually

from trademesh_risk.app import create_app
from trademesh_risk.config import Settings

pytestmark = pytest.mark.integration

ADMIN_ID, TRADER_ID = uuid4(), uuid4()


def as_(user: UUID, role: str = "trader") -> dict[str, str]:
    """A caller's headers: a fresh access token (minted per request, so none ever expires)."""
    return bearer(user, role)


def instrument() -> str:
    return f"test:R{uuid4().hex[:10].upper()}/USD"


def intent(
    account: UUID, instrument_id: str, side: str, quantity: str, **fields: Any
) -> SubmitOrder:
    return SubmitOrder(
        account_id=account,
        user_id=TRADER_ID,
        client_order_id=f"t-{uuid4().hex[:20]}",
        instrument_id=instrument_id,
        side=side,  # type: ignore[arg-type]
        order_type=fields.pop("order_type", OrderType.MARKET),
        quantity=Decimal(quantity),
        source="manual",
        created_at=datetime.now(UTC),
        **fields,
    )


def limit_intent(
    account: UUID, instrument_id: str, side: str, quantity: str, limit: str
) -> SubmitOrder:
    return intent(
        account,
        instrument_id,
        side,
        quantity,
        order_type=OrderType.LIMIT,
        limit_price=Decimal(limit),
    )


async def price(producer: Bus, instrument_id: str, close: str) -> None:
    await producer.publish(price_bar(instrument_id, close))


async def known_price(app: FastAPI, instrument_id: str) -> None:
    async def seen() -> bool:
        return app.state.runtime.prices.get(instrument_id) is not None

    await eventually(seen)


async def decisions(settings: Settings, account: UUID, expect: int) -> dict[str, Any]:
    """client order id -> OrderApproved or OrderDenied, for the account's orders."""

    async def found() -> dict[str, Any] | None:
        out: dict[str, Any] = {}
        for topic in (ORDERS_APPROVED, ORDERS_DENIED):
            records = await read_all(settings.kafka_bootstrap, topic, expect=1, timeout=1)
            for event in decoded(topic, records):
                if isinstance(event, OrderApproved) and event.account_id == account:
                    out[event.order.client_order_id] = event
                elif isinstance(event, OrderDenied) and event.account_id == account:
                    out[event.client_order_id] = event
        return out if len(out) >= expect else None

    result: dict[str, Any] = await eventually(found)
    return result


async def trading_states(
    settings: Settings, expect: int, account: UUID | None, by: UUID | None = None
) -> list[tuple[Any, ...]]:
    """The account's trading state changes on risk.events.v1, in order, once at least `expect`
    are there: (old, new, reason, changed_by, message). `account` None: the platform's, by `by`
    (the topic is the test session's, shared by every test)."""

    async def found() -> list[tuple[Any, ...]] | None:
        records = await read_all(settings.kafka_bootstrap, RISK_EVENTS, expect=1, timeout=1)
        got = [
            (e.old_state.value, e.new_state.value, e.reason.value, e.changed_by, e.message)
            for e in decoded(RISK_EVENTS, records)
            if isinstance(e, TradingStateChanged)
            and e.account_id == account
            and (by is None or e.changed_by == by)
        ]
        return got if len(got) >= expect else None

    result: list[tuple[Any, ...]] = await eventually(found)
    return result


def denied(event: Any) -> str | None:
    return event.reason.value if isinstance(event, OrderDenied) else None


async def test_limits_decide_pending_orders_count_and_a_restart_keeps_it_all(
    app: FastAPI, producer: Bus, settings: Settings, account_book: AccountBook
) -> None:
    account, name = account_book.open(TRADER_ID), instrument()
    async with app_client(app) as client:
        response = await client.put(
            f"/api/v1/accounts/{account}/limits",
            json={"max_order_quantity": "10", "max_position": "15"},
            headers=as_(TRADER_ID),
        )
        assert response.status_code == 200, response.text
        no_price = intent(account, name, "buy", "1")
        await producer.publish(no_price)
        got = await decisions(settings, account, 1)
        assert denied(got[no_price.client_order_id]) == "NO_MARKET_PRICE"

        await price(producer, name, "100")
        await known_price(app, name)
        at_limit = intent(account, name, "buy", "10")
        too_big = intent(account, name, "buy", "10.001")
        fits_alone = intent(account, name, "buy", "6")  # 10 pending + 6 > 15
        selling = intent(account, name, "sell", "5")  # lowers the worst case: passes
        orders = (at_limit, too_big, fits_alone, selling)
        for order in orders:
            await producer.publish(order)
        got = await decisions(settings, account, 5)
        assert [denied(got[o.client_order_id]) for o in orders] == [
            None,
            "MAX_ORDER_QUANTITY",
            "MAX_POSITION",
            None,
        ]
        assert "max_order_quantity" in got[too_big.client_order_id].message

        # The exposure risk keeps: 10 bought pending, 5 sold pending.
        seen = (await client.get(f"/api/v1/accounts/{account}", headers=as_(TRADER_ID))).json()
        assert [(p["pending_buy"], p["pending_sell"]) for p in seen["positions"]] == [("10", "5")]

        # A fill moves exposure from pending to the position.
        await producer.publish(fill(account, name, at_limit.client_order_id, "buy", "10", "100"))

        async def filled() -> dict[str, Any] | None:
            got = (await client.get(f"/api/v1/accounts/{account}", headers=as_(TRADER_ID))).json()
            held = got["positions"]
            return got if held and held[0]["position"] == "10" else None

        assert (await eventually(filled))["positions"][0]["pending_buy"] == "0"
        await app.state.runtime.prices.save()
    # A new process (new memory, same schema and consumer groups) decides the same way.
    restarted = create_app(settings)
    async with app_client(restarted):
        await known_price(restarted, name)  # the saved prices come back at start
        over = intent(account, name, "buy", "5.5")  # 10 held + 5.5 > 15
        await producer.publish(over)
        got = await decisions(settings, account, 6)
        assert denied(got[over.client_order_id]) == "MAX_POSITION"


ABSURD = "99999999999999999"  # 99,999,999,999,999,999


async def test_absurd_orders_on_a_fresh_account_are_denied_whatever_its_limits(
    app: FastAPI,
    client: httpx.AsyncClient,
    producer: Bus,
    settings: Settings,
    account_book: AccountBook,
) -> None:
    """A new account with no limits of its own: an order of 99,999,999,999,999,999 at 1, and one
    of 1 at 99,999,999,999,999,999, are beyond any instrument's bounds. Raising the account's
    limits as far as they go changes nothing."""
    account, name = account_book.open(TRADER_ID), instrument()
    await price(producer, name, "100")
    await known_price(app, name)

    def absurd() -> tuple[SubmitOrder, SubmitOrder]:
        return (
            limit_intent(account, name, "buy", ABSURD, "1"),
            limit_intent(account, name, "buy", "1", ABSURD),
        )

    quantity, price_ = absurd()
    for order in (quantity, price_):
        await producer.publish(order)
    got = await decisions(settings, account, 2)
    assert [denied(got[o.client_order_id]) for o in (quantity, price_)] == [
        "INSTRUMENT_MAXIMUM",
        "INSTRUMENT_MAXIMUM",
    ]
    assert f"quantity {ABSURD} exceeds" in got[quantity.client_order_id].message
    assert f"limit price {ABSURD} exceeds" in got[price_.client_order_id].message

    # The most an admin can give the account (every limit at its largest value) is no way round.
    widest = {name: "999999999999999999" for name in ("max_order_quantity", "max_order_notional")}
    raised = await client.put(
        f"/api/v1/accounts/{account}/limits",
        json={**widest, "price_collar_bps": "999999999999999999"},
        headers=as_(ADMIN_ID, "admin"),
    )
    assert raised.status_code == 200, raised.text
    again = absurd()
    for order in again:
        await producer.publish(order)
    got = await decisions(settings, account, 4)
    assert [denied(got[o.client_order_id]) for o in again] == [
        "INSTRUMENT_MAXIMUM",
        "INSTRUMENT_MAXIMUM",
    ]


async def test_default_limits_hold_a_fresh_account_a_trader_tightens_them_an_admin_raises_them(
    app: FastAPI,
    client: httpx.AsyncClient,
    producer: Bus,
    settings: Settings,
    account_book: AccountBook,
) -> None:
    account, name = account_book.open(TRADER_ID), instrument()
    limits_of = f"/api/v1/accounts/{account}/limits"
    await price(producer, name, "100")
    await known_price(app, name)

    seen = (await client.get(f"/api/v1/accounts/{account}", headers=as_(TRADER_ID))).json()
    defaults = {
        "max_order_notional": "100000",
        "max_order_quantity": "1000000",
        "price_collar_bps": "1000",
    }
    assert seen["default_limits"] == seen["limits_in_force"] == defaults
    assert seen["limit_sources"] == dict.fromkeys(defaults, "default")
    assert (seen["admin_limits"], seen["limits"]) == ({}, {})

    at_notional = intent(account, name, "buy", "1000")  # 1000 x 100 = 100,000
    over_notional = intent(account, name, "buy", "1000.01")
    at_collar = limit_intent(account, name, "sell", "1", "90")
    over_collar = limit_intent(account, name, "buy", "1", "111")
    orders = (at_notional, over_notional, at_collar, over_collar)
    for order in orders:
        await producer.publish(order)
    got = await decisions(settings, account, 4)
    assert [denied(got[o.client_order_id]) for o in orders] == [
        None,
        "MAX_ORDER_NOTIONAL",
        None,
        "PRICE_COLLAR",
    ]
    assert got[over_notional.client_order_id].message == (
        "notional 100001.00 (1000.01 at 100) exceeds the max_order_notional 100000"
    )
    assert "limit price 111 is 1100.00 bps from the last price 100" in (
        got[over_collar.client_order_id].message
    )

    # A trader cannot raise a limit above its ceiling, for the account or for an instrument...
    for path, body in (
        (limits_of, {"max_order_notional": "200000", "max_position": "5"}),
        (
            f"/api/v1/accounts/{account}/instrument-limits",
            {"instrument_id": name, "limits": {"max_order_notional": "200000"}},
        ),
    ):
        refused = await client.put(path, json=body, headers=as_(TRADER_ID))
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        problem = refused.json()
        assert problem["type"] == "/problems/limit-above-ceiling"
        assert problem["ceilings"] == {"max_order_notional": "100000"}
        assert (
            "max_order_notional 200000 is above its ceiling 100000 (the default)"
            in (problem["detail"])
        )
    # ...but tightens it.
    tightened = await client.put(
        limits_of, json={"max_order_notional": "5000"}, headers=as_(TRADER_ID)
    )
    assert tightened.status_code == 200, tightened.text
    assert tightened.json()["limits_in_force"]["max_order_notional"] == "5000"
    assert tightened.json()["limit_sources"]["max_order_notional"] == "account"

    # An admin's limits replace the defaults (higher or lower); the trader's stricter one holds.
    raised = await client.put(
        limits_of,
        json={"max_order_notional": "500000", "price_collar_bps": "3000"},
        headers=as_(ADMIN_ID, "admin"),
    )
    assert raised.status_code == 200, raised.text
    seen = raised.json()
    assert seen["admin_limits"] == {"max_order_notional": "500000", "price_collar_bps": "3000"}
    assert seen["limits"] == {"max_order_notional": "5000"}  # the trader's own, untouched
    assert seen["limits_in_force"] == {
        **defaults,
        "max_order_notional": "5000",
        "price_collar_bps": "3000",
    }
    assert seen["limit_sources"] == {
        "max_order_notional": "account",
        "max_order_quantity": "default",
        "price_collar_bps": "admin",
    }
    # Under the admin's ceiling, the trader may set what was refused before.
    loosened = await client.put(
        limits_of, json={"max_order_notional": "200000"}, headers=as_(TRADER_ID)
    )
    assert loosened.status_code == 200, loosened.text
    big = intent(account, name, "buy", "2000")  # 200,000
    wide = limit_intent(account, name, "buy", "1", "125")
    bigger = intent(account, name, "buy", "2000.01")
    for order in (big, wide, bigger):
        await producer.publish(order)
    got = await decisions(settings, account, 7)
    assert [denied(got[o.client_order_id]) for o in (big, wide, bigger)] == [
        None,
        None,
        "MAX_ORDER_NOTIONAL",
    ]


async def test_a_limit_lowered_through_the_api_applies_to_the_very_next_intent(
    app: FastAPI,
    client: httpx.AsyncClient,
    producer: Bus,
    settings: Settings,
    account_book: AccountBook,
) -> None:
    """The service keeps limits in memory once it decided an account's intent; lowering one
    through the API is seen by the next intent all the same (test_decider.py: another replica)."""
    account, name = account_book.open(TRADER_ID), instrument()
    await price(producer, name, "100")
    await known_price(app, name)
    first = intent(account, name, "buy", "5")
    await producer.publish(first)
    assert denied((await decisions(settings, account, 1))[first.client_order_id]) is None
    lowered = await client.put(
        f"/api/v1/accounts/{account}/limits",
        json={"max_order_quantity": "4"},
        headers=as_(TRADER_ID),
    )
    assert lowered.status_code == 200, lowered.text
    second = intent(account, name, "buy", "5")
    await producer.publish(second)
    assert denied((await decisions(settings, account, 2))[second.client_order_id]) == (
        "MAX_ORDER_QUANTITY"
    )


def fill(
    account: UUID, name: str, client_order_id: str, side: str, qty: str, at: str, fee: str = "0"
) -> OrderFilled:
    return OrderFilled(
        account_id=account,
        user_id=TRADER_ID,
        client_order_id=client_order_id,
        instrument_id=name,
        ts=datetime.now(UTC),
        trade_id=f"tr-{uuid4().hex[:12]}",
        side=side,  # type: ignore[arg-type]
        last_qty=Decimal(qty),
        last_price=Decimal(at),
        cum_qty=Decimal(qty),
        leaves_qty=Decimal(0),
        fee=Decimal(fee),
        fee_currency="USD",
        liquidity="taker",
    )


async def test_kill_switches_deny_and_cancel_and_only_admins_pull_the_global_one(
    app: FastAPI,
    client: httpx.AsyncClient,
    producer: Bus,
    settings: Settings,
    account_book: AccountBook,
) -> None:
    account, name = account_book.open(TRADER_ID), instrument()
    await price(producer, name, "50")
    await known_price(app, name)
    first = intent(account, name, "buy", "1")
    await producer.publish(first)
    await decisions(settings, account, 1)

    engaged = await client.post(
        f"/api/v1/accounts/{account}/kill-switch",
        json={"engaged": True, "reason": "going home"},
        headers=as_(TRADER_ID),
    )
    assert engaged.json()["kill_switch"] is True
    blocked = intent(account, name, "buy", "1")
    await producer.publish(blocked)
    assert denied((await decisions(settings, account, 2))[blocked.client_order_id]) == (
        "KILL_SWITCH"
    )
    cancels = [
        e
        for e in decoded(
            ORDERS_APPROVED, await read_all(settings.kafka_bootstrap, ORDERS_APPROVED, expect=1)
        )
        if isinstance(e, CancelAllOrders) and e.account_id == account
    ]
    assert [c.reason for c in cancels] == ["going home"]
    halted = ("ACTIVE", "HALTED", "KILL_SWITCH_ENGAGED", TRADER_ID, "going home")
    assert await trading_states(settings, 1, account) == [halted]

    await client.post(
        f"/api/v1/accounts/{account}/kill-switch", json={"engaged": False}, headers=as_(TRADER_ID)
    )
    again = intent(account, name, "buy", "1")
    await producer.publish(again)
    assert denied((await decisions(settings, account, 3))[again.client_order_id]) is None
    resumed = ("HALTED", "ACTIVE", "KILL_SWITCH_RELEASED", TRADER_ID, None)
    assert await trading_states(settings, 2, account) == [halted, resumed]

    refused = await client.post(
        "/api/v1/kill-switch", json={"engaged": True}, headers=as_(TRADER_ID)
    )
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    try:
        pulled = await client.post(
            "/api/v1/kill-switch",
            json={"engaged": True, "reason": "drill"},
            headers=as_(ADMIN_ID, "admin"),
        )
        assert pulled.json() == {"engaged": True, "reason": "drill"}
        stopped = intent(account, name, "sell", "1")
        await producer.publish(stopped)
        assert denied((await decisions(settings, account, 4))[stopped.client_order_id]) == (
            "KILL_SWITCH"
        )
    finally:  # the global switch is shared by every test of this schema: release it
        await client.post(
            "/api/v1/kill-switch", json={"engaged": False}, headers=as_(ADMIN_ID, "admin")
        )
    # The platform's trading state, once each way; the account's own did not change.
    assert await trading_states(settings, 2, None, by=ADMIN_ID) == [
        ("ACTIVE", "HALTED", "GLOBAL_KILL_SWITCH_ENGAGED", ADMIN_ID, "drill"),
        ("HALTED", "ACTIVE", "GLOBAL_KILL_SWITCH_RELEASED", ADMIN_ID, None),
    ]
    assert len(await trading_states(settings, 2, account)) == 2


async def test_the_daily_loss_limit_switches_the_account_to_reducing(
    app: FastAPI,
    client: httpx.AsyncClient,
    producer: Bus,
    settings: Settings,
    account_book: AccountBook,
) -> None:
    account, name = account_book.open(TRADER_ID), instrument()
    await client.put(
        f"/api/v1/accounts/{account}/limits",
        json={"daily_loss_limit": "100"},
        headers=as_(TRADER_ID),
    )
    await price(producer, name, "100")
    await known_price(app, name)
    buy = intent(account, name, "buy", "10")
    await producer.publish(buy)
    await decisions(settings, account, 1)
    await producer.publish(fill(account, name, buy.client_order_id, "buy", "10", "100"))
    sell = intent(account, name, "sell", "5")
    await producer.publish(sell)
    await decisions(settings, account, 2)
    # Sold 5 at 79 with a fee of 5: realised (79 - 100) * 5 - 5 = -110, beyond the limit.
    await producer.publish(fill(account, name, sell.client_order_id, "sell", "5", "79", fee="5"))

    async def reducing() -> dict[str, Any] | None:
        got = (await client.get(f"/api/v1/accounts/{account}", headers=as_(TRADER_ID))).json()
        return got if got["state"] == "REDUCING" else None

    state = await eventually(reducing)
    assert Decimal(state["realised_today"]) == Decimal(-110)
    more = intent(account, name, "buy", "1")
    less = intent(account, name, "sell", "2")
    flip = intent(account, name, "sell", "4")  # 5 held, 2 pending sell: 4 more would flip
    for order in (more, less, flip):
        await producer.publish(order)
    got = await decisions(settings, account, 5)
    assert [denied(got[o.client_order_id]) for o in (more, less, flip)] == [
        "REDUCE_ONLY",
        None,
        "REDUCE_ONLY",
    ]
    # Published once, in the transaction of the fill that reached the limit: the intents decided
    # since (their decisions are out, and so is anything their transactions wrote) added none.
    assert await trading_states(settings, 1, account) == [
        (
            "ACTIVE",
            "REDUCING",
            "DAILY_LOSS_LIMIT",
            None,
            "realised PnL today -110 has reached the daily_loss_limit 100",
        )
    ]


async def test_an_admin_halts_and_resumes_an_account_and_each_change_is_published(
    app: FastAPI,
    client: httpx.AsyncClient,
    producer: Bus,
    settings: Settings,
    account_book: AccountBook,
) -> None:
    account, name = account_book.open(TRADER_ID), instrument()
    await price(producer, name, "10")
    await known_price(app, name)
    admin = as_(ADMIN_ID, "admin")
    refused = await client.post(
        f"/api/v1/accounts/{account}/state", json={"state": "HALTED"}, headers=as_(TRADER_ID)
    )
    assert refused.status_code == 403
    halted = await client.post(
        f"/api/v1/accounts/{account}/state",
        json={"state": "HALTED", "reason": "compliance review"},
        headers=admin,
    )
    assert halted.json()["state"] == "HALTED"
    blocked = intent(account, name, "buy", "1")
    await producer.publish(blocked)
    assert denied((await decisions(settings, account, 1))[blocked.client_order_id]) == (
        "TRADING_HALTED"
    )
    for _ in range(2):  # resumed twice: the second changes nothing
        await client.post(
            f"/api/v1/accounts/{account}/state", json={"state": "ACTIVE"}, headers=admin
        )
    allowed = intent(account, name, "buy", "1")
    await producer.publish(allowed)
    assert denied((await decisions(settings, account, 2))[allowed.client_order_id]) is None
    assert await trading_states(settings, 2, account) == [
        ("ACTIVE", "HALTED", "MANUAL", ADMIN_ID, "compliance review"),
        ("HALTED", "ACTIVE", "MANUAL", ADMIN_ID, None),
    ]


async def test_an_intent_is_decided_once(
    app: FastAPI, client: httpx.AsyncClient, producer: Bus, settings: Settings
) -> None:
    account, name = uuid4(), instrument()
    await price(producer, name, "10")
    await known_price(app, name)
    order = intent(account, name, "buy", "1")
    spec = get_topic(ORDERS_INTENTS)
    envelope = await producer.publish(order)
    # Redelivered (same event id), and re-sent by its bot (same client order id, new event).
    await producer.publish_raw(
        spec.name, spec.encode(order), spec.key_of(order), envelope.to_headers()
    )
    await producer.publish(order)
    marker = intent(account, name, "buy", "1")
    await producer.publish(marker)  # same account, same partition: behind the duplicates
    await decisions(settings, account, 2)
    approvals = [
        e
        for e in decoded(
            ORDERS_APPROVED, await read_all(settings.kafka_bootstrap, ORDERS_APPROVED, expect=1)
        )
        if isinstance(e, OrderApproved) and e.account_id == account
    ]
    assert sorted(a.order.client_order_id for a in approvals) == sorted(
        [order.client_order_id, marker.client_order_id]
    )


async def test_bad_limits_are_problems(
    client: httpx.AsyncClient, account_book: AccountBook
) -> None:
    account = account_book.open(TRADER_ID)
    for body in ({"max_order_quantity": "0"}, {"max_open_orders": 0}, {"nonsense": 1}):
        response = await client.put(
            f"/api/v1/accounts/{account}/limits", json=body, headers=as_(TRADER_ID)
        )
        assert response.status_code == 422, body
        assert response.headers["content-type"] == "application/problem+json"
    viewer = as_(uuid4(), "viewer")
    forbidden = await client.put(
        f"/api/v1/accounts/{account}/limits", json={"max_position": "1"}, headers=viewer
    )
    assert forbidden.status_code == 403
    assert (await client.get(f"/api/v1/accounts/{account}")).status_code == 401


async def test_only_the_accounts_holder_or_an_admin_reaches_its_risk_routes(
    app: FastAPI, client: httpx.AsyncClient, account_book: AccountBook
) -> None:
    """risk keeps limits by account id for any id; execution, which keeps accounts, says whose
    an account is (with the caller's own token), and risk asks before every account route."""
    account, other = account_book.open(TRADER_ID), uuid4()
    routes: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", f"/api/v1/accounts/{account}", None),
        ("PUT", f"/api/v1/accounts/{account}/limits", {"max_position": "1"}),
        (
            "PUT",
            f"/api/v1/accounts/{account}/instrument-limits",
            {"instrument_id": "binance:BTC/USDT", "limits": {"max_position": "1"}},
        ),
        ("POST", f"/api/v1/accounts/{account}/kill-switch", {"engaged": False}),
    ]
    for method, path, body in routes:
        refused = await client.request(method, path, json=body, headers=as_(other))
        assert refused.status_code == 404, (path, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["title"] == "Unknown account"
        held = await client.request(method, path, json=body, headers=as_(TRADER_ID))
        assert held.status_code == 200, (path, held.text)
        by_admin = await client.request(method, path, json=body, headers=as_(ADMIN_ID, "admin"))
        assert by_admin.status_code == 200, (path, by_admin.text)
    # Nothing the other user sent was kept.
    seen = (await client.get(f"/api/v1/accounts/{account}", headers=as_(TRADER_ID))).json()
    assert seen["limits"] == {"max_position": "1"}

    # A yes is remembered (an account never changes hands); a no is asked again each time.
    asked = account_book.asked
    for _ in range(3):
        await client.get(f"/api/v1/accounts/{account}", headers=as_(TRADER_ID))
        await client.get(f"/api/v1/accounts/{account}", headers=as_(other))
    assert account_book.asked == asked + 3


async def test_an_account_route_fails_closed_when_execution_cannot_answer(
    settings: Settings,
) -> None:
    """No answer from execution is no access: 503 problem with Retry-After, nothing changed."""
    unreachable = settings.model_copy(update={"execution_url": "http://127.0.0.1:9"})
    async with app_client(create_app(unreachable)) as client:
        account = uuid4()
        response = await client.put(
            f"/api/v1/accounts/{account}/limits",
            json={"max_position": "1"},
            headers=as_(TRADER_ID),
        )
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "1"
        assert response.json()["title"] == "Account owner unknown"
        by_admin = await client.get(f"/api/v1/accounts/{account}", headers=as_(ADMIN_ID, "admin"))
        assert by_admin.json()["limits"] == {}


async def test_only_an_admin_overrides_risks_copy_of_an_accounts_buying_power(
    client: httpx.AsyncClient, account_book: AccountBook
) -> None:
    account = account_book.open(TRADER_ID)
    path = f"/api/v1/accounts/{account}/buying-power"
    for body in ({"allow_short": True}, {"margin_mode": "margin", "max_leverage": "3"}):
        refused = await client.put(path, json=body, headers=as_(TRADER_ID))
        assert refused.status_code == 403, body
        assert refused.headers["content-type"] == "application/problem+json"
    admin = as_(ADMIN_ID, "admin")
    for body in ({"margin_mode": "credit"}, {"max_leverage": "0.5"}, {"cash": "-1"}):
        bad = await client.put(path, json=body, headers=admin)
        assert bad.status_code == 422, body
        assert bad.headers["content-type"] == "application/problem+json"
    cash_levered = await client.put(path, json={"max_leverage": "2"}, headers=admin)
    assert cash_levered.status_code == 422
    assert "borrows nothing" in cash_levered.json()["detail"]
    body = {"margin_mode": "margin", "max_leverage": "3", "cash": "5000", "fee_bps": "7.5"}
    set_ = await client.put(path, json=body, headers=admin)
    assert set_.status_code == 200, set_.text
    seen = (await client.get(f"/api/v1/accounts/{account}", headers=as_(TRADER_ID))).json()
    assert seen["buying_power"] == {
        "margin_mode": "margin",
        "max_leverage": "3",
        "allow_short": False,
        "fee_bps": "7.5",
        "cash": "5000",
        "reserved": "0",
        "currency": None,
        "holdings": None,
    }
    # Shorting changed, the leverage and cash kept.
    again = await client.put(
        path, json={"margin_mode": "margin", "allow_short": True}, headers=admin
    )
    assert again.status_code == 200, again.text
    kept = again.json()["buying_power"]
    assert (Decimal(kept["max_leverage"]), kept["allow_short"], Decimal(kept["cash"])) == (
        3,
        True,
        5000,
    )


async def test_a_paper_accounts_cash_from_execution_denies_what_it_cannot_pay(
    app: FastAPI, client: httpx.AsyncClient, producer: Bus, settings: Settings
) -> None:
    """Execution announces a paper account (AccountChanged on orders.events.v1, as it does when
    one is opened); from then on risk checks its orders against that cash, and its fills on the
    same partition move it."""
    account, name = uuid4(), instrument()
    await price(producer, name, "100")
    await known_price(app, name)
    await producer.publish(account_changed(account, TRADER_ID, "1000", fee_bps="10"))

    async def funded() -> bool:
        row = await app.state.runtime.store.account(account)
        return row is not None and row.cash == Decimal(1000)

    await eventually(funded)
    over, within = intent(account, name, "buy", "10"), intent(account, name, "buy", "9")
    for order in (over, within):
        await producer.publish(order)
    got = await decisions(settings, account, 2)
    assert denied(got[over.client_order_id]) == "INSUFFICIENT_FUNDS"
    assert "needs 1011.01, 1000 is available" in got[over.client_order_id].message
    assert denied(got[within.client_order_id]) is None


async def test_an_exchange_accounts_venue_balances_deny_a_buy_over_its_cash_and_allow_its_sell(
    app: FastAPI,
    client: httpx.AsyncClient,
    producer: Bus,
    settings: Settings,
    account_book: AccountBook,
) -> None:
    """Execution tells risk an exchange account's balances at its venue (AccountChanged with its
    currency: cash the venue's total of USDT, holdings its other currencies): a buy over that
    cash is denied; a sell of base the venue holds is approved, though risk booked no fill of
    it; its fills move both."""
    account, base = account_book.open(TRADER_ID), f"V{uuid4().hex[:8].upper()}"
    name = f"binance:{base}/USDT"
    await price(producer, name, "100")
    await known_price(app, name)
    await producer.publish(
        account_changed(
            account,
            TRADER_ID,
            "1000",
            venue="binance",
            currency="USDT",
            holdings={base: Decimal(2), "BNB": Decimal("0.5")},
        )
    )

    async def funded() -> bool:
        row = await app.state.runtime.store.account(account)
        return row is not None and row.currency == "USDT"

    await eventually(funded)
    seen = (await client.get(f"/api/v1/accounts/{account}", headers=as_(TRADER_ID))).json()
    assert seen["buying_power"]["cash"] == "1000"
    assert seen["buying_power"]["holdings"] == {base: "2", "BNB": "0.5"}
    over, sell = intent(account, name, "buy", "10"), intent(account, name, "sell", "2")
    beyond = intent(account, name, "sell", "0.5")
    for order in (over, sell, beyond):
        await producer.publish(order)
    got = await decisions(settings, account, 3)
    assert denied(got[over.client_order_id]) == "INSUFFICIENT_FUNDS"
    assert "needs 1010, 1000 is available" in got[over.client_order_id].message
    assert denied(got[sell.client_order_id]) is None  # held at the venue
    assert denied(got[beyond.client_order_id]) == "INSUFFICIENT_FUNDS"  # 2 of 2 being sold

    # The sale fills at 100, its fee in BNB: the venue's USDT and base move, and the BNB.
    await producer.publish(
        OrderFilled(
            account_id=account,
            user_id=TRADER_ID,
            client_order_id=sell.client_order_id,
            instrument_id=name,
            ts=datetime.now(UTC),
            trade_id=f"tr-{uuid4().hex[:12]}",
            side="sell",
            last_qty=Decimal(2),
            last_price=Decimal(100),
            cum_qty=Decimal(2),
            leaves_qty=Decimal(0),
            fee=Decimal("0.01"),
            fee_currency="BNB",
            liquidity="taker",
            quote_fee=Decimal("0.2"),
        )
    )

    async def booked() -> Any:
        row = await app.state.runtime.store.account(account)
        return row if row is not None and row.cash == Decimal(1200) else None

    row = await eventually(booked)
    assert row.holdings == {base: Decimal(0), "BNB": Decimal("0.49")}
