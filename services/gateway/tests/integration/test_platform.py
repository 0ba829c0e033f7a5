"""Through the gateway only, with the real services behind it: a user's journey, the BOLA matrix
generated from the route table, API keys, and the caller's event stream."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from trademesh_bus import Bus
from trademesh_events.orders import OrderSubmitted
from trademesh_events.topics import get_topic
from trademesh_testing.tokens import bearer
from trademesh_testing.waiting import eventually

from trademesh_gateway.engine import READ_METHODS, ROUTES, Route

pytestmark = pytest.mark.integration

OWNED = [r for r in ROUTES if r.ownership in ("service", "account")]
INSTRUMENT = "binance:BTC/USDT"


async def test_a_user_signs_up_opens_an_account_and_reads_positions(platform: Any) -> None:
    gateway = platform.gateway
    user, headers = await platform.register()
    me = await gateway.get("/api/v1/auth/me", headers=headers)
    assert (me.status_code, me.json()["user_id"]) == (200, str(user))
    opened = await gateway.post(
        "/api/v1/accounts", json={"name": "paper", "cash": "10000"}, headers=headers
    )
    assert opened.status_code == 201, opened.text
    account = opened.json()["account_id"]
    pnl = await gateway.get(f"/api/v1/accounts/{account}/pnl", headers=headers)
    assert pnl.status_code == 200, pnl.text
    assert pnl.json()["positions"] == []
    risk = await gateway.get(f"/api/v1/accounts/{account}/risk", headers=headers)
    assert (risk.status_code, risk.json()["account_id"]) == (200, account)
    listed = await gateway.get("/api/v1/accounts", headers=headers)
    assert [a["account_id"] for a in listed.json()["items"]] == [account]
    assert "X-Request-ID" in pnl.headers


# ---- BOLA: every owned route, user B with user A's resource ------------------------------------


def _path(route: Route, ids: dict[str, str]) -> str:
    return "/api/v1" + re.sub(r"{(\w+)}", lambda m: ids[m.group(1)], route.path)


def _body(route: Route) -> Any:
    return {} if route.method not in READ_METHODS and route.method != "DELETE" else None


async def test_bola_matrix_from_the_route_table(platform: Any, seed: Any) -> None:
    """User B with user A's ids, on every route whose path names an owned resource: 404 or 403,
    and A's resources are unchanged (A still reads them). Generated from ROUTES, so a new owned
    route is covered as soon as it is in the table (the seeding must know its parameter)."""
    assert OWNED, "the route table has owned routes"
    gateway = platform.gateway
    alice, alice_headers = await platform.register()
    _bob, bob_headers = await platform.register()
    strategy = platform.apps["strategy"]
    ids = await seed(gateway, strategy, platform.settings, alice, alice_headers, INSTRUMENT)
    missing = {r.owned for r in OWNED} - set(ids)
    assert not missing, f"owned parameters without a seeded resource: {missing}"
    exercised: list[Route] = []
    for route in OWNED:
        response = await gateway.request(
            route.method, _path(route, ids), json=_body(route), headers=bob_headers
        )
        assert response.status_code in (403, 404), (route, response.status_code, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        exercised.append(route)
    assert exercised == OWNED
    # Alice's resources are still there and still hers
    for name, path in (
        ("account_id", f"/api/v1/accounts/{ids['account_id']}"),
        ("bot_id", f"/api/v1/bots/{ids['bot_id']}"),
        ("backtest_id", f"/api/v1/backtests/{ids['backtest_id']}"),
        ("grid_id", f"/api/v1/backtests/grids/{ids['grid_id']}"),
        ("optimization_id", f"/api/v1/optimizations/{ids['optimization_id']}"),
        ("client_order_id", f"/api/v1/orders/{ids['client_order_id']}"),
    ):
        assert (await gateway.get(path, headers=alice_headers)).status_code == 200, name
    keys = await gateway.get("/api/v1/api-keys", headers=alice_headers)
    assert [k["key_id"] for k in keys.json()] == [ids["key_id"]]
    waiting = await gateway.get(
        f"/api/v1/bots/{ids['bot_id']}/approvals",
        params={"status": "pending"},
        headers=alice_headers,
    )
    assert [a["approval_id"] for a in waiting.json()["items"]] == [ids["approval_id"]]
    channels = await gateway.get("/api/v1/notify/channels", headers=alice_headers)
    assert [c["id"] for c in channels.json()] == [ids["channel_id"]]
    # ...and a bot body naming Alice's account is refused for Bob before strategy sees it
    bot = await gateway.post(
        "/api/v1/bots",
        json={
            "strategy": "sma_cross",
            "instrument_id": INSTRUMENT,
            "timeframe": "1d",
            "account_id": ids["account_id"],
        },
        headers=bob_headers,
    )
    assert bot.status_code == 404
    assert bot.json()["title"] == "Unknown account"
    # The services behind the gateway check too (no service trusts the path it was sent on):
    # risk and strategy, called directly, ask the real execution whose the account is.
    account = ids["account_id"]
    for service, method, path, body in (
        ("risk", "GET", f"/api/v1/accounts/{account}", None),
        ("risk", "PUT", f"/api/v1/accounts/{account}/limits", {"max_position": "1"}),
        ("risk", "POST", f"/api/v1/accounts/{account}/kill-switch", {"engaged": True}),
        (
            "strategy",
            "POST",
            "/api/v1/bots",
            {
                "strategy": "sma_cross",
                "instrument_id": INSTRUMENT,
                "timeframe": "1d",
                "account_id": account,
            },
        ),
    ):
        transport = httpx.ASGITransport(app=platform.apps[service])
        async with httpx.AsyncClient(transport=transport, base_url="http://direct") as direct:
            refused = await direct.request(method, path, json=body, headers=bob_headers)
            assert refused.status_code == 404, (service, path, refused.text)
            assert refused.json()["title"] == "Unknown account"
    transport = httpx.ASGITransport(app=platform.apps["risk"])
    async with httpx.AsyncClient(transport=transport, base_url="http://direct") as direct:
        seen = await direct.get(f"/api/v1/accounts/{account}", headers=alice_headers)
        assert seen.status_code == 200, seen.text
        assert seen.json()["kill_switch"] is False  # Bob's switch was never pulled
        # A risk officer (admin) reaches every account's risk routes.
        admin = bearer(uuid.uuid4(), "admin")
        assert (await direct.get(f"/api/v1/accounts/{account}", headers=admin)).status_code == 200


async def test_mass_assignment_fields_are_refused_by_the_services(platform: Any) -> None:
    """The gateway adds nothing to bodies and forwards them as sent; ownership and role fields a
    client slips in are refused by the services' extra="forbid" models (422), never applied."""
    gateway = platform.gateway
    user, headers = await platform.register()
    for path, body in (
        ("/api/v1/accounts", {"name": "x", "cash": "1", "user_id": str(uuid.uuid4())}),
        ("/api/v1/api-keys", {"name": "x", "scopes": ["read"], "owner": str(uuid.uuid4())}),
        (
            "/api/v1/auth/register",
            {"email": "m@example.com", "password": "p" * 12, "role": "admin"},
        ),
    ):
        response = await gateway.post(path, json=body, headers=headers)
        assert response.status_code == 422, (path, response.text)
    assert (await gateway.get("/api/v1/accounts", headers=headers)).json()["items"] == []
    me = await gateway.get("/api/v1/auth/me", headers=headers)
    assert (me.json()["user_id"], me.json()["role"]) == (str(user), "trader")


