"""The published document, made from the services' documents (here small ones written out), and
how they are fetched and kept."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from trademesh_http.problems import document_problems

from trademesh_gateway.api import api_router
from trademesh_gateway.api.routes import serve_table
from trademesh_gateway.config import Settings
from trademesh_gateway.engine import ROUTES, SERVICES, Service
from trademesh_gateway.openapi import RETRY_S, Published, describe, gateway_errors
from trademesh_gateway.proxy import Upstreams

pytestmark = pytest.mark.unit

REF = "#/components/schemas/"
PROBLEM = {"application/problem+json": {"schema": {"$ref": REF + "Problem"}}}


def local() -> dict[str, Any]:
    """The gateway's own FastAPI document, as create_http_app makes it."""
    app = FastAPI()
    app.include_router(api_router(), prefix="/api/v1")
    serve_table(app, "/api/v1")
    return document_problems(app.openapi())


def ref(name: str) -> dict[str, str]:
    return {"$ref": REF + name}


def ok(schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": "OK", "content": {"application/json": {"schema": schema}}}


def service_document(paths: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    problem = local()["components"]["schemas"]["Problem"]
    return {
        "openapi": "3.1.0",
        "info": {"title": "a service", "version": "1"},
        "paths": paths,
        "components": {"schemas": {"Problem": problem, **schemas}},
    }


def path_param(name: str, **schema: Any) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", **schema}}


ACCOUNT = {"type": "object", "properties": {"cash": ref("Money")}}
EXECUTION = service_document(
    {
        # The service names the parameter otherwise: the gateway's name is published.
        "/api/v1/accounts/{id}": {
            "get": {
                "parameters": [path_param("id", format="uuid")],
                "responses": {
                    "200": ok(ref("AccountOut")),
                    "404": {"description": "No such account", "content": PROBLEM},
                },
                "security": [{"serviceBearer": []}],
            }
        },
        "/api/v1/orders": {
            "get": {
                "parameters": [
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 9}}
                ],
                "responses": {"200": ok({"type": "array", "items": ref("OrderOut")})},
            }
        },
        "/internal/only": {"get": {"responses": {"200": ok(ref("Internal"))}}},
    },
    {
        "AccountOut": ACCOUNT,
        "Money": {"type": "string", "pattern": "^[0-9.]+$"},
        "OrderOut": {"type": "object", "properties": {"qty": ref("Money")}},
        "Internal": {"type": "object"},
    },
)
RISK = service_document(
    {
        "/api/v1/accounts/{account_id}": {
            "get": {
                "parameters": [path_param("account_id")],
                "responses": {"200": ok(ref("AccountOut"))},
            }
        }
    },
    # Alike in both services, but referring to a Money that is not: it must differ once renamed.
    {"AccountOut": ACCOUNT, "Money": {"type": "number"}},
)
STRATEGY = service_document(
    {
        "/api/v1/bots/{bot_id}/{action}": {
            "post": {
                "description": "The bot's new state.",
                "parameters": [
                    path_param("bot_id", format="uuid"),
                    path_param("action", enum=["pause", "resume", "stop", "start"]),
                ],
                "responses": {"200": ok(ref("BotOut"))},
            }
        }
    },
    {"BotOut": {"type": "object", "properties": {"state": {"type": "string"}}}},
)


