"""Postgres access: asyncpg pools bound to one service schema, SQL migrations applied with
dbmate, and rows past their keep time deleted in chunks."""

from trademesh_db.migrate import MigrationError, migrate
from trademesh_db.pool import Database, create_pool
from trademesh_db.prune import delete_older_than

__all__ = ["Database", "MigrationError", "create_pool", "delete_older_than", "migrate"]
