"""Loopback port helpers."""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import tempfile
import time
from pathlib import Path

#: Where free_port notes the ports it handed out, for every process of this machine's user.
CLAIMS = Path(tempfile.gettempdir()) / f"trademesh-ports-{os.getuid()}"
#: How long a port handed out is not handed out again.
CLAIM_S = 600.0


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS reports free right now on `host` (it may be taken later: callers retry),
    and that no process of this machine was handed by free_port in the last CLAIM_S seconds.

    The OS gives out a port again as soon as it is free: an engine stopped for a while (a test
    stopping the broker to see its clients fail, then starting it again on its port) would
    otherwise see its port given to another process's engine of the same kind, and its clients
    would carry on with that one."""
    port = _os_free_port(host)
    for _ in range(100):
        if _claim(port):
            return port
        port = _os_free_port(host)
    return port  # every port the OS offered was claimed: a free one is still better than none


def _os_free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _claim(port: int) -> bool:
    """Note `port` as handed out now, unless it was within CLAIM_S (then False). One lock file
    serialises the processes; a claim is a file named after the port, its time the claim's."""
    CLAIMS.mkdir(mode=0o700, exist_ok=True)
    with (CLAIMS / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        claim = CLAIMS / str(port)
        with contextlib.suppress(FileNotFoundError):
            if time.time() - claim.stat().st_mtime < CLAIM_S:
                return False
        claim.touch()
        os.utime(claim)  # an old claim's file is reused: its time is now
        return True


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout: float, *, alive: object = None) -> bool:
    """Poll until host:port accepts connections or `timeout` seconds pass.

    `alive`, when given, is a callable returning False once the process that should open the port
    has died, so a crashed start fails at once instead of after the whole timeout.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(host, port):
            return True
        if callable(alive) and not alive():
            return False
        time.sleep(0.02)
    return False