async def test_an_api_key_works_within_its_scopes(platform: Any) -> None:
    gateway = platform.gateway
    _user, headers = await platform.register()
    keys = {}
    for scopes in (["read"], ["read", "trade"]):
        made = await gateway.post(
            "/api/v1/api-keys", json={"name": "+".join(scopes), "scopes": scopes}, headers=headers
        )
        assert made.status_code == 201, made.text
        keys[len(scopes)] = made.json()["api_key"]
    read_key, trade_key = keys[1], keys[2]
    api_keys = platform.gateway_app.state.runtime.proxy.api_keys
    before = api_keys.exchanges
    for _ in range(3):
        listed = await gateway.get("/api/v1/accounts", headers={"X-API-Key": read_key})
        assert listed.status_code == 200, listed.text
    assert api_keys.exchanges == before + 1  # exchanged once, then cached
    refused = await gateway.post(
        "/api/v1/accounts", json={"name": "x", "cash": "1"}, headers={"X-API-Key": read_key}
    )
    assert refused.status_code == 403
    opened = await gateway.post(
        "/api/v1/accounts",
        json={"name": "x", "cash": "1"},
        headers={"Authorization": f"ApiKey {trade_key}"},
    )
    assert opened.status_code == 201, opened.text
    bad = await gateway.get("/api/v1/accounts", headers={"X-API-Key": read_key + "x"})
    assert bad.status_code == 401
    assert bad.headers["WWW-Authenticate"].startswith("ApiKey")


