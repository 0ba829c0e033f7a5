from pathlib import Path

import asyncpg
import pytest
from trademesh_db import Database, MigrationError, migrate

pytestmark = pytest.mark.integration

SERVICE_MIGRATION = """-- migrate:up
CREATE TABLE limits (account_id uuid PRIMARY KEY, max_qty numeric NOT NULL);
-- migrate:down
DROP TABLE limits;
"""


async def _snapshot(url: str, schema: str) -> tuple[list[tuple[str, str, str]], list[str]]:
    conn = await asyncpg.connect(url)
    try:
        columns = await conn.fetch(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = $1 ORDER BY table_name, ordinal_position",
            schema,
        )
        versions = await conn.fetch(
            f'SELECT version FROM "{schema}".schema_migrations ORDER BY version'
        )
    finally:
        await conn.close()
    return [tuple(r) for r in columns], [r["version"] for r in versions]


@pytest.fixture
def service_migrations(tmp_path: Path) -> Path:
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "20260201000000_limits.sql").write_text(SERVICE_MIGRATION)
    return folder


async def test_migrate_creates_schema_platform_and_service_tables(
    database_url: str, schema: str, service_migrations: Path
) -> None:
    migrate(database_url, schema, [service_migrations])
    columns, versions = await _snapshot(database_url, schema)
    tables = {c[0] for c in columns}
    assert {"inbox", "outbox", "limits", "schema_migrations"} <= tables
    assert versions == ["20260101000000", "20260201000000", "20261206000000", "20261206000001"]


async def test_migrations_run_twice_change_nothing(
    database_url: str, schema: str, service_migrations: Path
) -> None:
    migrate(database_url, schema, [service_migrations])
    before = await _snapshot(database_url, schema)
    output = migrate(database_url, schema, [service_migrations])
    assert "Applying" not in output
    assert await _snapshot(database_url, schema) == before


async def test_failed_migration_raises_without_the_password(
    database_url: str, schema: str, tmp_path: Path
) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "20260301000000_bad.sql").write_text(
        "-- migrate:up\nCREATE TABLE broken (;\n-- migrate:down\n"
    )
    # The embedded server trusts loopback, so a password in the URL is accepted and ignored.
    url = database_url.replace("postgres@", "postgres:s3cret-pw-9@")
    with pytest.raises(MigrationError) as info:
        migrate(url, schema, [bad])
    assert "syntax error" in str(info.value)
    assert "s3cret-pw-9" not in str(info.value)


async def test_pool_sees_its_own_schema_first(database_url: str, schema: str) -> None:
    migrate(database_url, schema)
    db = Database(database_url, schema)
    await db.connect()
    try:
        async with db.transaction() as conn:
            await conn.execute(
                "INSERT INTO inbox (consumer, event_id, topic) VALUES ('c', gen_random_uuid(), 't')"
            )
        assert await db.fetchval(f'SELECT count(*) FROM "{schema}".inbox') == 1
    finally:
        await db.close()


async def test_transaction_rolls_back_on_error(database_url: str, schema: str) -> None:
    migrate(database_url, schema)
    db = Database(database_url, schema)
    await db.connect()
    try:
        with pytest.raises(RuntimeError):
            async with db.transaction() as conn:
                await conn.execute(
                    "INSERT INTO inbox (consumer, event_id, topic) VALUES ('c', gen_random_uuid(), 't')"
                )
                raise RuntimeError("boom")
        assert await db.fetchval("SELECT count(*) FROM inbox") == 0
    finally:
        await db.close()


async def test_check_ready_fails_when_postgres_is_unreachable() -> None:
    from trademesh_infra.ports import free_port

    db = Database(f"postgresql://postgres@127.0.0.1:{free_port()}/trademesh", "x")
    with pytest.raises(OSError, match=r"Connect call failed|Connection refused"):
        await db.check_ready(timeout=1.0)
