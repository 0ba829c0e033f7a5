"""Fixtures of the {{ cookiecutter.slug }} tests: settings on the test engines, the running app, an HTTP client.

The engines come from the trademesh pytest plugin (trademesh_testing): a real Postgres and a real
Kafka-protocol broker, started once per session and only when a test asks for them.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from {{ cookiecutter.package }}.app import create_app
from {{ cookiecutter.package }}.config import Settings


@pytest.fixture
def settings(
    service_settings: Callable[..., Any],
    platform_topics: list[str],
{%- if cookiecutter.owns_schema %}
    schema: str,
{%- endif %}
) -> Settings:
    """Settings on the session's engines, with a consumer group{% if cookiecutter.owns_schema %} and a schema{% endif %} of this test's own."""
    made = service_settings(
        Settings,
        http_port=0,
        consumer_group=f"test-{uuid.uuid4().hex[:10]}",{% if cookiecutter.owns_schema %}
        database_schema=schema,{% endif %}
    )
    assert isinstance(made, Settings)
    return made


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The service, started (migrations applied, consumers subscribed) and stopped after the test."""
    application = create_app(settings)
    async with LifespanManager(application, startup_timeout=60, shutdown_timeout=30):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as http:
        yield http
