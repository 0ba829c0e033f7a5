"""The auth service on the real broker and the real Postgres: /ready, /metrics, the contract."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from trademesh_service import service_manifest
from trademesh_testing.http import app_client
from trademesh_testing.service import check_declared_metrics
from trademesh_testing.waiting import eventually

from trademesh_auth.app import create_app
from trademesh_auth.config import Settings

pytestmark = pytest.mark.integration
MANIFEST = service_manifest("trademesh_auth")


async def test_health_and_ready_check_the_real_dependencies(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).json()["status"] == "ok"
    response = await client.get("/ready")
    assert response.status_code == 200, response.text
    assert response.json()["checks"] == {
        "kafka": "ok",
        "postgres": "ok",
    }


async def test_ready_follows_its_dependencies(private_infra: Any, keystore: dict[str, Any]) -> None:
    app = create_app(private_infra.settings(Settings, ready_timeout_s=1.0, **keystore))
    async with app_client(app) as http:

        async def ready_is(status: int) -> dict[str, Any] | None:
            response = await http.get("/ready")
            return response.json() if response.status_code == status else None

        await eventually(lambda: ready_is(200))
        private_infra.kafka.stop()
        assert (await eventually(lambda: ready_is(503)))["checks"]["kafka"] != "ok"
        assert (await http.get("/health")).status_code == 200  # alive, only not ready
        private_infra.kafka.start()
        await eventually(lambda: ready_is(200))
        private_infra.postgres.stop()
        assert (await eventually(lambda: ready_is(503)))["checks"]["postgres"] != "ok"
        private_infra.postgres.start()
        await eventually(lambda: ready_is(200))


async def test_metrics_export_the_declared_metrics(client: httpx.AsyncClient) -> None:
    await client.get("/ready")
    await client.get("/api/v1/about")
    response = await client.get("/metrics")
    assert response.status_code == 200
    required = frozenset({"trademesh_http_requests_total", "trademesh_ready"})
    check_declared_metrics(response.text, required=required)


async def test_about_states_the_contract(client: httpx.AsyncClient, settings: Settings) -> None:
    body = (await client.get("/api/v1/about")).json()
    assert body["service"] == "auth"
    assert (body["consumes"], body["produces"]) == (
        list(MANIFEST.consumes),
        list(MANIFEST.produces),
    )
    assert body["schema_name"] == settings.database_schema
