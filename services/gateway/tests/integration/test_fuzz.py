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
import re
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
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
        yield Stack(base_url, headers, ids)
    await schemas_dropper(database_url, schemas)


def _refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


# ---- the fuzzing ----------------------------------------------------------------------------------


@dataclass
class Run:
    """What the fuzzing of one document saw."""

    name: str
    operations: int = 0
    examples: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    by_operation: dict[str, Counter[int]] = field(default_factory=dict)
    #: Operations that answered a 2xx at least once: a request got past every check on the way
    #: and a handler served it.
    served: set[str] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)

    def report(self) -> str:
        shown = "\n\n".join(self.failures[:15])
        return (
            f"{self.name}: {len(self.failures)} failing cases in {self.examples} examples of "
            f"{self.operations} operations (statuses {dict(self.statuses)}):\n\n{shown}"
        )

    def table(self) -> str:
        return "\n".join(f"  {op}: {dict(seen)}" for op, seen in sorted(self.by_operation.items()))


def _describe(label: str, response: schemathesis.Response, group: FailureGroup) -> str:
    titles = "; ".join(sorted({failure.title for failure in group.exceptions}))
    request = response.request
    body = (
        request.body.decode(errors="replace") if isinstance(request.body, bytes) else request.body
    )
    content_type = ", ".join(response.headers.get("content-type", []))
    return (
        f"{label} -> {response.status_code} {content_type}: {titles}\n"
        f"  request: {request.method} {request.url} {str(body)[:300]}\n"
        f"  response: {response.text[:500]}"
    )


def _owned(account_id: str) -> Callable[[Any], Any]:
    """A case whose JSON object body names an account (bots, manual orders) made to name the
    trader's: else the gateway's ownership check answers all of them with a 404."""

    def own(case: Any) -> Any:
        if isinstance(case.body, dict) and "account_id" in case.body:
            case.body["account_id"] = account_id
        return case

    return own


def _strategies(operation: Any, ids: dict[str, str]) -> Iterator[Any]:
    """Valid and invalid cases with random values, and with the trader's own ids in the path
    and body: those reach the services' handlers rather than stop at a 404."""
    yield operation.as_strategy(GenerationMode.POSITIVE)
    yield operation.as_strategy(GenerationMode.NEGATIVE)
    if operation.method.upper() == "DELETE" and operation.path.endswith("/accounts/{account_id}"):
        return  # deleting the trader's account would leave the rest nothing to reach
    own = {p: ids[p] for p in re.findall(r"{(\w+)}", operation.path) if p in ids}
    owned = _owned(ids["account_id"])
    for mode in (GenerationMode.POSITIVE, GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        yield operation.as_strategy(mode, path_parameters=own or None).map(owned)


def fuzz(
    name: str, document: dict[str, Any], stack: Stack, examples: int, checks: list[Any]
) -> Run:
    """Every operation of `document`, up to `examples` cases each (derandomized: the same cases
    every run), each response through `checks`. Failures are collected, not raised: no shrinking,
    and the report shows every operation that failed."""
    schema = schemathesis.openapi.from_dict(document)
    run = Run(name)
    with requests.Session() as session:
        for result in schema.get_all_operations():
            if isinstance(result, Err):
                raise result.err()  # an operation schemathesis cannot read: none would be fuzzed
            operation = result.ok()
            run.operations += 1
            _fuzz_operation(operation, run, session, stack, examples, checks)
    return run


def _fuzz_operation(
    operation: Any,
    run: Run,
    session: requests.Session,
    stack: Stack,
    examples: int,
    checks: list[Any],
) -> None:
    label = operation.label
    seen = run.by_operation.setdefault(label, Counter())

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=st.one_of(list(_strategies(operation, stack.ids))))
    def one(case: Any) -> None:
        response = case.call(
            base_url=stack.base_url, session=session, headers=stack.headers, timeout=30
        )
        run.examples += 1
        run.statuses[response.status_code] += 1
        seen[response.status_code] += 1
        if 200 <= response.status_code < 300:
            run.served.add(label)
        try:
            case.validate_response(response, checks=checks, headers=stack.headers)
        except FailureGroup as group:
            run.failures.append(_describe(label, response, group))

    one()


# The services, in the test's event loop, draw from the global `random` (the Kafka client's
# jitter, for one) while hypothesis generates in the worker thread; hypothesis takes the changed
# state for a strategy's own use of `random`.
@pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")
async def test_fuzzing_the_published_document_meets_no_server_error_and_no_broken_contract(
    stack: Stack,
) -> None:
    """Whatever shape a request takes: no 5xx, every status code documented, every body of its
    documented content type and schema (a 2xx the service's model, an error a problem)."""
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        published = await http.get("/openapi.json")
    assert published.status_code == 200, published.text
    document = published.json()
    del document["paths"][STREAM]
    run = await asyncio.to_thread(
        fuzz,
        "the published document",
        document,
        stack,
        EXAMPLES,
        [
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
    assert not run.failures, run.report()
    # Every route of the table was fuzzed (with /health, /ready and /about, less the stream),
    # each with enough cases...
    assert run.operations == len(ROUTES) + 3
    assert run.examples >= 8 * run.operations, run.table()
    # ...and the requests did not all stop at the gateway's doors (401, 403, 404, 422): most of
    # the routes a trader may call served some of them.
    assert len(run.served) >= 30, run.table()
