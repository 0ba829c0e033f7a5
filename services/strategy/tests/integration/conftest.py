"""What the integration tests of backtests and optimisations share: a trader's access token, a
submitted job waited for until it has run, a refused submission's problem, and the running
app's database."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from trademesh_db import Database
from trademesh_testing.tokens import bearer
from trademesh_testing.waiting import eventually

from trademesh_strategy.api.deps import Runtime

Headers = Callable[[uuid.UUID], dict[str, str]]
Settled = Callable[..., Awaitable[dict[str, Any]]]
Refused = Callable[[str, dict[str, Any], uuid.UUID], Awaitable[dict[str, Any]]]


@pytest.fixture
def headers() -> Headers:
    """`headers(user)`: the user's access token, a trader's (who may create, change and stop
    bots, backtests and optimisations)."""

    def trader(user: uuid.UUID) -> dict[str, str]:
        return bearer(user, "trader")

    return trader


@pytest.fixture
def settled(client: httpx.AsyncClient, headers: Headers) -> Settled:
    """`await settled(path, user, timeout=30)`: the backtest or optimisation at `path` once it is
    SUCCEEDED or FAILED, read as `user`; the test fails unless it SUCCEEDED."""

    async def wait(path: str, user: uuid.UUID, timeout: float = 30) -> dict[str, Any]:
        async def done() -> dict[str, Any] | None:
            response = await client.get(path, headers=headers(user))
            assert response.status_code == 200, response.text
            found: dict[str, Any] = response.json()
            return found if found["status"] in ("SUCCEEDED", "FAILED") else None

        result: dict[str, Any] = await eventually(done, timeout=timeout)
        assert result["status"] == "SUCCEEDED", result
        return result

    return wait


@pytest.fixture
def refused(client: httpx.AsyncClient, headers: Headers) -> Refused:
    """`await refused(path, payload, user)`: the problem+json a POST of `payload` to `path` by
    `user` is answered with; the test fails unless it is a 422."""

    async def post(path: str, payload: dict[str, Any], user: uuid.UUID) -> dict[str, Any]:
        response = await client.post(path, json=payload, headers=headers(user))
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        found: dict[str, Any] = response.json()
        return found

    return post


@pytest.fixture
def db(app: FastAPI) -> Database:
    """The running app's database, for what a test does underneath the API."""
    runtime = app.state.runtime
    assert isinstance(runtime, Runtime)
    assert runtime.db is not None
    return runtime.db
