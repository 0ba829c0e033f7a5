"""Bad input at the edge of every app: bounded bodies (413), bounded JSON depth and no character
Postgres cannot store (422 problems that never echo the value), and the database's refusal of
such a character answered as a 422 rather than a 500."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, Request
from trademesh_http import create_http_app
from trademesh_http.inputs import (
    MAX_JSON_DEPTH,
    InputLimits,
    json_has_refused_characters,
    json_too_deep,
    query_has_refused_characters,
    refused_by_database,
    text_has_refused_characters,
)

from .conftest import add_demo_routes, make_client

pytestmark = pytest.mark.unit

PROBLEM_JSON = "application/problem+json"
ORDER = {"symbol": "BTC/USDT", "qty": 1}


def nested(depth: int, kind: str = "array") -> bytes:
    if kind == "array":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


# ---- JSON depth ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["array", "object"])
def test_depth_up_to_the_limit_passes_and_one_more_is_too_deep(kind: str) -> None:
    assert not json_too_deep(nested(MAX_JSON_DEPTH, kind), MAX_JSON_DEPTH)
    assert json_too_deep(nested(MAX_JSON_DEPTH + 1, kind), MAX_JSON_DEPTH)
    assert json_too_deep(nested(60_000, kind), MAX_JSON_DEPTH)


def test_depth_counts_nesting_not_brackets() -> None:
    wide = json.dumps([[i, {"k": [i]}] for i in range(500)]).encode()
    assert not json_too_deep(wide, 4)  # [[ {"k": [ : four deep, two thousand brackets
    assert json_too_deep(wide, 3)
    # An unclosed document is as deep as a parser gets before it stops.
    assert json_too_deep(b"[" * 40, 32)


def test_brackets_inside_strings_do_not_count() -> None:
    text = json.dumps({"note": "[" * 100 + '{"' + "\\" + '"[[[', "list": [1, 2]}).encode()
    assert not json_too_deep(text, 2)
    # A string cut short hides nothing after it: the parser stops in it.
    assert not json_too_deep(b'["' + b"[" * 100, 2)
    assert json_too_deep(b'["a\\"' + b"[" * 5 + b'", [[[[]]]]]', 4)


# ---- characters -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b'{"name": "a\\u0000b"}',
        b'{"name": "\\ud800"}',  # a lone high surrogate
        b'{"name": "\\uDBFF x"}',
        b'{"name": "\\udc00"}',  # a lone low surrogate
        b'{"name": "\\ud800\\ud800\\udc00"}',  # a high one, then a pair
        b'{"name": "\\\\\\u0000"}',  # an escaped backslash, then NUL
        b'{"name": "a\x00b"}',  # a raw NUL byte
        b'{"name": "\xed\xa0\x80"}',  # U+D800 encoded as UTF-8 (json.loads decodes it)
        '{"name": "x"}'.encode("utf-16"),  # not UTF-8: NUL bytes
    ],
)
def test_nul_and_lone_surrogates_are_refused(body: bytes) -> None:
    assert json_has_refused_characters(body)


@pytest.mark.parametrize(
    "body",
    [
        b'{"name": "plain"}',
        b'{"name": "\\\\u0000"}',  # a backslash and the letters u0000
        b'{"name": "\\ud83d\\ude00"}',  # a surrogate pair: one emoji
        '{"name": "caf\u00e9 \u20ac \ud7ff \U0001f600"}'.encode(),
        b'{"name": "\\u00e9\\n\\"\\/"}',
    ],
)
def test_every_other_character_passes(body: bytes) -> None:
    assert not json_has_refused_characters(body)


def test_paths_and_queries_with_nul_are_refused() -> None:
    assert text_has_refused_characters("/orders/a\x00b")
    assert text_has_refused_characters("/orders/\ud800")
    assert not text_has_refused_characters("/orders/caf\u00e9-\ufffd")
    assert query_has_refused_characters(b"limit=1%00")
    assert query_has_refused_characters(b"a=\x00")
    assert not query_has_refused_characters(b"limit=100&cursor=a%2F0")


# ---- the database's refusal -------------------------------------------------------------------------


class FakeDatabaseError(Exception):
    """Shaped like asyncpg's errors: a `sqlstate`."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__("the offending value would be here")
        self.sqlstate = sqlstate


def _surrogate_error() -> UnicodeEncodeError:
    try:
        "a\ud800".encode()
    except UnicodeEncodeError as exc:
        return exc
    raise AssertionError("a lone surrogate encoded")


def test_character_errors_of_the_database_are_the_clients() -> None:
    assert refused_by_database(FakeDatabaseError("22021"))
    assert refused_by_database(FakeDatabaseError("22P05"))
    wrapped = FakeDatabaseError("22000")  # asyncpg's "invalid input for query argument"
    wrapped.__cause__ = _surrogate_error()
    assert refused_by_database(wrapped)
    assert refused_by_database(ExceptionGroup("tasks", [FakeDatabaseError("22021")]))


def test_other_errors_stay_the_servers() -> None:
    assert not refused_by_database(FakeDatabaseError("23505"))  # a unique violation
    assert not refused_by_database(RuntimeError("boom"))
    with pytest.raises(UnicodeEncodeError) as raised:
        "caf\u00e9 \u20ac".encode("latin-1")  # the server's own bug
    assert not refused_by_database(raised.value)


