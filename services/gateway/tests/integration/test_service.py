"""The gateway service on the real broker: /ready, /metrics on its own port, /docs, the about
route."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from trademesh_testing.contract import ServiceContract
from trademesh_testing.http import app_client
from trademesh_testing.waiting import eventually

from trademesh_gateway.app import create_app
from trademesh_gateway.config import Settings
from trademesh_gateway.engine import ROUTES

pytestmark = pytest.mark.integration


class TestService(ServiceContract):
    """/health, /ready, /metrics and the about route (trademesh_testing.contract); the gateway
    has no database, checks auth's JWKS and serves /metrics on a port of its own."""

    readiness = ("kafka", "auth_jwks")

    async def scrape(self, client: httpx.AsyncClient, app: Any) -> httpx.Response:
        async with httpx.AsyncClient() as scraper:
            return await scraper.get(f"http://127.0.0.1:{app.state.metrics_port}/metrics")

    @pytest.fixture
    def auth_up(self) -> dict[str, bool]:
        """Whether the stand-in for auth answers (its JWKS) or is away."""
        return {"up": True}

    @pytest.fixture
    def private_app(self, private_infra: Any, auth_up: dict[str, bool]) -> FastAPI:
        def auth(request: httpx.Request) -> httpx.Response:
            if not auth_up["up"]:
                raise httpx.ConnectError("auth is away", request=request)
            return httpx.Response(200, json={"keys": [{"kid": "k"}]})

        settings = private_infra.settings(Settings, ready_timeout_s=1.0, metrics_port=0)
        return create_app(settings, transports={"auth": httpx.MockTransport(auth)})

    async def test_ready_follows_its_dependencies(
        self, private_app: Any, private_infra: Any, auth_up: dict[str, bool]
    ) -> None:
        async with app_client(private_app) as http:

            async def ready_is(status: int) -> dict[str, Any] | None:
                response = await http.get("/ready")
                return response.json() if response.status_code == status else None

            await eventually(lambda: ready_is(200))
            auth_up["up"] = False
            assert (await eventually(lambda: ready_is(503)))["checks"]["auth_jwks"] != "ok"
            auth_up["up"] = True
            await eventually(lambda: ready_is(200))
            private_infra.kafka.stop()
            assert (await eventually(lambda: ready_is(503)))["checks"]["kafka"] != "ok"
            assert (await http.get("/health")).status_code == 200  # alive, only not ready
            private_infra.kafka.start()
            await eventually(lambda: ready_is(200))


async def test_metrics_are_not_on_the_public_port(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_docs_describe_every_public_route(client: httpx.AsyncClient) -> None:
    assert (await client.get("/docs")).status_code == 200
    document = (await client.get("/openapi.json")).json()
    for route in ROUTES:
        operation = document["paths"]["/api/v1" + route.path][route.method.lower()]
        assert operation["summary"] == route.summary
        assert [p["name"] for p in operation.get("parameters", [])] == list(route.params)
        assert ("security" in operation) != route.public
    assert "/api/v1/events/stream" in document["paths"]
    assert set(document["components"]["securitySchemes"]) == {
        "accessToken",
        "apiKey",
        "apiKeyHeader",
    }
