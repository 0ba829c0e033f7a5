"""Releasing a pooled connection costs no round trip, and still never hands on an open transaction."""

from __future__ import annotations

import pytest
from trademesh_db import Database

pytestmark = pytest.mark.integration


async def test_a_release_runs_no_reset_query_but_rolls_back_what_a_failure_left_open(
    database_url: str, schema: str
) -> None:
    # One connection, so that every acquire gets the same one back.
    db = Database(database_url, schema, min_size=1, max_size=1)
    await db.connect()
    try:
        async with db.pool.acquire() as conn:
            pid = await conn.fetchval("SELECT pg_backend_pid()")
            # Session state no project code leaves behind, here only to see that no RESET ALL
            # (asyncpg's reset query) ran at the release.
            await conn.execute("SET statement_timeout = '12345ms'")
        with pytest.raises(RuntimeError):
            async with db.transaction() as conn:
                await conn.execute("CREATE TEMP TABLE left_behind (x int)")
                raise RuntimeError("the handler failed")
        async with db.pool.acquire() as conn:
            assert await conn.fetchval("SELECT pg_backend_pid()") == pid  # the same connection
            assert await conn.fetchval("SHOW statement_timeout") == "12345ms"  # no reset query
            assert not conn.is_in_transaction()
            # The failed transaction was rolled back: its table went with it.
            assert await conn.fetchval("SELECT to_regclass('pg_temp.left_behind')") is None
    finally:
        await db.close()
