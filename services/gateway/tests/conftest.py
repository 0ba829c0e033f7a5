"""Fixtures of the gateway tests: settings on the test engines, the running app, an HTTP client,
and the platform behind it.

The engines come from the trademesh pytest plugin (trademesh_testing): a real Postgres and a real
Kafka-protocol broker, started once per session and only when a test asks for them.

Two gateways:
- `app`/`client`: the gateway with a recording transport in place of every service (it answers
  200 and keeps each request), for what the gateway decides alone: roles, scopes, credentials,
  limits, sizes, headers. Its token verifier trusts the test signer (`trademesh_testing.tokens`).
- `platform`: the real services in process (auth with open registration, execution, strategy,
  risk, each on a schema of its own), reached through `httpx.ASGITransport`, and a gateway that
  verifies tokens against auth's JWKS URL through that same routing: users register and log in
  for real.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from trademesh_keystore import new_master_key
from trademesh_testing.http import app_client, served
from trademesh_testing.plugin import SettingsMaker
from trademesh_testing.tokens import signer

from trademesh_gateway.app import create_app
from trademesh_gateway.config import Settings
from trademesh_gateway.engine import SERVICES, Service

GENEROUS = "10000/second"


@pytest.fixture
def settings(make_settings: SettingsMaker) -> Settings:
    """Settings on the session's engines, with a consumer group of this test's own, limits
    high enough that only the rate-limit tests meet them, and /metrics on any free port."""
    return make_settings(
        Settings,
        metrics_port=0,
        rate_limit_user=GENEROUS,
        rate_limit_ip=GENEROUS,
        sse_heartbeat_s=0.5,
    )


@dataclass
class Recorder:
    """Every service at once: keeps each request and answers 200 with a small JSON body (auth's
    JWKS path answers the test signer's key set)."""

    requests: list[httpx.Request] = field(default_factory=list)

    def handler(self, service: Service) -> Callable[[httpx.Request], httpx.Response]:
        def handle(request: httpx.Request) -> httpx.Response:
            if request.url.path == "/.well-known/jwks.json":
                return httpx.Response(200, json=signer().jwks())
            request.read()
            self.requests.append(request)
            return httpx.Response(
                200,
                json={"service": service, "path": request.url.path},
                headers={"Connection": "close", "X-Upstream": service},
            )

        return handle

    def transports(self) -> dict[Service, httpx.AsyncBaseTransport]:
        return {s: httpx.MockTransport(self.handler(s)) for s in SERVICES}


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def app(settings: Settings, recorder: Recorder) -> FastAPI:
    return create_app(settings, transports=recorder.transports())


# ---- the platform: real services in process ---------------------------------------------------


@dataclass
class Platform:
    """The services, and a client on the gateway in front of them."""

    gateway: httpx.AsyncClient
    gateway_app: FastAPI
    apps: dict[Service, FastAPI]
    settings: Settings

    async def register(self) -> tuple[uuid.UUID, dict[str, str]]:
        return await register(self.gateway)


async def register(gateway: httpx.AsyncClient) -> tuple[uuid.UUID, dict[str, str]]:
    """A new user registered and logged in through the gateway: (user id, bearer headers)."""
    email = f"u{uuid.uuid4().hex[:12]}@example.com"
    password = "correct horse battery staple"
    made = await gateway.post("/api/v1/auth/register", json={"email": email, "password": password})
    assert made.status_code == 201, made.text
    login = await gateway.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert login.status_code == 200, login.text
    token = login.json()["access_token"]
    return uuid.UUID(made.json()["user_id"]), {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def platform(
    make_settings: SettingsMaker,
    database_url: str,
    settings: Settings,
) -> AsyncIterator[Platform]:
    from trademesh_auth.app import create_app as auth_app
    from trademesh_auth.config import Settings as AuthSettings
    from trademesh_execution.app import create_app as execution_app
    from trademesh_execution.config import Settings as ExecutionSettings
    from trademesh_notify.app import create_app as notify_app
    from trademesh_notify.config import Settings as NotifySettings
    from trademesh_risk.app import create_app as risk_app
    from trademesh_risk.config import Settings as RiskSettings
    from trademesh_strategy.app import create_app as strategy_app
    from trademesh_strategy.config import Settings as StrategySettings

    schemas: list[str] = []

    def made(cls: type, **extra: Any) -> Any:
        schema = f"gw_{uuid.uuid4().hex[:10]}"
        schemas.append(schema)
        return make_settings(cls, database_schema=schema, **extra)

    keystore = {
        "keystore_keys": SecretStr(json.dumps({"t1": new_master_key().get_secret_value()})),
        "keystore_current_key": "t1",
    }
    async with AsyncExitStack() as stack:
        auth = auth_app(made(AuthSettings, registration="open", **keystore))
        await stack.enter_async_context(app_client(auth))
        transport = httpx.ASGITransport(app=auth)
        async with httpx.AsyncClient(transport=transport, base_url="http://auth") as http:
            auth_keys = (await http.get("/.well-known/jwks.json")).json()["keys"]
        # The services trust auth's keys and the test signer's (for tokens minted by tests).
        jwks = json.dumps({"keys": [*auth_keys, *signer().jwks()["keys"]]})
        apps: dict[Service, FastAPI] = {"auth": auth}
        apps["execution"] = execution_app(made(ExecutionSettings, auth_jwks=jwks))
        # risk and strategy ask the real execution whose an account is.
        to_execution = httpx.ASGITransport(app=apps["execution"])
        apps["risk"] = risk_app(
            made(RiskSettings, auth_jwks=jwks, execution_url="http://execution"),
            execution_transport=to_execution,
        )
        apps["strategy"] = strategy_app(
            made(
                StrategySettings,
                auth_jwks=jwks,
                outbox_poll_interval_s=0.2,
                backtest_poll_interval_s=0.2,
                execution_url="http://execution",
            ),
            execution_transport=to_execution,
        )
        # Webhooks on loopback allowed: the tests' receivers listen there.
        apps["notify"] = notify_app(
            made(
                NotifySettings,
                auth_jwks=jwks,
                webhook_allowed_address_kinds=frozenset({"loopback"}),
                **keystore,
            )
        )
        for service, app in apps.items():
            if service != "auth":
                await stack.enter_async_context(app_client(app))
        # The gateway verifies against auth's JWKS URL, as in production, through the ASGI route.
        gateway_settings = settings.model_copy(
            update={"auth_jwks": None, "auth_jwks_url": "http://auth/.well-known/jwks.json"}
        )
        transports: dict[Service, httpx.AsyncBaseTransport] = {
            s: httpx.ASGITransport(app=a) for s, a in apps.items()
        }
        gateway_app = create_app(gateway_settings, transports=transports)
        gateway = await stack.enter_async_context(app_client(gateway_app))
        yield Platform(gateway, gateway_app, apps, gateway_settings)
    await drop_schemas(database_url, schemas)


async def seed_owned(
    gateway: httpx.AsyncClient,
    strategy: FastAPI,
    settings: Any,
    user: uuid.UUID,
    headers: dict[str, str],
    instrument: str,
) -> dict[str, str]:
    """One resource of each kind a path names, all `user`'s: through the gateway where the real
    flow is short (account, API key), else through the owning service's own store (backtest,
    grid, optimisation, bot), and an order placed the way orders come: risk's approval on the bus
    (a limit order far from the market, so it stays open)."""
    from datetime import UTC, datetime
    from decimal import Decimal

    from trademesh_bus import Bus
    from trademesh_events.bots import BotState
    from trademesh_events.ids import make_client_order_id
    from trademesh_events.orders import OrderApproved, OrderType, SubmitOrder
    from trademesh_events.topics import get_topic
    from trademesh_testing.waiting import eventually
    from trademesh_trading.backtest import Sizing

    from trademesh_strategy.backtests.requests import BacktestRequest, GridRequest
    from trademesh_strategy.engine import OrderRequest, intent
    from trademesh_strategy.optimizations import OptimizationRequest
    from trademesh_strategy.store import BotRecord

    ids: dict[str, str] = {}
    made = await gateway.post(
        "/api/v1/accounts", json={"name": "seeded", "cash": "10000"}, headers=headers
    )
    assert made.status_code == 201, made.text
    ids["account_id"] = made.json()["account_id"]
    key = await gateway.post(
        "/api/v1/api-keys", json={"name": "seeded", "scopes": ["read"]}, headers=headers
    )
    assert key.status_code == 201, key.text
    ids["key_id"] = key.json()["key_id"]
    channel = await gateway.post(
        "/api/v1/notify/channels",
        json={"url": "http://127.0.0.1:9/hook", "events": ["fill"]},
        headers=headers,
    )
    assert channel.status_code == 201, channel.text
    ids["channel_id"] = channel.json()["id"]
    ids["event_id"] = str(uuid.uuid4())  # a delivery's event: the channel is what is owned
    runtime = strategy.state.runtime
    request = BacktestRequest(
        strategy="sma_cross",
        instrument_id=instrument,
        timeframe="1d",
        start=datetime(2024, 1, 1, tzinfo=UTC),
        end=datetime(2024, 2, 1, tzinfo=UTC),
    )
    ids["backtest_id"] = str((await runtime.backtests.insert(user, request)).backtest_id)
    grid = GridRequest(**request.model_dump(), grid={"fast": [5, 10]})
    ids["grid_id"] = str(await runtime.backtests.insert_grid(user, grid, [request]))
    optimization = OptimizationRequest(
        **request.model_dump(), space={"fast": {"low": 5, "high": 9}}
    )
    ids["optimization_id"] = str(
        (await runtime.optimizations.insert(user, optimization, 5)).optimization_id
    )
    now = datetime.now(UTC)
    bot = BotRecord(
        bot_id=uuid.uuid4(),
        user_id=user,
        account_id=uuid.UUID(ids["account_id"]),
        name="seeded",
        strategy="sma_cross",
        params={},
        instrument_id=instrument,
        timeframe="1d",
        venue="paper",
        sizing=Sizing(kind="quantity", value=Decimal(1)),
        capital=Decimal(1000),
        state=BotState.STOPPED,
        error=None,
        warm_from=None,
        last_bar_time=None,
        bars_seen=0,
        position=Decimal(0),
        cash=Decimal(1000),
        created_at=now,
        updated_at=now,
        approval="required",
        approval_expiry_s=3600,
    )
    # An order of the bot waiting for its owner's approval (the bot in approval mode).
    held = OrderRequest(
        make_client_order_id(bot.bot_id, now, "seed"), now, "seed", "buy", Decimal(1), "market",
        None, None,
    )  # fmt: skip
    async with runtime.db.transaction() as conn:
        await runtime.bots.insert_bot(conn, bot)
        run_id = uuid.uuid4()
        await runtime.bots.open_run(conn, bot.bot_id, run_id)
        await runtime.bots.add_order(conn, bot.bot_id, run_id, held)
        await runtime.runtime._request_approval(conn, bot, intent(bot.config, held, now))
        approval_id = await conn.fetchval(
            "SELECT approval_id FROM approvals WHERE bot_id = $1", bot.bot_id
        )
    ids["bot_id"] = str(bot.bot_id)
    ids["approval_id"] = str(approval_id)
    order = SubmitOrder(
        account_id=uuid.UUID(ids["account_id"]),
        user_id=user,
        client_order_id=f"seed-{uuid.uuid4().hex[:16]}",
        instrument_id=instrument,
        side="buy",
        order_type=OrderType.LIMIT,
        quantity=Decimal("0.01"),
        limit_price=Decimal(1),
        source="manual",
        created_at=now,
    )
    bus = Bus(settings, "test-risk", telemetry=False)
    await bus.start()
    try:
        approved = OrderApproved(account_id=order.account_id, order=order, approved_at=now)
        await bus.publish(approved, topic=get_topic("orders.approved.v1"))
    finally:
        await bus.stop()
    ids["client_order_id"] = order.client_order_id

    async def order_stored() -> bool | None:
        got = await gateway.get(f"/api/v1/orders/{order.client_order_id}", headers=headers)
        return True if got.status_code == 200 else None

    await eventually(order_stored, timeout=30)
    return ids


@pytest.fixture
def seed() -> Callable[..., Any]:
    """seed_owned, for the platform tests (a conftest's functions cannot be imported)."""
    return seed_owned


async def drop_schemas(database_url: str, schemas: list[str]) -> None:
    """The services' test schemas, once their apps are stopped."""
    conn = await asyncpg.connect(database_url)
    try:
        for schema in schemas:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture
def serve() -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[str]]:
    """`trademesh_testing.http.served`: the app on a loopback port, for the integration tests."""
    return served


@pytest.fixture
def schemas_dropper() -> Callable[[str, list[str]], Any]:
    """drop_schemas, for the integration tests."""
    return drop_schemas
