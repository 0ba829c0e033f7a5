"""/health, /ready (with the READY gauge) and /metrics (series labelled by route template)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import APIRouter, FastAPI
from prometheus_client import CollectorRegistry, Gauge
from trademesh_http import create_http_app
from trademesh_observability.metrics import REGISTRY

from .conftest import add_demo_routes, make_client

pytestmark = pytest.mark.unit

PROBLEM_JSON = "application/problem+json"


async def _ok() -> None:
    return None


async def _refused() -> None:
    raise ConnectionRefusedError("postgresql://trader:PLAINTEXT-PW@db:5432/orders refused")


async def _hangs() -> None:
    await asyncio.sleep(5)


def _ready_gauge(service: str, check: str) -> float | None:
    return REGISTRY.get_sample_value("trademesh_ready", {"service": service, "check": check})


def _requests(service: str, method: str, route: str, status: str) -> float | None:
    labels = {"service": service, "method": method, "route": route, "status": status}
    return REGISTRY.get_sample_value("trademesh_http_requests_total", labels)


# --- /health ---------------------------------------------------------------------------------


async def test_health_answers_200(client: httpx.AsyncClient, service: str) -> None:
    response = await client.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "service": service}


# --- /ready ----------------------------------------------------------------------------------


async def test_ready_200_when_all_checks_pass(service: str) -> None:
    app = create_http_app(service=service, readiness={"db": _ok, "kafka": _ok})
    async with make_client(app) as client:
        response = await client.get("/ready")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "service": service,
        "checks": {"db": "ok", "kafka": "ok"},
    }
    assert _ready_gauge(service, "db") == 1.0
    assert _ready_gauge(service, "kafka") == 1.0


async def test_ready_200_without_checks(service: str) -> None:
    async with make_client(create_http_app(service=service)) as client:
        response = await client.get("/ready")

    assert response.status_code == 200
    assert response.json()["checks"] == {}


async def test_ready_503_names_the_raising_check(service: str) -> None:
    app = create_http_app(service=service, readiness={"db": _refused, "kafka": _ok})
    async with make_client(app) as client:
        response = await client.get("/ready")

    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["status"] == 503
    assert body["title"] == "Not ready"
    assert body["type"] == "about:blank"
    assert body["instance"] == "/ready"
    assert "db" in body["detail"]
    assert "kafka" not in body["detail"]
    assert body["checks"] == {"db": "ConnectionRefusedError", "kafka": "ok"}
    assert body["request_id"] == response.headers["x-request-id"]
    # Only the error type: the message carries a connection string.
    assert "PLAINTEXT-PW" not in response.text
    assert _ready_gauge(service, "db") == 0.0
    assert _ready_gauge(service, "kafka") == 1.0


async def test_ready_503_when_a_check_exceeds_the_timeout(service: str) -> None:
    app = create_http_app(
        service=service, readiness={"broker": _hangs, "db": _ok}, ready_timeout_s=0.1
    )
    async with make_client(app) as client:
        started = time.perf_counter()
        response = await client.get("/ready")
        elapsed = time.perf_counter() - started

    assert elapsed < 2.0
    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert "broker" in body["detail"]
    assert body["checks"] == {"broker": "no answer within 0.1s", "db": "ok"}
    assert _ready_gauge(service, "broker") == 0.0
    assert _ready_gauge(service, "db") == 1.0


async def test_ready_checks_run_concurrently(service: str) -> None:
    async def slowish() -> None:
        await asyncio.sleep(0.15)

    app = create_http_app(
        service=service,
        readiness={"a": slowish, "b": slowish, "c": slowish},
        ready_timeout_s=0.5,
    )
    async with make_client(app) as client:
        started = time.perf_counter()
        response = await client.get("/ready")
        elapsed = time.perf_counter() - started

    assert response.status_code == 200
    assert elapsed < 0.4


async def test_ready_gauge_follows_recovery(service: str) -> None:
    state = {"up": False}

    async def flaky() -> None:
        if not state["up"]:
            raise OSError("down")

    app = create_http_app(service=service, readiness={"db": flaky})
    async with make_client(app) as client:
        first = await client.get("/ready")
        assert _ready_gauge(service, "db") == 0.0
        state["up"] = True
        second = await client.get("/ready")

    assert (first.status_code, second.status_code) == (503, 200)
    assert first.json()["checks"] == {"db": "OSError"}
    assert _ready_gauge(service, "db") == 1.0


async def test_ready_with_lifespan_managed_dependency(service: str) -> None:
    events: list[str] = []
    pool: dict[str, bool] = {}

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        pool["open"] = True
        events.append("startup")
        yield
        pool["open"] = False
        events.append("shutdown")

    async def pool_open() -> None:
        if not pool.get("open"):
            raise RuntimeError("pool closed")

    app = create_http_app(service=service, readiness={"pool": pool_open}, lifespan=lifespan)
    async with LifespanManager(app) as manager, make_client(manager.app) as client:
        response = await client.get("/ready")
        assert events == ["startup"]

    assert response.status_code == 200
    assert events == ["startup", "shutdown"]
    assert _ready_gauge(service, "pool") == 1.0


# --- /metrics --------------------------------------------------------------------------------


async def test_metrics_labelled_by_route_template(client: httpx.AsyncClient, service: str) -> None:
    for item_id in (1, 2, 3):
        assert (await client.get(f"/items/{item_id}")).status_code == 200
    await client.get("/no/such/route")

    response = await client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert "# TYPE trademesh_http_requests_total counter" in text
    assert "# TYPE trademesh_http_request_duration_seconds histogram" in text
    assert (
        f'trademesh_http_requests_total{{method="GET",route="/items/{{item_id}}",'
        f'service="{service}",status="200"}} 3.0'
    ) in text
    assert (
        f'trademesh_http_request_duration_seconds_count{{method="GET",route="/items/{{item_id}}",'
        f'service="{service}"}} 3.0'
    ) in text
    assert 'route="/items/1"' not in text
    assert "/no/such/route" not in text
    assert _requests(service, "GET", "<unmatched>", "404") == 1.0


async def test_routes_of_included_routers_are_labelled_with_their_full_template(
    service: str,
) -> None:
    """Services mount their API under /api/v1 (include_router, nested routers with their own
    prefixes): the label is the whole template, whatever the ids."""
    inner = APIRouter(prefix="/bots")

    @inner.get("/{bot_id}/runs/{run}")
    async def run(bot_id: str, run: int) -> dict[str, str]:
        return {"bot_id": bot_id}

    outer = APIRouter()
    outer.include_router(inner)
    app = create_http_app(service=service)
    app.include_router(outer, prefix="/api/v1")
    async with make_client(app) as client:
        for bot in ("a", "b"):
            assert (await client.get(f"/api/v1/bots/{bot}/runs/007")).status_code == 200
    assert _requests(service, "GET", "/api/v1/bots/{bot_id}/runs/{run}", "200") == 2.0


async def test_metrics_count_errors_and_platform_routes(
    client: httpx.AsyncClient, service: str
) -> None:
    await client.get("/boom")
    await client.post("/orders", json={"symbol": "AAPL", "qty": 0})
    await client.get("/health")

    assert _requests(service, "GET", "/boom", "500") == 1.0
    assert _requests(service, "POST", "/orders", "422") == 1.0
    assert _requests(service, "GET", "/health", "200") == 1.0


async def test_metrics_serves_the_given_registry(service: str) -> None:
    registry = CollectorRegistry()
    Gauge("custom_only_here", "A gauge on a private registry.", registry=registry).set(7)
    app = add_demo_routes(create_http_app(service=service, registry=registry))

    async with make_client(app) as client:
        response = await client.get("/metrics")

    assert "custom_only_here 7.0" in response.text
    assert "trademesh_http_requests_total" not in response.text


async def test_openapi_lists_platform_routes_but_not_metrics(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]

    assert "/health" in paths
    assert "/ready" in paths
    assert "/metrics" not in paths