def operation(document: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    found = document["paths"]["/api/v1" + path][method.lower()]
    assert isinstance(found, dict)
    return found


def route(method: str, path: str) -> Any:
    return next(r for r in ROUTES if (r.method, r.path) == (method, path))


def test_a_forwarded_route_carries_its_services_operation_under_the_gateways_path() -> None:
    document = describe(local(), {"execution": EXECUTION, "strategy": STRATEGY})

    account = operation(document, "GET", "/accounts/{account_id}")
    assert account["parameters"] == [path_param("account_id", format="uuid")]
    assert account["responses"]["200"] == ok(ref("AccountOut"))  # risk's is not published here
    # The gateway's credentials, summary and notes, not the service's.
    assert account["security"] == [{"accessToken": []}, {"apiKey": []}, {"apiKeyHeader": []}]
    assert account["summary"] == route("GET", "/accounts/{account_id}").summary
    orders = operation(document, "GET", "/orders")
    assert orders["parameters"][0]["schema"] == {"type": "integer", "maximum": 9}
    # strategy serves the bot actions as one operation: the gateway's path fixes the action.
    pause = operation(document, "POST", "/bots/{bot_id}/pause")
    assert pause["parameters"] == [path_param("bot_id", format="uuid")]
    assert pause["responses"]["200"] == ok(ref("BotOut"))
    assert "requestBody" not in pause
    assert pause["description"].endswith("\n\nThe bot's new state.")


def test_every_table_route_documents_the_gateways_own_errors_as_problems() -> None:
    document = describe(local(), {"execution": EXECUTION})
    for table_route in ROUTES:
        responses = operation(document, table_route.method, table_route.path)["responses"]
        for code in ("404", "429", "503", "4XX"):
            assert responses[code]["content"] == PROBLEM, (table_route, code)
        assert ("401" in responses) != table_route.public
        forwarded = table_route.local is None
        assert ("502" in responses) == ("504" in responses) == forwarded
    # The service's own description of a code wins over the gateway's.
    account = operation(document, "GET", "/accounts/{account_id}")["responses"]
    assert account["404"]["description"] == "No such account"
    assert gateway_errors(route("GET", "/accounts/{account_id}"))["404"] != account["404"]


def test_schemas_keep_their_names_unless_services_define_them_differently() -> None:
    document = describe(local(), {"execution": EXECUTION, "risk": RISK})
    schemas = document["components"]["schemas"]

    # Money differs, so AccountOut (alike, but referring to it) differs once renamed too.
    assert schemas["execution.Money"] == EXECUTION["components"]["schemas"]["Money"]
    assert schemas["risk.Money"] == {"type": "number"}
    assert schemas["execution.AccountOut"]["properties"]["cash"] == ref("execution.Money")
    assert schemas["risk.AccountOut"]["properties"]["cash"] == ref("risk.Money")
    risk = operation(document, "GET", "/accounts/{account_id}/risk")
    assert risk["responses"]["200"] == ok(ref("risk.AccountOut"))
    # OrderOut is execution's alone; Problem is the same everywhere: both keep their names.
    assert schemas["OrderOut"]["properties"]["qty"] == ref("execution.Money")
    assert "Problem" in schemas and not any(n.endswith(".Problem") for n in schemas)
    # Only what the published operations use; and no reference left dangling.
    assert "Internal" not in schemas and "AccountOut" not in schemas
    named = set(re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(document)))
    assert named <= set(schemas)


def test_without_a_services_document_its_routes_are_as_the_gateway_alone_knows_them() -> None:
    document = describe(local(), {"execution": EXECUTION, "strategy": None})

    pause = operation(document, "POST", "/bots/{bot_id}/pause")
    assert pause["parameters"] == [path_param("bot_id")]
    assert pause["requestBody"]["content"]["application/json"]["schema"] == {"type": "object"}
    assert pause["responses"]["200"] == {"description": "Successful Response"}
    assert "strategy service's own description was unavailable" in pause["description"]
    assert pause["responses"]["401"]["content"] == PROBLEM
    described = operation(document, "GET", "/accounts/{account_id}")
    assert "unavailable" not in described["description"]


def test_the_manual_order_route_is_described_by_the_gateways_models() -> None:
    document = describe(local(), {})
    order = operation(document, "POST", "/orders")
    schemas = document["components"]["schemas"]

    assert order["requestBody"]["content"]["application/json"]["schema"] == ref("ManualOrder")
    assert order["responses"]["202"]["content"]["application/json"]["schema"] == ref(
        "OrderAccepted"
    )
    assert "409" in order["responses"] and "200" in order["responses"]  # a re-sent id
    assert "account_id" in schemas["ManualOrder"]["required"]
    assert set(schemas["OrderAccepted"]["properties"]) == {
        "client_order_id",
        "account_id",
        "status",
        "event_id",
        "submitted_at",
    }
    assert set(document["components"]["securitySchemes"]) == {
        "accessToken",
        "apiKey",
        "apiKeyHeader",
    }


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_documents_are_fetched_once_kept_and_a_missing_one_asked_again_soon() -> None:
    asked: list[Service] = []
    down = {"strategy"}

    def serve(service: Service) -> httpx.MockTransport:
        def handle(request: httpx.Request) -> httpx.Response:
            asked.append(service)
            if service in down:
                raise httpx.ConnectError("refused", request=request)
            if service == "execution":
                return httpx.Response(200, json=EXECUTION)
            return httpx.Response(200, json={"not": "a document"})

        return httpx.MockTransport(handle)

    upstreams = Upstreams(Settings(), {s: serve(s) for s in SERVICES})
    clock = Clock()
    published = Published(local, upstreams, ttl_s=300, clock=clock)
    try:
        first = await published.document()
        forwarded = {r.service for r in ROUTES if r.local is None}
        assert sorted(asked) == sorted(forwarded)
        assert await published.document() is first
        assert len(asked) == len(forwarded)
        assert "unavailable" in operation(first, "POST", "/bots/{bot_id}/pause")["description"]
        assert operation(first, "GET", "/orders")["parameters"][0]["name"] == "limit"

        # The services that gave none are asked again after RETRY_S; the others are kept.
        down.clear()
        asked.clear()
        clock.now += RETRY_S
        second = await published.document()
        assert "execution" not in asked and "strategy" in asked
        assert second is not first
        clock.now += 300
        asked.clear()
        await published.document()
        assert "execution" in asked
    finally:
        await upstreams.aclose()
