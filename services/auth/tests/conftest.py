"""Fixtures of the auth tests: settings on the test engines, the running app, an HTTP client.

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

from trademesh_auth.app import create_app
from trademesh_auth.config import Settings


@pytest.fixture(scope="session")
def keystore() -> dict[str, Any]:
    """A local master key for the signing keys, made for the session."""
    return {
        "keystore_keys": SecretStr(json.dumps({"t1": new_master_key().get_secret_value()})),
        "keystore_current_key": "t1",
    }


@pytest.fixture
def settings(
    service_settings: Callable[..., Any],
    platform_topics: list[str],
    schema: str,
    keystore: dict[str, Any],
) -> Settings:
    """Settings on the session's engines, with a consumer group and a schema of this test's own,
    open registration and the session's master key."""
    made = service_settings(
        Settings,
        http_port=0,
        consumer_group=f"test-{uuid.uuid4().hex[:10]}",
        database_schema=schema,
        registration="open",
        **keystore,
    )
    assert isinstance(made, Settings)
    return made


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
def make_app(settings: Settings) -> Callable[..., FastAPI]:
    """`make_app(**settings)`: the service with some settings changed."""

    def make(**changes: Any) -> FastAPI:
        return create_app(settings.model_copy(update=changes))

    return make


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client on the running service: migrations applied, consumers subscribed."""
    async with app_client(app) as http:
        yield http
