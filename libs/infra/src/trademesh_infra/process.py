"""Detached child processes recorded in pid files, so a later run can find, check and stop them."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil


@dataclass(frozen=True)
class ProcessRecord:
    """What we know of a process we started: enough to recognise it again after a crash."""

    pid: int
    create_time: float
    marker: str  # a string that must be in its command line (guards against pid reuse)

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self)))

    @classmethod
    def read(cls, path: Path) -> ProcessRecord | None:
        try:
            data = json.loads(path.read_text())
            return cls(
                pid=int(data["pid"]), create_time=float(data["create_time"]), marker=data["marker"]
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def process(self) -> psutil.Process | None:
        """The live process this record describes, or None (dead, or the pid was reused)."""
        try:
            proc = psutil.Process(self.pid)
            if abs(proc.create_time() - self.create_time) > 1.0:
                return None
            if self.marker not in " ".join(proc.cmdline()):
                return None
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            return proc
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None

    def alive(self) -> bool:
        return self.process() is not None


def spawn_detached(
    argv: list[str], *, log_path: Path, env: dict[str, str] | None = None, marker: str
) -> tuple[ProcessRecord, subprocess.Popen[bytes]]:
    """Start argv in its own session (it outlives the caller), output appended to log_path."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
    record = ProcessRecord(
        pid=proc.pid, create_time=psutil.Process(proc.pid).create_time(), marker=marker
    )
    return record, proc


def terminate(record: ProcessRecord, timeout: float = 5.0) -> bool:
    """SIGTERM, then SIGKILL after `timeout`. Returns True when the process is gone."""
    proc = record.process()
    if proc is None:
        return True
    with contextlib.suppress(psutil.NoSuchProcess):
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except psutil.TimeoutExpired:
            proc.kill()
            with contextlib.suppress(psutil.TimeoutExpired):
                proc.wait(timeout)
    # Reap it if it is our own child, so it does not linger as a zombie.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(record.pid, os.WNOHANG)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and record.alive():
        time.sleep(0.02)
    return not record.alive()