# ---- the event stream --------------------------------------------------------------------------


class Stream:
    """The events one client's stream has shown so far."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.connected = asyncio.Event()
        self.comments = 0

    async def read(self, base: str, headers: dict[str, str]) -> None:
        async with (
            httpx.AsyncClient(base_url=base, timeout=None) as http,
            http.stream("GET", "/api/v1/events/stream", headers=headers) as response,
        ):
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            async for line in response.aiter_lines():
                if line.startswith(":"):
                    self.comments += 1
                    self.connected.set()
                elif line.startswith("data:"):
                    self.events.append(json.loads(line[5:].strip()))


async def test_a_stream_shows_its_users_own_events_only(platform: Any, serve: Any) -> None:
    gateway = platform.gateway
    alice, alice_headers = await platform.register()
    bob, bob_headers = await platform.register()
    streams = {alice: Stream(), bob: Stream()}
    bus = Bus(platform.settings, "test-execution", telemetry=False)
    await bus.start()
    async with serve(platform.gateway_app) as base:
        tasks = [
            asyncio.create_task(streams[alice].read(base, alice_headers)),
            asyncio.create_task(streams[bob].read(base, bob_headers)),
        ]
        try:
            await asyncio.wait_for(
                asyncio.gather(*(s.connected.wait() for s in streams.values())), 10
            )
            published: dict[uuid.UUID, set[str]] = {alice: set(), bob: set()}

            async def publish_until_seen() -> bool | None:
                # The gateway reads from the end of the topics once its group has its
                # partitions: publish again until each stream has shown one of its own.
                for user in (bob, alice):
                    event = OrderSubmitted(
                        account_id=uuid.uuid4(),
                        user_id=user,
                        client_order_id=f"gw-{uuid.uuid4().hex[:12]}",
                        instrument_id=INSTRUMENT,
                        ts=datetime.now(UTC),
                    )
                    envelope = await bus.publish(event, topic=get_topic("orders.events.v1"))
                    published[user].add(str(envelope.id))
                await asyncio.sleep(0.3)
                return True if all(s.events for s in streams.values()) else None

            await eventually(publish_until_seen, timeout=60)
            await asyncio.sleep(1.0)  # whatever else is on its way arrives
            for user, stream in streams.items():
                ids = {e["id"] for e in stream.events}
                assert ids and ids <= published[user], user
                other = next(u for u in streams if u != user)
                assert not ids & published[other]
                assert all(e["event"]["user_id"] == str(user) for e in stream.events)
                assert stream.events[0]["type"] == "trademesh.order.submitted"
                assert stream.comments >= 2  # "connected", then heartbeats
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await bus.stop()
    assert (await gateway.get("/api/v1/events/stream")).status_code == 401


async def test_a_manual_order_is_decided_by_risk_and_placed_by_execution(platform: Any) -> None:
    """POST /api/v1/orders publishes the caller's order as an intent: risk approves or denies it
    (with its reason) and execution places and fills the approved one, as for a bot's."""
    from trademesh_events.orders import OrderDenied
    from trademesh_testing.samples import decoded, price_bar, read_all

    gateway = platform.gateway
    _user, headers = await platform.register()
    opened = await gateway.post(
        "/api/v1/accounts", json={"name": "manual", "cash": "10000"}, headers=headers
    )
    account = opened.json()["account_id"]
    instrument = f"binance:M{uuid.uuid4().hex[:8].upper()}/USDT"
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    bus = Bus(platform.settings, "test-market-data", telemetry=False)
    await bus.start()
    try:
        await bus.publish(price_bar(instrument, "100", day=today - timedelta(days=1)))
        prices = platform.apps["risk"].state.runtime.prices

        async def priced() -> bool:
            return prices.get(instrument) is not None

        await eventually(priced)
        order = {"account_id": account, "instrument_id": instrument, "side": "buy"}
        bad = await gateway.post(
            "/api/v1/orders", json={**order, "quantity": "1"}, headers=headers
        )  # a limit order (the default type) with no limit price
        assert bad.status_code == 422 and bad.json()["title"] == "Invalid order", bad.text
        other_users = await gateway.post(
            "/api/v1/orders",
            json={**order, "quantity": "1", "limit_price": "101"},
            headers=(await platform.register())[1],
        )
        assert other_users.status_code == 404
        placed = await gateway.post(
            "/api/v1/orders",
            json={**order, "quantity": "1", "limit_price": "101", "client_order_id": "man-t1"},
            headers=headers,
        )
        assert placed.status_code == 202, placed.text
        client_order_id = placed.json()["client_order_id"]
        assert placed.headers["location"] == f"/api/v1/orders/{client_order_id}"

        async def stored() -> dict[str, Any] | None:
            got = await gateway.get(f"/api/v1/orders/{client_order_id}", headers=headers)
            return got.json() if got.status_code == 200 else None

        async def working() -> dict[str, Any] | None:
            # Readable at once (recorded before its intent is published), working once placed.
            got = await stored()
            return got if got and got["status"] == "ACCEPTED" else None

        await eventually(working)
        # The next day's bar trades through the limit: the paper venue fills the order.
        await bus.publish(price_bar(instrument, "100", day=today + timedelta(days=1)))

        async def filled() -> dict[str, Any] | None:
            got = await stored()
            return got if got and got["status"] == "FILLED" else None

        done = await eventually(filled)
        assert (done["side"], done["order_type"], done["filled"]) == ("buy", "LIMIT", "1")
        pnl = (await gateway.get(f"/api/v1/accounts/{account}/pnl", headers=headers)).json()
        assert [(p["instrument_id"], p["quantity"]) for p in pnl["positions"]] == [
            (instrument, "1")
        ]

        # Above the account's limit: denied by risk, with its reason, and never placed.
        limits = await gateway.put(
            f"/api/v1/accounts/{account}/limits",
            json={"max_order_quantity": "5"},
            headers=headers,
        )
        assert limits.status_code == 200, limits.text
        too_big = await gateway.post(
            "/api/v1/orders",
            json={**order, "quantity": "10", "limit_price": "101"},
            headers=headers,
        )
        assert too_big.status_code == 202
        refused = too_big.json()["client_order_id"]

        async def denial() -> OrderDenied | None:
            records = await read_all(
                platform.settings.kafka_bootstrap, "orders.denied.v1", expect=1
            )
            found = [
                e
                for e in decoded("orders.denied.v1", records)
                if isinstance(e, OrderDenied) and e.client_order_id == refused
            ]
            return found[0] if found else None

        assert (await eventually(denial)).reason.value == "MAX_ORDER_QUANTITY"

        async def kept() -> dict[str, Any] | None:  # never placed, and its owner reads why
            got = (await gateway.get(f"/api/v1/orders/{refused}", headers=headers)).json()
            return got if got["status"] == "DENIED" else None

        denied = await eventually(kept)
        assert (denied["reason_code"], denied["filled"]) == ("MAX_ORDER_QUANTITY", "0")
    finally:
        await bus.stop()
