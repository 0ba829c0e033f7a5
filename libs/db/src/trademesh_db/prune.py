"""Rows past their keep time deleted in chunks: one short transaction per chunk, so a first
prune of a large table neither holds long locks nor bloats one transaction, and replicas that
prune the same table at once only wait for each other."""

from __future__ import annotations

from datetime import timedelta

from trademesh_db.pool import Database, check_identifier


async def delete_older_than(
    db: Database,
    table: str,
    column: str,
    keep: timedelta,
    *,
    where: str = "TRUE",
    chunk: int = 5000,
) -> int:
    """Delete the rows of `table` whose `column` is older than `keep` (and that match `where`,
    a fixed SQL condition of the caller's, never input), `chunk` rows a transaction; the number
    deleted. Rows whose `column` is NULL stay."""
    check_identifier(table)
    check_identifier(column)
    statement = (
        f"DELETE FROM {table} WHERE ctid = ANY(ARRAY("  # noqa: S608 - checked identifiers
        f"SELECT ctid FROM {table} WHERE {column} < now() - $1::interval AND ({where}) "
        "LIMIT $2))"
    )
    deleted = 0
    while True:
        status = await db.pool.execute(statement, keep, chunk)
        count = int(status.split()[-1])
        deleted += count
        if count < chunk:
            return deleted
