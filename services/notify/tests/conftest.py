"""Fixtures of the notify tests: settings on the test engines and the running app (the HTTP
client on it, `client`, and a publisher, `producer`, are the trademesh pytest plugin's).

The engines come from the trademesh pytest plugin (trademesh_testing): a real Postgres and a real
Kafka-protocol broker, started once per session and only when a test asks for them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from trademesh_keystore import new_master_key
from trademesh_testing.http import Receiver, receiving
from trademesh_testing.plugin import SettingsMaker

from trademesh_notify.app import create_app
from trademesh_notify.config import Settings

PUBLIC_URL = "https://trade.example.org"
LINK_KEY = SecretStr("a test approval link key, long enough to sign")


@pytest.fixture
def settings(make_settings: SettingsMaker, schema: str) -> Settings:
    """Settings on the session's engines, with a consumer group and a schema of this test's own,
    a master key for the channels' secrets, webhooks on loopback allowed (the tests' receivers
    listen there), quick retries, and approval links made (LINK_KEY)."""
    return make_settings(
        Settings,
        database_schema=schema,
        keystore_keys=SecretStr(json.dumps({"t1": new_master_key().get_secret_value()})),
        keystore_current_key="t1",
        webhook_allowed_address_kinds=frozenset({"loopback"}),
        webhook_timeout_s=2.0,
        delivery_backoff_base_s=0.05,
        delivery_backoff_cap_s=0.2,
        delivery_max_attempts=3,
        delivery_poll_interval_s=0.05,
        public_url=PUBLIC_URL,
        approval_link_key=LINK_KEY,
    )


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A real webhook receiver on loopback (`receiver.url`), recording what each path got."""
    async with receiving() as kept:
        yield kept
