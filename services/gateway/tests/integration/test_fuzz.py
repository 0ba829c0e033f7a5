"""Schemathesis against the gateway's published OpenAPI document (its /openapi.json), as a
signed-in trader with a paper account: no 5xx, every status code documented, every body of its
documented content type and schema.

The published document describes each route of the table by the service that serves it (its
parameters, body and answers) under the gateway's path, with the gateway's own errors (RFC 9457
problems): the responses checked here are the services' answers as a client meets them.

The platform fixture's auth, execution and risk serve; market-data and a strategy that reaches it
are added here (the platform's own strategy has no market-data to ask), so that the catalogue,
history and backtest routes answer as deployed rather than with their 502 and 503 by design.
audit is not run: its routes are admin routes, which end at the gateway's 403 for a trader, and
without its document they are fuzzed as the gateway alone describes them. The fuzzing runs in a
worker thread (schemathesis calls are synchronous), against a uvicorn server in the test's event
loop, where the services' connections and consumers live.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from trademesh_testing.fuzzing import IGNORE_RANDOM_WARNING, Target, errors_are_problems, fuzz
from trademesh_testing.http import app_client

from trademesh_gateway.app import create_app
from trademesh_gateway.engine import ROUTES, Service

pytestmark = [pytest.mark.integration, pytest.mark.slow]

INSTRUMENT = "binance:BTC/USDT"
#: Examples per operation: enough for each operation to meet the seeded ids, invalid bodies and
#: random ids, few enough for the file to run in about a minute on two cores.
EXAMPLES = 10
STREAM = "/api/v1/events/stream"  # never ends: fuzzing it would hang, test_platform covers it


# ---- the stack: the platform, plus market-data and a strategy that reaches it -----------------


@dataclass
class Stack:
    base_url: str
    headers: dict[str, str]
    #: Path parameter values that name the trader's own resources.
    ids: dict[str, str]
    max_body_bytes: int


@pytest.fixture
async def stack(
    platform: Any,
    service_settings: Callable[..., Any],
    database_url: str,
    seed: Any,
    serve: Any,
    schemas_dropper: Any,
) -> AsyncIterator[Stack]:
    """The platform's auth, execution and risk, with market-data and a strategy that asks it,
    behind a gateway of their own on a loopback port; a trader signed in, owning one resource
    of each kind a path names."""
    from trademesh_market_data.app import create_app as market_data_app
    from trademesh_market_data.config import Settings as MarketDataSettings
    from trademesh_strategy.app import create_app as strategy_app
    from trademesh_strategy.config import Settings as StrategySettings

    jwks = (await platform.gateway.get("/api/v1/auth/jwks")).json()
    schemas: list[str] = []

    def made(cls: type, **extra: Any) -> Any:
        schemas.append(f"fz_{uuid.uuid4().hex[:10]}")
        return service_settings(
            cls,
            http_port=0,
            consumer_group=f"test-{uuid.uuid4().hex[:10]}",
            database_schema=schemas[-1],
            auth_jwks=json.dumps(jwks),
            **extra,
        )

    apps: dict[Service, FastAPI] = dict(platform.apps)
    async with AsyncExitStack() as exits:
        apps["market-data"] = market_data_app(made(MarketDataSettings))
        await exits.enter_async_context(app_client(apps["market-data"]))
        apps["strategy"] = strategy_app(
            made(
                StrategySettings,
                execution_url="http://execution",
                backtest_poll_interval_s=0.2,
                outbox_poll_interval_s=0.2,
            ),
            market_transport=httpx.ASGITransport(app=apps["market-data"]),
            execution_transport=httpx.ASGITransport(app=apps["execution"]),
        )
        await exits.enter_async_context(app_client(apps["strategy"]))
        transports: dict[Service, httpx.AsyncBaseTransport] = {
            s: httpx.ASGITransport(app=a) for s, a in apps.items()
        }
        transports["audit"] = httpx.MockTransport(_refused)  # not run here (see above)
        gateway = create_app(
            platform.settings.model_copy(
                update={"consumer_group": f"test-{uuid.uuid4().hex[:10]}"}
            ),
            transports=transports,
        )
        http = await exits.enter_async_context(app_client(gateway))
        user, headers = await platform.register()
        seeded = await seed(http, apps["strategy"], platform.settings, user, headers, INSTRUMENT)
        ids = {"name": "sma_cross", **seeded}
        base_url = await exits.enter_async_context(serve(gateway))
        yield Stack(base_url, headers, ids, platform.settings.max_body_bytes)
    await schemas_dropper(database_url, schemas)


def _refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


@pytest.mark.filterwarnings(IGNORE_RANDOM_WARNING)
async def test_fuzzing_the_published_document_meets_no_server_error_and_no_broken_contract(
    stack: Stack,
) -> None:
    """Whatever shape a request takes, bad input included (trademesh_testing.fuzzing): no 5xx,
    every status code documented, every body of its documented content type and schema (a 2xx
    the service's model, an error a problem)."""
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        published = await http.get("/openapi.json")
    assert published.status_code == 200, published.text
    document = published.json()
    del document["paths"][STREAM]
    target = Target(
        stack.base_url,
        stack.headers,
        stack.ids,
        # bots and manual orders name the trader's account: else the gateway's ownership check
        # answers all of them with a 404
        body={"account_id": stack.ids["account_id"]},
        # deleting the trader's account would leave the rest nothing to reach
        spare=frozenset({"DELETE /api/v1/accounts/{account_id}"}),
    )
    run = await asyncio.to_thread(
        fuzz,
        "the published document",
        document,
        target,
        examples=EXAMPLES,
        checks=[
            not_a_server_error,
            errors_are_problems,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
        max_body_bytes=stack.max_body_bytes,
    )
    assert not run.failures, run.report()
    # Every route of the table was fuzzed (with /health, /ready and /about, less the stream),
    # each with enough cases...
    assert run.operations == len(ROUTES) + 3
    assert run.examples >= 8 * run.operations, run.table()
    # ...and the requests did not all stop at the gateway's doors (401, 403, 404, 422): most of
    # the routes a trader may call served some of them.
    assert len(run.served) >= 30, run.table()
