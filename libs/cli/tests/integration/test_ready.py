"""/ready reflects the real dependencies: 503 while the broker or Postgres is down, 200 when back."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from trademesh_cli.sample import EventLoggerSettings, create_app
from trademesh_testing.http import app_client

pytestmark = pytest.mark.integration


async def _status(client: httpx.AsyncClient) -> tuple[int, dict[str, Any]]:
    response = await client.get("/ready")
    return response.status_code, response.json()


async def _eventually(
    client: httpx.AsyncClient, expected: int, timeout: float = 30.0
) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    status, body = await _status(client)
    while status != expected and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.2)
        status, body = await _status(client)
    assert status == expected, body
    return body


async def test_ready_follows_the_broker_and_postgres(private_infra: Any) -> None:
    app = create_app(private_infra.settings(EventLoggerSettings, ready_timeout_s=1.0))
    async with app_client(app) as client:
        assert (await client.get("/health")).status_code == 200
        await _eventually(client, 200)

        private_infra.kafka.stop()
        body = await _eventually(client, 503)
        assert "kafka" in str(body)
        assert (await client.get("/health")).status_code == 200  # alive, just not ready

        private_infra.kafka.start()  # same port; this build of Tansu starts empty
        await _eventually(client, 200)

        private_infra.postgres.stop()
        body = await _eventually(client, 503)
        assert "postgres" in str(body)

        private_infra.postgres.start()
        await _eventually(client, 200)
