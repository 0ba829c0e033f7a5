"""Fixtures of the auth tests: settings on the test engines, the running app (the HTTP client
on it, `client`, and a publisher, `producer`, are the trademesh pytest plugin's).

The engines come from the trademesh pytest plugin (trademesh_testing): a real Postgres and a real
Kafka-protocol broker, started once per session and only when a test asks for them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from trademesh_keystore import new_master_key
from trademesh_testing.plugin import SettingsMaker

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
def settings(make_settings: SettingsMaker, schema: str, keystore: dict[str, Any]) -> Settings:
    """Settings on the session's engines, with a consumer group and a schema of this test's own,
    open registration and the session's master key."""
    return make_settings(Settings, database_schema=schema, registration="open", **keystore)


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
def make_app(settings: Settings) -> Callable[..., FastAPI]:
    """`make_app(**settings)`: the service with some settings changed."""

    def make(**changes: Any) -> FastAPI:
        return create_app(settings.model_copy(update=changes))

    return make
