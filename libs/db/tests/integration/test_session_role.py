"""Database(session_role=...): every pooled connection acts as the narrower role, for its whole life."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from trademesh_db import Database, migrate

pytestmark = pytest.mark.integration


@pytest.fixture
async def reader_role(database_url: str, schema: str) -> AsyncIterator[str]:
    """A NOLOGIN role that may read and insert into the schema's inbox, and nothing more.

    Roles are cluster-wide, so the name is this test's own and the role is dropped afterwards.
    """
    migrate(database_url, schema)
    role = f"t_role_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f"CREATE ROLE {role} NOLOGIN")
        await conn.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO {role}')
        await conn.execute(f'GRANT SELECT, INSERT ON "{schema}".inbox TO {role}')
        yield role
        await conn.execute(f"DROP OWNED BY {role}")
        await conn.execute(f"DROP ROLE {role}")
    finally:
        await conn.close()


async def test_connections_act_as_the_session_role_after_every_release(
    database_url: str, schema: str, reader_role: str
) -> None:
    # One connection, so that the second acquire gets the same one back after asyncpg's reset.
    db = Database(database_url, schema, min_size=1, max_size=1, session_role=reader_role)
    await db.connect()
    try:
        for _ in range(2):
            async with db.transaction() as conn:
                users = await conn.fetchrow("SELECT current_user AS acting, session_user AS login")
                await conn.execute(
                    "INSERT INTO inbox (consumer, event_id, topic) "
                    "VALUES ('c', gen_random_uuid(), 't')"
                )
            assert users["acting"] == reader_role
            assert users["login"] != reader_role
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await db.pool.execute("DELETE FROM inbox")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await db.pool.execute("UPDATE inbox SET topic = 'x'")
        assert await db.fetchval("SELECT count(*) FROM inbox") == 2
    finally:
        await db.close()


async def test_without_a_session_role_connections_act_as_the_login_user(
    database_url: str, schema: str
) -> None:
    migrate(database_url, schema)
    db = Database(database_url, schema)
    await db.connect()
    try:
        users = await db.pool.fetchrow("SELECT current_user AS acting, session_user AS login")
        assert users["acting"] == users["login"]
        await db.pool.execute("DELETE FROM inbox")  # the login user's own privileges
    finally:
        await db.close()
