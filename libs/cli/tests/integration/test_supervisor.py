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
