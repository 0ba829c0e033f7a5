"""Postgres access: asyncpg pools bound to one service schema, and SQL migrations applied with dbmate."""

from trademesh_db.migrate import MigrationError, migrate
from trademesh_db.pool import Database, create_pool

__all__ = ["Database", "MigrationError", "create_pool", "migrate"]
