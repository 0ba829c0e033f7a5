"""A whole platform as `make run` starts it (`trademesh up`: embedded engines, every service a
process of its own) for end-to-end tests, on ports of its own."""

from __future__ import annotations

import json
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

ROOT = Path(__file__).resolve().parents[4]
TRADEMESH = str(Path(sys.executable).parent / "trademesh")


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without TRADEMESH_* (the tests' own settings), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEMESH_")}
    env.update(extra)
    return env


def free_offset() -> int:
    """An offset at which the services' ports (8000-8600, +1 each for a replica) and the
    gateway's metrics port (8090) are all free, below Linux's ephemeral ports (32768 up), which
    the engines' own free ports come from."""
    ports = [*range(8000, 8701, 100), 8090]
    for _ in range(50):
        offset = random.randrange(10000, 24000, 10)  # noqa: S311 - a port block, not a secret
        if all(_port_free(port + offset) for port in ports):
            return offset
    raise AssertionError("no free block of ports")


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class Platform:
    """`trademesh up` in a process group of its own, its output collected line by line."""

    def __init__(self, home: Path, offset: int, *args: str, env: dict[str, str] | None = None):
        self.home = home
        self.offset = offset
        self.lines: list[str] = []
        command = [TRADEMESH, "up", "--home", str(home), "--port-offset", str(offset)]
        self.proc = subprocess.Popen(
            [*command, "--ready-timeout", "120", *args],
            cwd=ROOT,
            env=env or clean_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def url(self, port: int) -> str:
        """The URL of the service registered on `port` (8000: the gateway)."""
        return f"http://127.0.0.1:{port + self.offset}"

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        """The first output line matching `pattern` (fails if the platform exits first)."""
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

    def trademesh(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Another `trademesh` command against this platform (its home and ports)."""
        return subprocess.run(
            [TRADEMESH, *args, "--home", str(self.home)],
            cwd=ROOT,
            env=clean_env(TRADEMESH_PORT_OFFSET=str(self.offset)),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def setting(self, name: str) -> str:
        """A setting of the engines `trademesh up` started (TRADEMESH_DATABASE_URL,
        TRADEMESH_KAFKA_BOOTSTRAP), from the settings file it writes in its home."""
        for line in (self.home / "infra.env").read_text().splitlines():
            key, _, value = line.partition("=")
            if key == name:
                return value.strip("'\"")
        raise AssertionError(f"no {name} in infra.env")

    def processes(self) -> dict[str, dict[str, object]]:
        """The service processes `trademesh up` runs now, by name (risk, risk-2, ...): service,
        replica, url, pid and restarts, from the list it keeps in its home."""
        rows = json.loads((self.home / "run" / "services.json").read_text())
        return {str(row["name"]): row for row in rows}

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL) -> int:
        """Send `sig` to the service process `name`; its pid."""
        pid = int(str(self.processes()[name]["pid"]))
        os.kill(pid, sig)
        return pid

    def stop(self) -> str:
        """Ctrl-C, as a terminal sends it; the whole output."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        time.sleep(0.2)
        return "".join(self.lines)
