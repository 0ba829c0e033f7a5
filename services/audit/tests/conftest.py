"""Fixtures of the audit tests: settings on the test engines, the running app, an HTTP client.

The engines come from the trademesh pytest plugin (trademesh_testing): a real Postgres and a real
Kafka-protocol broker, started once per session and only when a test asks for them.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from trademesh_testing.http import app_client
from trademesh_testing.tokens import bearer

from trademesh_audit.app import create_app
from trademesh_audit.config import Settings

Role = Literal["admin", "trader", "viewer"]
CallerHeaders = Callable[[Role | None], dict[str, str]]


@pytest.fixture
def settings(
    service_settings: Callable[..., Any],
    platform_topics: list[str],
    schema: str,
) -> Settings:
    """Settings on the session's engines, with a consumer group and a schema of this test's own."""
    made = service_settings(
        Settings,
        http_port=0,
        consumer_group=f"test-{uuid.uuid4().hex[:10]}",
        database_schema=schema,
    )
    assert isinstance(made, Settings)
    return made


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client on the running service: migrations applied, consumers subscribed."""
    async with app_client(app) as http:
        yield http


@pytest.fixture
def caller_headers() -> CallerHeaders:
    """The request headers naming an API caller of `role` (None: no caller at all).

    The only place the tests say who calls: a change of how callers are named (headers, bearer
    tokens) changes this function and nothing else. Each call names a new user.
    """

    def headers(role: Role | None) -> dict[str, str]:
        return {} if role is None else bearer(uuid.uuid4(), role=role)

    return headers


@pytest.fixture
async def superuser(database_url: str, schema: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection as the tests' login user (a superuser, not the service's writer role), with
    the test's schema first on its search_path: what an operator with full rights could do."""
    conn = await asyncpg.connect(database_url, server_settings={"search_path": schema})
    try:
        yield conn
    finally:
        await conn.close()