# ---- the middleware ---------------------------------------------------------------------------------


def add_input_routes(app: FastAPI) -> FastAPI:
    @app.post("/raw")
    async def raw(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    @app.get("/refused/{sqlstate}")
    async def refused(sqlstate: str) -> None:
        raise FakeDatabaseError(sqlstate)

    @app.get("/surrogate")
    async def surrogate() -> None:
        raise FakeDatabaseError("22000") from _surrogate_error()

    return app


@pytest.fixture
def small_app(service: str) -> FastAPI:
    """The demo app with a 4 kB body limit and the input routes."""
    app = create_http_app(service=service, inputs=InputLimits(max_body_bytes=4096))
    return add_input_routes(add_demo_routes(app))


@pytest.fixture
async def small(small_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(small_app) as client:
        yield client


def _problem(response: httpx.Response, status: int, type_: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert isinstance(body, dict)
    assert (body["status"], body["type"]) == (status, type_)
    assert body["request_id"] == response.headers["x-request-id"]
    return body


async def test_a_good_body_reaches_the_route_whole(small: httpx.AsyncClient) -> None:
    assert (await small.post("/orders", json=ORDER)).json() == {"symbol": "BTC/USDT"}

    async def chunks() -> AsyncIterator[bytes]:
        for piece in (b'{"symbol": ', b'"ETH/USDT", ', b'"qty": 2}'):
            yield piece

    streamed = await small.post(
        "/orders", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert streamed.json() == {"symbol": "ETH/USDT"}


async def test_a_body_over_the_limit_is_a_413_problem(small: httpx.AsyncClient) -> None:
    big = b'{"symbol": "' + b"x" * 4096 + b'", "qty": 1}'
    declared = await small.post(
        "/orders", content=big, headers={"Content-Type": "application/json"}
    )
    assert _problem(declared, 413, "/problems/too-large")["max_bytes"] == 4096

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as read
        for _ in range(5):
            yield b" " * 1024

    streamed = await small.post("/raw", content=chunks())
    _problem(streamed, 413, "/problems/too-large")
    assert (await small.post("/raw", content=b" " * 4096)).json() == {"size": 4096}


@pytest.mark.parametrize("kind", ["array", "object"])
async def test_deep_json_is_a_422_problem(client: httpx.AsyncClient, kind: str) -> None:
    response = await client.post(
        "/orders", content=nested(60_000, kind), headers={"Content-Type": "application/json"}
    )
    body = _problem(response, 422, "/problems/too-deep")
    assert body["max_depth"] == MAX_JSON_DEPTH


async def test_deep_json_is_refused_whatever_its_content_type(small: httpx.AsyncClient) -> None:
    for headers in ({}, {"Content-Type": "text/plain"}):
        response = await small.post("/raw", content=nested(100), headers=headers)
        _problem(response, 422, "/problems/too-deep")


@pytest.mark.parametrize(
    "body",
    [b'{"symbol": "BTC\\u0000", "qty": 1}', b'{"symbol": "\\ud800SECRET", "qty": 1}'],
    ids=["nul", "surrogate"],
)
async def test_refused_characters_in_a_body_are_a_422_problem_without_the_value(
    client: httpx.AsyncClient, body: bytes
) -> None:
    response = await client.post(
        "/orders", content=body, headers={"Content-Type": "application/json"}
    )
    problem = _problem(response, 422, "/problems/unsupported-character")
    assert problem["location"] == "body"
    assert "BTC" not in response.text and "SECRET" not in response.text


async def test_binary_bodies_are_only_size_checked(small: httpx.AsyncClient) -> None:
    binary = b"\x00\xed\xa0\x80" + b"[" * 100
    for content_type in ("application/octet-stream", "multipart/form-data; boundary=x"):
        response = await small.post("/raw", content=binary, headers={"Content-Type": content_type})
        assert response.json() == {"size": len(binary)}, content_type


async def test_nul_in_a_path_is_a_422_problem_that_does_not_echo_it(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/items/1%00SECRET")
    problem = _problem(response, 422, "/problems/unsupported-character")
    assert problem["location"] == "path"
    assert "\x00" not in response.text and "\\u0000" not in response.text
    assert problem["instance"] == "/items/1\ufffdSECRET"


async def test_nul_in_a_query_is_a_422_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/items/1?limit=5%00")
    assert _problem(response, 422, "/problems/unsupported-character")["location"] == "query"


@pytest.mark.parametrize("sqlstate", ["22021", "22P05"])
async def test_the_databases_character_errors_are_a_422_problem(
    small: httpx.AsyncClient, sqlstate: str
) -> None:
    response = await small.get(f"/refused/{sqlstate}")
    _problem(response, 422, "/problems/unsupported-character")
    assert "offending" not in response.text


async def test_a_surrogate_the_driver_cannot_encode_is_a_422_problem(
    small: httpx.AsyncClient,
) -> None:
    _problem(await small.get("/surrogate"), 422, "/problems/unsupported-character")


async def test_other_database_errors_stay_a_500(small: httpx.AsyncClient) -> None:
    response = await small.get("/refused/23505")
    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM_JSON


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="max_json_depth"):
        InputLimits(max_json_depth=0)
