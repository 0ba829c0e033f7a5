"""The backstop on the real Postgres: text the database refuses (a NUL in text, \\u0000 in jsonb,
a lone surrogate asyncpg cannot encode), reaching it past the edge checks, is a 422 problem."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from trademesh_http import create_http_app

from .conftest import make_client

pytestmark = pytest.mark.integration

#: What a route might make of the request's input on its own (decoding, say): values the edge
#: never saw.
REFUSED = {
    "nul": ("SELECT $1::text", "a\x00b"),
    "jsonb-nul": ("SELECT $1::jsonb", '{"a": "\\u0000"}'),
    "surrogate": ("SELECT $1::text", "a\ud800b"),
}


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    async with asyncpg.create_pool(database_url, min_size=1, max_size=2) as created:
        yield created


@pytest.fixture
async def client(service: str, pool: asyncpg.Pool) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = create_http_app(service=service)

    @app.get("/store/{case}")
    async def store(case: str) -> dict[str, str]:
        sql, value = REFUSED.get(case, ("SELECT $1::text", "fine"))
        return {"stored": str(await pool.fetchval(sql, value))}

    async with make_client(app) as http:
        yield http


@pytest.mark.parametrize("case", sorted(REFUSED))
async def test_text_the_database_refuses_is_a_422_problem(
    client: httpx.AsyncClient, case: str
) -> None:
    response = await client.get(f"/store/{case}")
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "/problems/unsupported-character"
    assert "a\\u0000b" not in response.text and "\\ud800" not in response.text


async def test_text_the_database_takes_is_stored(client: httpx.AsyncClient) -> None:
    assert (await client.get("/store/other")).json() == {"stored": "fine"}
