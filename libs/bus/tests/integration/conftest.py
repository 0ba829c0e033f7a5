"""Fixtures of the bus's integration tests: a migrated schema with tables for handlers to write."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from trademesh_db import Database, migrate


@pytest.fixture
async def db(database_url: str, schema: str) -> AsyncIterator[Database]:
    migrate(database_url, schema)
    database = Database(database_url, schema)
    await database.connect()
    await database.pool.execute(
        "CREATE TABLE applied (event_id uuid NOT NULL, trade_id text NOT NULL);"
        "CREATE TABLE deliveries (event_id uuid NOT NULL)"
    )
    yield database
    await database.close()
