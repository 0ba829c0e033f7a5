"""The about route: the manifest's description and topics, the settings' name and schema."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from trademesh_service import ServiceManifest, about_router

pytestmark = pytest.mark.unit

MANIFEST = ServiceManifest(
    name="pricing",
    module="trademesh_pricing",
    project="trademesh-pricing",
    description="Prices things.",
    port=8700,
    consumes=("md.bars.v1", "md.ticks.v1"),
    produces=("bots.events.v1",),
    schema="pricing",
)


async def _about(service: str, schema: str | None) -> httpx.Response:
    app = FastAPI()
    app.include_router(about_router(MANIFEST, service=service, schema=schema), prefix="/api/v1")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        return await client.get("/api/v1/about")


async def test_about_states_the_declared_contract_under_the_settings_name() -> None:
    response = await _about("pricing-eu", "pricing_eu")
    assert response.status_code == 200
    assert response.json() == {
        "service": "pricing-eu",
        "description": "Prices things.",
        "consumes": ["md.bars.v1", "md.ticks.v1"],
        "produces": ["bots.events.v1"],
        "schema_name": "pricing_eu",
    }


async def test_a_service_without_a_schema_says_none() -> None:
    assert (await _about("pricing", None)).json()["schema_name"] is None
