"""Fixtures of the strategy tests: settings on the test engines, the running app (the HTTP client
on it, `client`, and a publisher, `producer`, are the trademesh pytest plugin's).

The engines come from the trademesh pytest plugin (trademesh_testing): a real Postgres and a real
Kafka-protocol broker, started once per session and only when a test asks for them. Bots warm up
from market-data's history API, so the tests run the real market-data app next to this one (in
its own schema), and the strategy app reaches it in process through an ASGI transport.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from trademesh_testing.accounts import AccountBook
from trademesh_testing.http import app_client
from trademesh_testing.plugin import SettingsMaker
from trademesh_testing.tokens import bearer

import trademesh_market_data as _market_data_package
from trademesh_market_data.app import create_app as create_market_data_app
from trademesh_market_data.config import Settings as MarketDataSettings
from trademesh_strategy.app import create_app
from trademesh_strategy.config import Settings


@pytest.fixture
def settings(make_settings: SettingsMaker, schema: str) -> Settings:
    """Settings on the session's engines, with a consumer group and a schema of this test's own."""
    return make_settings(
        Settings, database_schema=schema, outbox_poll_interval_s=0.2, backtest_poll_interval_s=0.2
    )


@pytest.fixture
async def market_data_schema(database_url: str) -> AsyncIterator[str]:
    name = f"md_{uuid.uuid4().hex[:10]}"
    yield name
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await conn.close()


GOOG = Path(_market_data_package.__file__).parent / "data" / "GOOG.csv"
"""market-data's bundled fixture: GOOG daily OHLCV, 2004-08-19 to 2013 (origin in its README)."""


@pytest.fixture(scope="session")
def replay_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The replay folder: GOOG.csv, and GOOG_400.csv with its first 400 days (for tests that
    play a whole replay and want it short)."""
    folder = tmp_path_factory.mktemp("replay")
    lines = GOOG.read_text().splitlines(keepends=True)
    (folder / "GOOG.csv").write_text("".join(lines))
    (folder / "GOOG_400.csv").write_text("".join(lines[:401]))
    return folder


@pytest.fixture
def market_data_app(
    make_settings: SettingsMaker, market_data_schema: str, replay_dir: Path
) -> FastAPI:
    """The real market-data service (replay feeds, tick store, history API) in its own schema."""
    made = make_settings(
        MarketDataSettings,
        database_schema=market_data_schema,
        store_flush_interval_s=0.05,
        replay_dir=replay_dir,
    )
    return create_market_data_app(made)


@pytest.fixture
async def market(market_data_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client on the running market-data service."""
    admin = bearer(uuid.uuid4(), "admin")  # feeds are an admin's to manage
    async with app_client(market_data_app, base_url="http://market-data", headers=admin) as http:
        yield http


@pytest.fixture
def app(
    settings: Settings,
    market_data_app: FastAPI,
    market: httpx.AsyncClient,
    account_book: AccountBook,
) -> FastAPI:
    return create_app(
        settings,
        market_transport=httpx.ASGITransport(app=market_data_app),
        execution_transport=account_book.transport,
    )
