"""Fixtures of the notify tests: settings on the test engines, the running app, an HTTP client.

The engines come from the trademesh pytest plugin (trademesh_testing): a real Postgres and a real
Kafka-protocol broker, started once per session and only when a test asks for them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from trademesh_keystore import new_master_key
from trademesh_testing.http import app_client

from trademesh_notify.app import create_app
from trademesh_notify.config import Settings


@pytest.fixture
def settings(
    service_settings: Callable[..., Any],
    platform_topics: list[str],
    schema: str,
) -> Settings:
    """Settings on the session's engines, with a consumer group and a schema of this test's own,
    a master key for the channels' secrets, webhooks on loopback allowed (the tests' receivers
    listen there) and quick retries."""
    made = service_settings(
        Settings,
        http_port=0,
        consumer_group=f"test-{uuid.uuid4().hex[:10]}",
        database_schema=schema,
        keystore_keys=SecretStr(json.dumps({"t1": new_master_key().get_secret_value()})),
        keystore_current_key="t1",
        webhook_allowed_address_kinds=frozenset({"loopback"}),
        webhook_timeout_s=2.0,
        delivery_backoff_base_s=0.05,
        delivery_backoff_cap_s=0.2,
        delivery_max_attempts=3,
        delivery_poll_interval_s=0.05,
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
