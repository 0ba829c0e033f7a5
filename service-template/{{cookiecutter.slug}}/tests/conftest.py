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
from fastapi import FastAPI
from trademesh_testing.http import app_client

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
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client on the running service: migrations applied, consumers subscribed."""
    async with app_client(app) as http:
        yield http
