"""`make run` as a new user sees it: every service as a process, the demo, the live line,
`trademesh status`, Ctrl-C, and a second run that resumes (T7)."""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[4]
TRADEMESH = str(Path(sys.executable).parent / "trademesh")
SUMMARY = re.compile(
    r"bars (\d+)  intents (\d+)  approved (\d+)  denied (\d+)  fills (\d+)  equity (\S+)"
)


class Platform:
    """`trademesh up` in a process group of its own, its output collected line by line."""

    def __init__(self, home: Path, offset: int) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEMESH_")}
        env["TRADEMESH_DEMO_BARS_PER_S"] = "40"
        self.home = home
        self.offset = offset
        self.lines: list[str] = []
        command = [TRADEMESH, "up", "--home", str(home), "--port-offset", str(offset)]
        self.proc = subprocess.Popen(
            [*command, "--ready-timeout", "120"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            for line in self.lines[seen:]:
                found = re.search(pattern, line)
                if found:
                    return found
            seen = len(self.lines)
            assert self.proc.poll() is None, "".join(self.lines)
            time.sleep(0.2)
        raise AssertionError(f"no {pattern!r} in:\n" + "".join(self.lines))

    def stop(self) -> str:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        time.sleep(0.2)
        return "".join(self.lines)


def _free_offset() -> int:
    """An offset at which the services' ports (8000-8600, +1 each for a replica) are all free,
    below Linux's ephemeral ports (32768 up), which the engines' own free ports come from."""
    for _ in range(50):
        offset = random.randrange(10000, 24000, 10)
        if all(_port_free(8000 + offset + n) for n in range(0, 701, 100)):
            return offset
    raise AssertionError("no free block of ports")


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _status(home: Path, offset: int) -> subprocess.CompletedProcess[str]:
    # `trademesh status` finds services by their registered ports: this platform runs offset.
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEMESH_")}
    env["TRADEMESH_PORT_OFFSET"] = str(offset)
    return subprocess.run(
        [TRADEMESH, "status", "--home", str(home)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.timeout(600)
def test_make_run_trades_on_paper_out_of_the_box_and_resumes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    offset = _free_offset()
    first = Platform(home, offset)
    try:
        first.wait_for(r"gateway:.*OpenAPI: http://127\.0\.0\.1:\d+/docs", 150)
        password = first.wait_for(r"demo admin:.*password: (\S+)", 120).group(1)
        assert len(password) >= 20
        first.wait_for(r"log in: curl", 5)
        # The live line (printed every 10 s when not on a terminal) shows the bot trading.
        deadline = time.monotonic() + 150
        figures: tuple[int, ...] = (0, 0, 0, 0, 0)
        while time.monotonic() < deadline:
            lines = [SUMMARY.search(line) for line in first.lines]
            found = [m for m in lines if m]
            if found:
                figures = tuple(int(found[-1].group(i)) for i in range(1, 6))
                if figures[4] > 0:
                    break
            time.sleep(1)
        bars, intents, approved, _denied, fills = figures
        assert bars > 0 and intents > 0 and approved > 0 and fills > 0, "".join(first.lines)

        status = _status(home, offset)
        assert status.returncode == 0, status.stdout + status.stderr
        table = status.stdout
        for service in ("market-data", "strategy", "risk", "execution", "auth", "audit"):
            assert re.search(rf"{service}\s.*ready", table), table
        assert "consumer lag" in status.stdout and "orders.intents.v1" in status.stdout
        assert re.search(r"demo bot:.*state RUNNING", status.stdout), status.stdout
    finally:
        output = first.stop()
    assert first.proc.returncode == 0, output
    assert output.rstrip().endswith("stopped")
    assert password not in (home / "demo.json").read_text()
    assert (home / "demo.json").stat().st_mode & 0o777 == 0o600
    logs = "".join(p.read_text(errors="replace") for p in (home / "logs").glob("*.log"))
    assert password not in logs

    second = Platform(home, offset)
    try:
        second.wait_for(r"demo:.*resuming the RSI-cross bot", 150)
        status = _status(home, offset)
        assert re.search(r"demo bot:.*state RUNNING", status.stdout), status.stdout
    finally:
        again = second.stop()
    assert second.proc.returncode == 0, again
    assert password not in again and "demo admin:" not in again
