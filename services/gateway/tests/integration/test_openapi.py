"""The gateway's /openapi.json with the real services behind it: each route described by the
service that serves it, under the gateway's path; the routes of a service that is down as the
gateway alone knows them."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from trademesh_testing.http import app_client

from trademesh_gateway.app import create_app
from trademesh_gateway.engine import ROUTES, Service

pytestmark = pytest.mark.integration

REF = "#/components/schemas/"
DOWN: tuple[Service, ...] = ("market-data", "audit")


def refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def schema_of(document: dict[str, Any], media: dict[str, Any]) -> tuple[str, Any]:
    """The name and definition of the component schema `media` refers to."""
    name = media["schema"]["$ref"].removeprefix(REF)
    return name, document["components"]["schemas"][name]


async def test_the_published_document_is_the_services_own_under_the_gateways_paths(
    platform: Any,
) -> None:
    apps: dict[Service, FastAPI] = platform.apps
    transports: dict[Service, httpx.AsyncBaseTransport] = {
        service: httpx.ASGITransport(app=app) for service, app in apps.items()
    }
    transports.update({service: httpx.MockTransport(refused) for service in DOWN})
    gateway = create_app(
        platform.settings.model_copy(update={"consumer_group": f"test-{uuid.uuid4().hex[:10]}"}),
        transports=transports,
    )
    async with app_client(gateway) as client:
        answer = await client.get("/openapi.json")
        docs = await client.get("/docs")
    assert answer.status_code == 200 and docs.status_code == 200
    document = answer.json()
    paths = document["paths"]
    execution, risk = apps["execution"].openapi(), apps["risk"].openapi()

    # execution's account model, under the gateway's path, with execution's own parameters...
    opened = paths["/api/v1/accounts"]["post"]
    body = opened["requestBody"]["content"]["application/json"]
    created = execution["paths"]["/api/v1/accounts"]["post"]
    assert schema_of(document, body) == schema_of(
        execution, created["requestBody"]["content"]["application/json"]
    )
    assert set(opened["responses"]) >= set(created["responses"])
    account = paths["/api/v1/accounts/{account_id}"]["get"]
    name, schema = schema_of(document, account["responses"]["200"]["content"]["application/json"])
    assert name == "execution.AccountOut"
    assert schema == execution["components"]["schemas"]["AccountOut"]
    assert account["parameters"][0]["schema"]["format"] == "uuid"
    # ...and risk's, which has its own AccountOut, under the gateway's path for it.
    seen_by_risk = paths["/api/v1/accounts/{account_id}/risk"]["get"]
    name, schema = schema_of(
        document, seen_by_risk["responses"]["200"]["content"]["application/json"]
    )
    assert name == "risk.AccountOut"
    assert set(schema["properties"]) == set(
        risk["components"]["schemas"]["AccountOut"]["properties"]
    )
    # Query parameters, as the service declares them.
    orders = paths["/api/v1/orders"]["get"]
    listed = execution["paths"]["/api/v1/orders"]["get"]
    assert [p["name"] for p in orders["parameters"]] == [p["name"] for p in listed["parameters"]]
    # Errors are the gateway's problems, and the service's validation errors problems too.
    for code in ("401", "403", "422", "429", "502", "504"):
        content = opened["responses"][code]["content"]
        assert content == {"application/problem+json": {"schema": {"$ref": REF + "Problem"}}}

    for route in ROUTES:
        operation = paths["/api/v1" + route.path][route.method.lower()]
        unavailable = "own description was unavailable" in operation["description"]
        assert unavailable == (route.service in DOWN and route.local is None), route
        if unavailable:
            # As the gateway alone knows it: its path parameters, an answer, its errors.
            assert [p["name"] for p in operation.get("parameters", [])] == list(route.params)
            assert operation["responses"]["200"] == {"description": "Successful Response"}
            assert "502" in operation["responses"]
