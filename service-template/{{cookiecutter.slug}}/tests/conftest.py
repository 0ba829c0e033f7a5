"""Fixtures of the {{ cookiecutter.slug }} tests: settings on the test engines, the running app (the HTTP client
on it, `client`, and a publisher, `producer`, are the trademesh pytest plugin's).

The engines come from the trademesh pytest plugin (trademesh_testing): a real Postgres and a real
Kafka-protocol broker, started once per session and only when a test asks for them.
"""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from trademesh_testing.plugin import SettingsMaker

from {{ cookiecutter.package }}.app import create_app
from {{ cookiecutter.package }}.config import Settings


@pytest.fixture
def settings(make_settings: SettingsMaker{% if cookiecutter.owns_schema %}, schema: str{% endif %}) -> Settings:
    """Settings on the session's engines, with a consumer group{% if cookiecutter.owns_schema %} and a schema{% endif %} of this test's own."""
    return make_settings(Settings{% if cookiecutter.owns_schema %}, database_schema=schema{% endif %})


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)
