"""The venue's market info on the real broker and Postgres, from a local Binance (real ccxt, real
HTTP, exchangeInfo.json): the sync writes the rules, intents are denied off the grid and below
the minimums, an admin's override survives a sync until deleted, a venue that is down changes
nothing and answers 502, and only admins change rules."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal as D
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from fastapi import FastAPI
from trademesh_bus import Bus
from trademesh_events.orders import OrderApproved, OrderDenied, OrderType, SubmitOrder
from trademesh_events.topics import ORDERS_APPROVED, ORDERS_DENIED
from trademesh_testing.binance import INSTRUMENT, FakeBinance, load
from trademesh_testing.http import app_client
from trademesh_testing.samples import decoded, price_bar, read_all
from trademesh_testing.tokens import bearer
from trademesh_testing.waiting import eventually

from trademesh_risk.app import create_app
from trademesh_risk.config import Settings

pytestmark = pytest.mark.integration

ADMIN_ID, TRADER_ID, VIEWER_ID = uuid4(), uuid4(), uuid4()
RULES = "/api/v1/instruments/rules"
SYNC = f"{RULES}/sync?exchange=binance"


def as_(user: UUID, role: str) -> dict[str, str]:
    """A caller's headers: a fresh access token (minted per request, so none ever expires)."""
    return bearer(user, role)


def admin() -> dict[str, str]:
    return as_(ADMIN_ID, "admin")


def viewer() -> dict[str, str]:
    return as_(VIEWER_ID, "viewer")


def _filters(symbol: str) -> dict[str, dict[str, Any]]:
    info = load("exchangeInfo.json")
    found = next(s for s in info["symbols"] if s["symbol"] == symbol)
    return {f["filterType"]: f for f in found["filters"]}


BTCUSDT = _filters("BTCUSDT")
TICK = D(BTCUSDT["PRICE_FILTER"]["tickSize"])  # 0.01
STEP = D(BTCUSDT["LOT_SIZE"]["stepSize"])  # 0.00001
MIN_QTY = D(BTCUSDT["LOT_SIZE"]["minQty"])  # 0.00001
MIN_NOTIONAL = D(BTCUSDT["NOTIONAL"]["minNotional"])  # 5
MAX_QTY = D(BTCUSDT["LOT_SIZE"]["maxQty"])  # 9000
MAX_PRICE = D(BTCUSDT["PRICE_FILTER"]["maxPrice"])  # 1000000
MAX_NOTIONAL = D(BTCUSDT["NOTIONAL"]["maxNotional"])  # 9000000
MAXIMA = {"max_quantity": MAX_QTY, "max_price": MAX_PRICE, "max_notional": MAX_NOTIONAL}
PRICE = D(60000)


@pytest.fixture
async def binance() -> AsyncIterator[FakeBinance]:
    server = FakeBinance()
    await server.start()
    yield server
    await server.stop()
    assert server.unexpected == []  # public spot market info only: nothing else was asked


def ccxt_config(binance: FakeBinance) -> dict[str, dict[str, Any]]:
    return {
        "binance": {
            "urls": {
                "api": {
                    "public": f"{binance.base}/api/v3",
                    "private": f"{binance.base}/api/v3",
                    "sapi": f"{binance.base}/sapi/v1",
                }
            },
            "options": {
                "fetchMarkets": {"types": ["spot"]},
                "fetchCurrencies": False,
                "fetchMargins": False,
            },
            "rateLimit": 1,
        }
    }


@pytest.fixture
def app(settings: Settings, binance: FakeBinance) -> FastAPI:
    return create_app(settings, ccxt_config=ccxt_config(binance))


def intent(account: UUID, quantity: str, limit: str | None = None) -> SubmitOrder:
    return SubmitOrder(
        account_id=account,
        user_id=TRADER_ID,
        client_order_id=f"t-{uuid4().hex[:20]}",
        instrument_id=INSTRUMENT,
        side="buy",
        order_type=OrderType.MARKET if limit is None else OrderType.LIMIT,
        limit_price=None if limit is None else D(limit),
        quantity=D(quantity),
        source="manual",
        created_at=datetime.now(UTC),
    )


async def priced(app: FastAPI, producer: Bus) -> None:
    """A last price of BTC/USDT that the app knows (market orders are valued at it)."""
    await producer.publish(price_bar(INSTRUMENT, PRICE))

    async def seen() -> bool:
        return app.state.runtime.prices.get(INSTRUMENT) == PRICE

    await eventually(seen)


