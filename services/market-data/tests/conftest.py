"""Fixtures of the market-data tests: settings on the test engines, the running app (the HTTP client
on it, `client`, and a publisher, `producer`, are the trademesh pytest plugin's).

The engines come from the trademesh pytest plugin (trademesh_testing): a real Postgres and a real
Kafka-protocol broker, started once per session and only when a test asks for them.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from trademesh_testing.http import app_client
from trademesh_testing.plugin import SettingsMaker
from trademesh_testing.tokens import bearer

from trademesh_market_data.app import create_app
from trademesh_market_data.config import Settings

# Feeds are an admin's to manage (history is open): the tests' client calls as an admin.
ADMIN = bearer(uuid.uuid4(), "admin")


@pytest.fixture
def settings(make_settings: SettingsMaker, schema: str) -> Settings:
    """Settings on the session's engines, with a consumer group and a schema of this test's own."""
    return make_settings(Settings, database_schema=schema)


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client on the running service: migrations applied, consumers subscribed."""
    async with app_client(app, headers=ADMIN) as http:
        yield http
