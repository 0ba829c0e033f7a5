"""The supervisor of `trademesh up` restarts a service process that dies (policy always), with a
back-off that doubles while it keeps dying soon after its start, and lists its processes with
their pids for `trademesh status` and for whoever signals one; with policy never, a dead
process stays down and the others go on."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from trademesh_cli import supervisor
from trademesh_cli.project import ServiceEntry, run_file

pytestmark = pytest.mark.integration


@pytest.fixture
def crashy(tmp_path: Path) -> dict[str, str]:
    """A service module that lives for NAP seconds, then exits with 3."""
    (tmp_path / "crashy.py").write_text(
        "import os, sys, time\ntime.sleep(float(os.environ['NAP']))\nsys.exit(3)\n"
    )
    return {"PYTHONPATH": str(tmp_path), "NAP": "0"}


def _until(condition: object, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_a_dead_process_is_started_again_after_a_doubling_back_off(
    tmp_path: Path,
    crashy: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(supervisor, "BACKOFF_FIRST", 0.2)
    home = tmp_path / "home"
    entry = ServiceEntry(name="crashy", module="crashy", port=18999)
    children = [supervisor._spawn(entry, 0, crashy, home / "logs")]
    first_pid = children[0].process.pid

    def restarted(times: int) -> bool:
        assert supervisor._look_after(children, "always", crashy, home, 0, lambda: False)
        return children[0].restarts >= times

    _until(lambda: restarted(2), "two restarts")
    listed = json.loads(run_file(home).read_text())
    assert [(r["name"], r["restarts"]) for r in listed] == [("crashy", 2)]
    assert listed[0]["pid"] == children[0].process.pid != first_pid
    out = capsys.readouterr().out
    assert "crashy exited with 3; restarting in 0.2s" in out
    assert "crashy exited with 3; restarting in 0.4s" in out  # it died again at once
    supervisor._stop_children(children)


def test_a_process_killed_by_a_signal_is_reported_by_the_signal_name(
    tmp_path: Path, crashy: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    entry = ServiceEntry(name="sleepy", module="crashy", port=18999)
    children = [supervisor._spawn(entry, 1, {**crashy, "NAP": "30"}, home / "logs")]
    assert children[0].name == "sleepy-2"
    children[0].process.kill()
    children[0].process.wait(5)
    assert supervisor._look_after(children, "never", crashy, home, 0, lambda: False)
    assert supervisor._look_after(children, "never", crashy, home, 0, lambda: False)
    out = capsys.readouterr().out
    assert out.count("sleepy-2 exited with -9 (SIGKILL); not restarted") == 1
    assert children[0].restarts == 0
    supervisor._stop_children(children)


def test_an_exit_during_a_stop_is_not_a_crash(tmp_path: Path, crashy: dict[str, str]) -> None:
    home = tmp_path / "home"
    entry = ServiceEntry(name="crashy", module="crashy", port=18999)
    children = [supervisor._spawn(entry, 0, crashy, home / "logs")]
    children[0].process.wait(10)
    assert supervisor._look_after(children, "always", crashy, home, 0, lambda: True) is False
    assert children[0].due is None
    supervisor._stop_children(children)


def test_services_behind_the_gateway_trust_loopback_and_the_gateway_its_metrics_port(
    tmp_path: Path,
) -> None:
    """auth counts failed logins by the client the gateway names, so it believes loopback, where
    the gateway runs; the gateway's own clients are on loopback too, so it believes nobody but
    whom the operator names; and its /metrics gets a port of its own, offset like its HTTP port."""
    (tmp_path / "envdump.py").write_text(
        "import json, os\n"
        "name = os.environ['TRADEMESH_SERVICE_NAME'] + os.environ['TRADEMESH_HTTP_PORT']\n"
        "mine = {k: v for k, v in os.environ.items() if k.startswith('TRADEMESH_')}\n"
        "open(os.path.join(os.environ['OUT'], name), 'w').write(json.dumps(mine))\n"
    )
    env = {
        "PYTHONPATH": str(tmp_path),
        "OUT": str(tmp_path),
        "TRADEMESH_TRUSTED_PROXIES": "10.9.0.0/16",  # the operator's own proxy, say
        "TRADEMESH_METRICS_PORT": "9999",
    }
    home = tmp_path / "home"
    auth = ServiceEntry(name="auth", module="envdump", port=18500)
    gateway = ServiceEntry(name="gateway", module="envdump", port=18000, metrics_port=18090)
    children = [
        supervisor._spawn(auth, 0, env, home / "logs", 5),
        supervisor._spawn(gateway, 1, env, home / "logs", 5),
    ]
    for child in children:
        assert child.process.wait(20) == 0, child.log_path.read_text()
    supervisor._stop_children(children)

    seen_by_auth = json.loads((tmp_path / "auth18505").read_text())
    assert seen_by_auth["TRADEMESH_TRUSTED_PROXIES"] == "127.0.0.1/32"
    assert "TRADEMESH_METRICS_PORT" not in seen_by_auth  # /metrics on its HTTP port
    seen_by_gateway = json.loads((tmp_path / "gateway18006").read_text())
    assert seen_by_gateway["TRADEMESH_TRUSTED_PROXIES"] == "10.9.0.0/16"
    assert seen_by_gateway["TRADEMESH_METRICS_PORT"] == "18096"
    assert children[1].metrics_url == "http://127.0.0.1:18096"
    assert children[0].metrics_url == children[0].url

    supervisor._write_run_file(home, children)
    listed = {row["name"]: row for row in json.loads(run_file(home).read_text())}
    assert listed["gateway-2"]["metrics_url"] == "http://127.0.0.1:18096"
    assert listed["auth"]["metrics_url"] == "http://127.0.0.1:18505"
