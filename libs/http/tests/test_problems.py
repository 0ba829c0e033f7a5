"""RFC 9457 problem+json for every error, without stack traces or submitted values."""

from __future__ import annotations

import logging
from http import HTTPStatus

import httpx
import pytest
from fastapi import FastAPI
from starlette.requests import Request
from trademesh_http import Problem, ProblemError, create_http_app, problem_response
from trademesh_observability.logging import request_id_var

from .conftest import add_demo_routes, make_client

pytestmark = pytest.mark.unit

PROBLEM_JSON = "application/problem+json"
SECRET_INPUT = "SECRET-INPUT-123"


def _assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert isinstance(body, dict)
    assert body["status"] == status
    assert isinstance(body["type"], str) and body["type"]
    assert isinstance(body["title"], str) and body["title"]
    return body


async def test_unknown_route_is_404_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/no/such/route", headers={"X-Request-ID": "req-404"})

    body = _assert_problem(response, 404)
    assert body == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": "Not Found",
        "instance": "/no/such/route",
        "request_id": "req-404",
    }


async def test_wrong_method_is_405_problem(client: httpx.AsyncClient) -> None:
    response = await client.delete("/health")

    body = _assert_problem(response, 405)
    assert body["title"] == "Method Not Allowed"
    assert response.headers["allow"] == "GET"
    assert body["request_id"] == response.headers["x-request-id"]


async def test_http_exception_detail_is_kept(client: httpx.AsyncClient) -> None:
    response = await client.get("/bots/bot-9")

    body = _assert_problem(response, 404)
    assert body["detail"] == "No bot bot-9"
    assert body["instance"] == "/bots/bot-9"


async def test_body_validation_is_422_without_input_values(client: httpx.AsyncClient) -> None:
    response = await client.post("/orders", json={"qty": SECRET_INPUT, "note": SECRET_INPUT})

    body = _assert_problem(response, 422)
    assert body["title"] == "Request validation failed"
    assert SECRET_INPUT not in response.text
    errors = body["errors"]
    assert isinstance(errors, list)
    by_loc = {tuple(error["loc"]): error for error in errors}
    assert set(by_loc) == {("body", "symbol"), ("body", "qty")}
    assert by_loc[("body", "symbol")]["type"] == "missing"
    assert by_loc[("body", "qty")]["type"] == "int_parsing"
    assert all(set(error) == {"loc", "msg", "type"} for error in errors)
    assert body["request_id"] == response.headers["x-request-id"]


async def test_query_validation_is_422_without_input_values(client: httpx.AsyncClient) -> None:
    response = await client.get("/items/5", params={"limit": SECRET_INPUT})

    body = _assert_problem(response, 422)
    assert SECRET_INPUT not in response.text
    assert [error["loc"] for error in body["errors"]] == [["query", "limit"]]  # type: ignore[union-attr]
    assert body["instance"] == "/items/5"


async def test_malformed_json_body_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/orders",
        content=b'{"symbol": "' + SECRET_INPUT.encode() + b'", ',
        headers={"content-type": "application/json"},
    )

    body = _assert_problem(response, 422)
    assert SECRET_INPUT not in response.text
    assert body["errors"][0]["type"] == "json_invalid"  # type: ignore[index]


async def test_unhandled_error_is_500_problem_without_internals(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="trademesh.http"):
        response = await client.get("/boom")

    body = _assert_problem(response, 500)
    assert body["title"] == "Internal Server Error"
    assert body["detail"] == "An internal error occurred; it has been logged."
    assert body["instance"] == "/boom"
    for leak in ("internal detail xyz", "Traceback", "RuntimeError", "File "):
        assert leak not in response.text
    [record] = [r for r in caplog.records if r.name == "trademesh.http"]
    assert record.getMessage() == "unhandled error"
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)


async def test_unhandled_error_problem_has_the_request_id(client: httpx.AsyncClient) -> None:
    response = await client.get("/boom", headers={"X-Request-ID": "req-500"})

    body = _assert_problem(response, 500)
    assert body.get("request_id") == "req-500"
    assert response.headers.get("x-request-id") == "req-500"


async def test_problem_error_from_a_route(client: httpx.AsyncClient) -> None:
    response = await client.get("/rejected/o-17", headers={"X-Request-ID": "req-409"})

    body = _assert_problem(response, 409)
    assert body == {
        "type": "https://trademesh.dev/problems/insufficient-margin",
        "title": "Order rejected",
        "status": 409,
        "detail": "Insufficient margin for the order.",
        "instance": "/rejected/o-17",
        "order_id": "o-17",
        "limits": {"max_qty": 10},
        "request_id": "req-409",
    }
    assert response.headers["retry-after"] == "5"
    assert response.headers["x-request-id"] == "req-409"


