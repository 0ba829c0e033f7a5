"""Fixtures of the risk tests: settings on the test engines, the running app (the HTTP client
on it, `client`, and a publisher, `producer`, are the trademesh pytest plugin's).

The engines come from the trademesh pytest plugin (trademesh_testing): a real Postgres and a real
Kafka-protocol broker, started once per session and only when a test asks for them.
"""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from trademesh_testing.accounts import AccountBook
from trademesh_testing.plugin import SettingsMaker

from trademesh_risk.app import create_app
from trademesh_risk.config import Settings


@pytest.fixture
def settings(make_settings: SettingsMaker, schema: str) -> Settings:
    """Settings on the session's engines, with a consumer group and a schema of this test's own."""
    return make_settings(Settings, database_schema=schema)


@pytest.fixture
def app(settings: Settings, account_book: AccountBook) -> FastAPI:
    return create_app(settings, execution_transport=account_book.transport)
