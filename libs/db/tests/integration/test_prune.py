"""Rows past their keep time go, in chunks, and only those the caller's condition names."""

from __future__ import annotations

from datetime import timedelta

import pytest
from trademesh_db import Database, delete_older_than

pytestmark = pytest.mark.integration


async def test_rows_older_than_the_keep_time_and_matching_the_condition_go_in_chunks(
    database_url: str, schema: str
) -> None:
    db = Database(database_url, schema)
    await db.connect()
    try:
        await db.pool.execute(
            "CREATE TABLE kept_rows (id int PRIMARY KEY, done boolean NOT NULL, at timestamptz)"
        )
        # 1-7: old and done; 8: old, not done; 9: recent and done; 10: no time at all.
        await db.pool.execute(
            "INSERT INTO kept_rows SELECT n, true, now() - interval '2 days' "
            "FROM generate_series(1, 7) n"
        )
        await db.pool.execute(
            "INSERT INTO kept_rows VALUES (8, false, now() - interval '2 days'), "
            "(9, true, now() - interval '1 hour'), (10, true, NULL)"
        )
        deleted = await delete_older_than(
            db, "kept_rows", "at", timedelta(days=1), where="done", chunk=3
        )
        assert deleted == 7  # three chunks: 3, 3 and the last 1
        left = await db.pool.fetch("SELECT id FROM kept_rows ORDER BY id")
        assert [row["id"] for row in left] == [8, 9, 10]
        assert await delete_older_than(db, "kept_rows", "at", timedelta(days=1), where="done") == 0
    finally:
        await db.close()
