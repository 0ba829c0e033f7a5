"""Postgres access: asyncpg pools bound to one service schema, and SQL migrations applied with dbmate."""