async def test_problem_error_defaults_title_from_status(service: str) -> None:
    app = create_http_app(service=service)

    @app.get("/gone")
    async def gone() -> None:
        raise ProblemError(410)

    async with make_client(app) as client:
        response = await client.get("/gone")

    body = _assert_problem(response, 410)
    assert body["title"] == "Gone"
    assert "detail" not in body


async def test_problem_error_may_set_the_standard_instance_member(service: str) -> None:
    app = create_http_app(service=service)

    @app.get("/orders/{order_id}/fill")
    async def fill(order_id: str) -> None:
        raise ProblemError(409, "Already filled", instance=f"/orders/{order_id}")

    async with make_client(app) as client:
        response = await client.get("/orders/o-1/fill")

    body = _assert_problem(response, 409)
    assert body["instance"] == "/orders/o-1"


def test_problem_error_attributes() -> None:
    exc = ProblemError(404, detail="Unknown bot", bot_id="b-1")

    assert exc.status == 404
    assert exc.title == "Not Found"
    assert exc.detail == "Unknown bot"
    assert exc.type == "about:blank"
    assert exc.headers is None
    assert exc.extensions == {"bot_id": "b-1"}
    assert str(exc) == "Unknown bot"
    assert str(ProblemError(503)) == HTTPStatus(503).phrase


def test_problem_model_allows_extensions() -> None:
    problem = Problem(title="Conflict", status=409, order_id="o-1")

    assert problem.model_dump(exclude_none=True) == {
        "type": "about:blank",
        "title": "Conflict",
        "status": 409,
        "order_id": "o-1",
    }


def _request(path: str) -> Request:
    scope = {
        "type": "http",
        "method": "GET",
        "scheme": "http",
        "server": ("testserver", 80),
        "path": path,
        "query_string": b"",
        "headers": [],
        "app": FastAPI(),
    }
    return Request(scope)


def test_problem_response_without_request_id() -> None:
    response = problem_response(_request("/x"), 418, detail="short and stout")

    assert response.status_code == 418
    assert response.media_type == PROBLEM_JSON
    assert response.body == (
        b'{"type":"about:blank","title":"I\'m a Teapot","status":418,'
        b'"detail":"short and stout","instance":"/x"}'
    )


def test_problem_response_includes_current_request_id() -> None:
    token = request_id_var.set("req-direct")
    try:
        response = problem_response(_request("/x"), 400, headers={"X-Extra": "1"})
    finally:
        request_id_var.reset(token)

    assert b'"request_id":"req-direct"' in response.body
    assert b'"title":"Bad Request"' in response.body
    assert response.headers["x-extra"] == "1"


# --- the OpenAPI document says what the handlers answer ----------------------------------------


async def test_the_openapi_document_describes_errors_as_problems(service: str) -> None:
    app = add_demo_routes(create_http_app(service=service))

    @app.get("/declared", responses={404: {"description": "No such thing"}})
    async def declared() -> None:
        raise ProblemError(404)

    @app.get("/modelled", responses={409: {"model": Problem, "description": "Its own body"}})
    async def modelled() -> None:
        raise ProblemError(409)

    async with make_client(app) as client:
        document = (await client.get("/openapi.json")).json()
        answered = await client.post("/orders", json={})

    problem = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    paths = document["paths"]
    assert paths["/orders"]["post"]["responses"]["422"]["content"] == problem
    assert paths["/items/{item_id}"]["get"]["responses"]["422"]["content"] == problem
    assert paths["/declared"]["get"]["responses"]["404"]["content"] == problem
    assert paths["/ready"]["get"]["responses"]["503"]["content"] == problem
    # A body a route declares itself is its own business.
    assert paths["/modelled"]["get"]["responses"]["409"]["content"] == {
        "application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}
    }
    schemas = document["components"]["schemas"]
    assert schemas["Problem"] == Problem.model_json_schema()
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    # ...and that is what a client meets.
    assert answered.status_code == 422
    assert answered.headers["content-type"] == PROBLEM_JSON


async def test_a_document_source_replaces_the_openapi_document(service: str) -> None:
    async def source() -> dict[str, object]:
        return {"openapi": "3.1.0", "info": {"title": "made", "version": "1"}, "paths": {}}

    app = create_http_app(service=service, openapi=source)
    async with make_client(app) as client:
        document = await client.get("/openapi.json")
        docs = await client.get("/docs")
        redoc = await client.get("/redoc")

    assert document.json()["info"]["title"] == "made"
    assert docs.status_code == redoc.status_code == 200
    assert "/openapi.json" in docs.text and "/openapi.json" in redoc.text
    # The app's own document stays app.openapi(): what `source` may start from.
    assert "/health" in app.openapi()["paths"]