async def decide(
    settings: Settings, producer: Bus, *orders: SubmitOrder
) -> list[OrderDenied | None]:
    """Send the intents; per intent, its denial, or None when it was approved."""
    for order in orders:
        await producer.publish(order)
    wanted = {o.client_order_id for o in orders}

    async def found() -> dict[str, Any] | None:
        out: dict[str, Any] = {}
        for topic in (ORDERS_APPROVED, ORDERS_DENIED):
            records = await read_all(settings.kafka_bootstrap, topic, expect=1, timeout=1)
            for event in decoded(topic, records):
                if isinstance(event, OrderApproved) and event.order.client_order_id in wanted:
                    out[event.order.client_order_id] = None
                elif isinstance(event, OrderDenied) and event.client_order_id in wanted:
                    out[event.client_order_id] = event
        return out if len(out) == len(wanted) else None

    got: dict[str, Any] = await eventually(found)
    return [got[o.client_order_id] for o in orders]


def reasons(decisions: list[OrderDenied | None]) -> list[str | None]:
    return [None if d is None else d.reason.value for d in decisions]


async def rules_of(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get(RULES, params={"instrument_id": INSTRUMENT}, headers=viewer())
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_the_sync_writes_the_venue_rules_and_intents_are_checked_against_them(
    app: FastAPI, client: httpx.AsyncClient, producer: Bus, settings: Settings
) -> None:
    # Before any sync, only the platform's default bounds (risk's settings) apply.
    before = await rules_of(client)
    assert (before["venue"], before["admin"]) == (None, None)
    assert before["sources"] == {"max_quantity": "default", "max_price": "default"}
    assert D(before["rules"]["max_quantity"]) == settings.instrument_max_quantity
    response = await client.post(SYNC, headers=admin())
    assert response.status_code == 200, response.text
    assert response.json() == {
        "exchanges": [{"exchange": "binance", "instruments": 3, "changed": 3, "skipped": 0}]
    }
    got = await rules_of(client)
    assert {k: D(v) for k, v in got["rules"].items()} == {
        "price_step": TICK,
        "quantity_step": STEP,
        "min_quantity": MIN_QTY,
        "min_notional": MIN_NOTIONAL,
        **MAXIMA,
    }
    assert set(got["sources"].values()) == {"venue"}
    assert got["admin"] is None and got["venue"]["updated_at"]
    eth = await client.get(RULES, params={"instrument_id": "binance:ETH/BTC"}, headers=viewer())
    assert D(eth.json()["rules"]["price_step"]) == D(_filters("ETHBTC")["PRICE_FILTER"]["tickSize"])

    # The same market info again changes nothing.
    again = await client.post(SYNC, headers=admin())
    assert again.json()["exchanges"][0]["changed"] == 0
    assert (await rules_of(client))["venue"]["updated_at"] == got["venue"]["updated_at"]

    await priced(app, producer)
    account = uuid4()
    decisions = await decide(
        settings,
        producer,
        intent(account, "0.001", limit=str(PRICE + TICK / 2)),  # price off the tick grid
        intent(account, str(STEP * D("1.5"))),  # quantity off the step grid
        intent(account, str(STEP * 8)),  # 0.00008 x 60000 = 4.8 < the 5 notional minimum
        intent(account, "0.001", limit=str(PRICE + TICK)),  # on the grid, notional 60
        intent(account, str(STEP * 9)),  # 0.00009 x 60000 = 5.4: passes
        intent(account, str(MAX_QTY + STEP)),  # over the venue's largest quantity
        intent(account, "0.001", limit=str(MAX_PRICE + TICK)),  # over its largest price
    )
    assert reasons(decisions) == [
        "INSTRUMENT_PRECISION",
        "INSTRUMENT_PRECISION",
        "INSTRUMENT_MINIMUM",
        None,
        None,
        "INSTRUMENT_MAXIMUM",
        "INSTRUMENT_MAXIMUM",
    ]
    assert decisions[0] is not None and "price_step 0.01" in decisions[0].message
    assert decisions[2] is not None and "min_notional 5" in decisions[2].message
    assert decisions[5] is not None and "exceeds the max_quantity 9000" in decisions[5].message
    assert decisions[6] is not None and "exceeds the max_price 1000000" in decisions[6].message


async def test_an_admin_override_survives_a_sync_and_deleting_it_lets_the_venue_rules_apply(
    app: FastAPI, client: httpx.AsyncClient, producer: Bus, settings: Settings
) -> None:
    assert (await client.post(SYNC, headers=admin())).status_code == 200
    override = {"instrument_id": INSTRUMENT, "min_notional": "100", "max_quantity": "1"}
    response = await client.put(RULES, json=override, headers=admin())
    assert response.status_code == 200, response.text
    assert (await client.post(SYNC, headers=admin())).status_code == 200

    got = await rules_of(client)
    assert D(got["rules"]["min_notional"]) == 100
    assert D(got["rules"]["price_step"]) == TICK  # the venue's steps still apply
    assert got["sources"] == {
        "price_step": "venue",
        "quantity_step": "venue",
        "min_quantity": "venue",
        "min_notional": "admin",
        "max_quantity": "admin",
        "max_price": "venue",
        "max_notional": "venue",
    }
    assert D(got["admin"]["min_notional"]) == 100 and got["admin"]["price_step"] is None
    assert D(got["venue"]["min_notional"]) == MIN_NOTIONAL

    await priced(app, producer)
    account = uuid4()
    under_admin = await decide(
        settings,
        producer,
        intent(account, "0.001"),  # notional 60
        intent(account, "1.5"),  # over the admin's max_quantity, under the venue's
    )
    assert reasons(under_admin) == ["INSTRUMENT_MINIMUM", "INSTRUMENT_MAXIMUM"]
    assert under_admin[0] is not None and "min_notional 100" in under_admin[0].message
    assert under_admin[1] is not None and "max_quantity 1 of" in under_admin[1].message

    deleted = await client.delete(RULES, params={"instrument_id": INSTRUMENT}, headers=admin())
    assert deleted.status_code == 204, deleted.text
    got = await rules_of(client)
    assert got["admin"] is None and D(got["rules"]["min_notional"]) == MIN_NOTIONAL
    assert reasons(await decide(settings, producer, intent(account, "0.001"))) == [None]

    again = await client.delete(RULES, params={"instrument_id": INSTRUMENT}, headers=admin())
    assert again.status_code == 404
    assert again.headers["content-type"].startswith("application/problem+json")


async def test_a_venue_that_is_down_answers_502_and_leaves_the_stored_rules_alone(
    client: httpx.AsyncClient, binance: FakeBinance
) -> None:
    assert (await client.post(SYNC, headers=admin())).status_code == 200
    before = await rules_of(client)

    binance.outage = True
    response = await client.post(SYNC, headers=admin())
    assert response.status_code == 502, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["type"] == "/problems/venue-unavailable"
    assert problem["status"] == 502
    assert list(problem["failed"]) == ["binance"] and problem["synced"] == []
    assert await rules_of(client) == before

    binance.outage = False
    assert (await client.post(SYNC, headers=admin())).status_code == 200


async def test_unknown_or_missing_exchanges_are_problems(client: httpx.AsyncClient) -> None:
    unknown = await client.post(f"{RULES}/sync?exchange=nosuchexchange", headers=admin())
    assert unknown.status_code == 422
    assert unknown.json()["type"] == "/problems/unknown-exchange"
    invalid = await client.post(f"{RULES}/sync?exchange=Not An Id", headers=admin())
    assert invalid.status_code == 422
    # None configured (the test settings) and none named: nothing to sync.
    none = await client.post(f"{RULES}/sync", headers=admin())
    assert none.status_code == 409


async def test_only_admins_change_rules(client: httpx.AsyncClient) -> None:
    for role in (as_(TRADER_ID, "trader"), viewer()):
        sync = await client.post(SYNC, headers=role)
        put = await client.put(
            RULES, json={"instrument_id": INSTRUMENT, "min_notional": "1"}, headers=role
        )
        delete = await client.delete(RULES, params={"instrument_id": INSTRUMENT}, headers=role)
        assert [sync.status_code, put.status_code, delete.status_code] == [403, 403, 403]
        assert sync.json()["type"] == "/problems/forbidden"
    assert (await client.post(SYNC)).status_code == 401
    untouched = await rules_of(client)
    assert (untouched["venue"], untouched["admin"]) == (None, None)  # nothing was written


async def test_the_service_syncs_at_start_and_runs_on_when_the_venue_is_down(
    settings: Settings, binance: FakeBinance
) -> None:
    configured = settings.model_copy(update={"venue_rules_exchanges": ["binance"]})
    async with app_client(create_app(configured, ccxt_config=ccxt_config(binance))) as client:

        async def synced() -> dict[str, Any] | None:
            got = await rules_of(client)
            return got if got["venue"] is not None else None

        got = await eventually(synced)  # no one asked: the start sync wrote them
        assert D(got["rules"]["min_notional"]) == MIN_NOTIONAL

    binance.outage = True
    async with app_client(create_app(configured, ccxt_config=ccxt_config(binance))) as client:
        # The start sync fails (logged, retried at the next refresh); the service runs on with
        # the rules it had.
        assert (await client.get("/health")).status_code == 200
        assert await rules_of(client) == got
        response = await client.post(f"{RULES}/sync", headers=admin())  # the configured ones
        assert response.status_code == 502
