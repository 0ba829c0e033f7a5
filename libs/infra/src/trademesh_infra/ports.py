"""Loopback port helpers."""

from __future__ import annotations

import socket
import time


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS reports free right now on `host` (it may be taken later: callers retry)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


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
