"""The `trademesh` command against real engines: infra up/status/down, events tail, up."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from trademesh_db.migrate import platform_migrations_dir
from trademesh_events.topics import TOPICS
from trademesh_infra.ports import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[4]
TRADEMESH = str(Path(sys.executable).parent / "trademesh")


def _run(*args: str, home: Path, env: dict[str, str] | None = None, timeout: float = 120) -> Any:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEMESH_")}
    full_env.update(env or {})
    return subprocess.run(
        [TRADEMESH, *args, "--home", str(home)],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


async def _topics(bootstrap: str) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics()
        return {t["topic"]: len(t["partitions"]) for t in described}
    finally:
        await admin.close()


def test_user_create_makes_the_first_admin_with_a_password_shown_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    try:
        made = _run("user", "create", "--admin", "--email", "Root@Example.com", home=home)
        assert made.returncode == 0, made.stderr + made.stdout
        assert "created admin root@example.com" in made.stdout.lower()
        (line,) = [x for x in made.stdout.splitlines() if "shown once" in x]
        password = line.rsplit(" ", 1)[-1]
        assert len(password) >= 20  # made at random: there is no default password
        again = _run("user", "create", "--admin", "--email", "root@example.com", home=home)
        assert again.returncode == 1 and "Already registered" in again.stderr
        weak = subprocess.run(
            [
                TRADEMESH,
                "user",
                "create",
                "--email",
                "t@example.com",
                "--password-stdin",
                "--home",
                str(home),
            ],
            cwd=ROOT,
            env={k: v for k, v in os.environ.items() if not k.startswith("TRADEMESH_")},
            input="password\n",
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert weak.returncode == 1 and "common" in weak.stderr
        assert "password\n" not in weak.stdout
    finally:
        _run("infra", "down", home=home)


def test_infra_up_status_down(tmp_path: Path) -> None:
    home = tmp_path / "home"
    up = _run("infra", "up", home=home)
    try:
        assert up.returncode == 0, up.stderr + up.stdout
        settings = dict(
            line.split("=", 1) for line in (home / "infra.env").read_text().splitlines() if line
        )
        assert settings["TRADEMESH_KAFKA_IDEMPOTENCE"] == "false"
        # A local master key for the services' sealed secrets, made once, owner-only.
        assert settings["TRADEMESH_KEYSTORE_CURRENT_KEY"] == "local-1"
        assert (home / "keystore.json").stat().st_mode & 0o777 == 0o600
        assert (home / "infra.env").stat().st_mode & 0o777 == 0o600
        keyring = (home / "keystore.json").read_text()
        # The approval links' key too (strategy checks links, notify makes them).
        link_key = settings["TRADEMESH_APPROVAL_LINK_KEY"]
        assert len(link_key) >= 32
        assert (home / "approval-link.key").stat().st_mode & 0o777 == 0o600
        bootstrap = settings["TRADEMESH_KAFKA_BOOTSTRAP"]
        topics = asyncio.run(_topics(bootstrap))
        for spec in TOPICS:
            assert topics[spec.name] == spec.partitions
            assert topics[spec.dlq] == 1
        status = _run("infra", "status", home=home)
        assert status.returncode == 0 and "running" in status.stdout

        again = _run("infra", "up", home=home)  # idempotent: same broker, same Postgres
        assert again.returncode == 0, again.stderr
        assert (home / "infra.env").read_text().count(bootstrap) == 1
        assert (home / "keystore.json").read_text() == keyring  # the same key: data still opens
        assert f"TRADEMESH_APPROVAL_LINK_KEY={link_key}\n" in (home / "infra.env").read_text()
    finally:
        down = _run("infra", "down", home=home)
    assert down.returncode == 0, down.stderr
    status = _run("infra", "status", home=home)
    assert status.returncode == 1 and "stopped" in status.stdout


async def test_events_tail_prints_decoded_events_with_envelope(
    infra: Any, service_settings: Any, tmp_path: Path
) -> None:
    from trademesh_bus import Bus
    from trademesh_testing.samples import make_tick

    await _ensure_registry_topics(infra.kafka_bootstrap)
    bus = Bus(service_settings(), "tail-test", telemetry=False)
    await bus.start()
    try:
        envelopes = [await bus.publish(make_tick(n, "tailtest:ABC/USD")) for n in range(3)]
    finally:
        await bus.stop()
    result = await asyncio.to_thread(
        _run,
        "events", "tail", "md.ticks.v1", "--from-beginning", "--key", "tailtest:ABC/USD", "--timeout", "2",
        home=tmp_path, env={"TRADEMESH_KAFKA_BOOTSTRAP": infra.kafka_bootstrap},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["envelope"]["id"] for line in lines] == [str(e.id) for e in envelopes]
    assert lines[0]["envelope"]["type"] == "trademesh.md.tick"
    assert lines[0]["envelope"]["source"] == "tail-test"
    assert lines[0]["key"] == "tailtest:ABC/USD"
    assert lines[0]["event"]["price"] == "43000.1"  # plain: no trailing zero, no exponent


async def _ensure_registry_topics(bootstrap: str) -> None:
    from trademesh_infra.topics import ensure_topics, topic_plan

    await ensure_topics(bootstrap, topic_plan())


def test_up_starts_infra_and_the_sample_consumer_until_ready(tmp_path: Path) -> None:
    port = free_port()
    result = _run(
        "up", "--only", "event-logger", "--exit-when-ready", "--ready-timeout", "90",
        home=tmp_path / "home", env={"TRADEMESH_EVENT_LOGGER_PORT": str(port)}, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "event-logger" in result.stdout and "ready" in result.stdout
    assert f"http://127.0.0.1:{port}" in result.stdout
    # The hint names the command as a reader runs it from the root: no uv, nothing on PATH.
    assert "inspect events: ./trademesh events tail <topic>" in result.stdout
    assert "stopped" in result.stdout
    log = (tmp_path / "home" / "logs" / "event-logger.log").read_text().splitlines()
    assert log and all(
        json.loads(line)["service"] == "event-logger" for line in log if line.startswith("{")
    )


def test_ctrl_c_stops_services_and_infra_cleanly(tmp_path: Path) -> None:
    """Ctrl-C reaches the terminal's whole process group: supervisor and services alike."""
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEMESH_")}
    env["TRADEMESH_EVENT_LOGGER_PORT"] = str(free_port())
    proc = subprocess.Popen(
        [TRADEMESH, "up", "--only", "event-logger", "--ready-timeout", "90", "--home", str(home)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own group, as a shell gives a foreground job
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "Ctrl-C stops everything" in line:
                break
        assert any("ready" in line and "event-logger" in line for line in lines), lines
        os.killpg(proc.pid, signal.SIGINT)
        # `uv run` (what `make run` uses) forwards the signal to its child as well: a second
        # SIGINT arrives while the supervisor is shutting down and must not cut that short.
        time.sleep(0.3)
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        status = _run("infra", "status", home=home)
        _run("infra", "down", home=home)  # whatever the outcome, leave no engine behind
    assert proc.returncode == 0, "".join(lines) + rest
    assert "exited with" not in rest
    assert rest.strip().endswith("stopped")
    assert "running" not in status.stdout, status.stdout


def test_db_migrate_applies_once_then_reports_up_to_date(database_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "20260401000000_things.sql").write_text(
        "-- migrate:up\nCREATE TABLE things (id int);\n-- migrate:down\nDROP TABLE things;\n"
    )
    schema = f"cli_{os.getpid()}"
    args = ("db", "migrate", "--schema", schema, "--dir", str(folder))
    env = {"TRADEMESH_DATABASE_URL": database_url}
    first = _run(*args, home=tmp_path, env=env)
    assert first.returncode == 0, first.stderr
    platform = len(list(platform_migrations_dir().glob("*.sql")))  # the inbox/outbox ones
    assert f"{schema}: {platform + 1} migration(s) applied" in first.stdout
    second = _run(*args, home=tmp_path, env=env)
    assert second.returncode == 0, second.stderr
    assert f"{schema}: up to date" in second.stdout
