"""A process with a bad setting stops at start with status 2 and one line naming the setting."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

PROGRAM = (
    "from trademesh_config import ServiceSettings, load_settings\n"
    "settings = load_settings(ServiceSettings)\n"
    "print('started on port', settings.http_port)\n"
)


def _run(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TRADEMESH_")}
    return subprocess.run(
        [sys.executable, "-c", PROGRAM],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_valid_settings_start() -> None:
    result = _run(TRADEMESH_HTTP_PORT="8181")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "started on port 8181\n"


def test_invalid_setting_stops_the_process_with_one_line() -> None:
    result = _run(
        TRADEMESH_HTTP_PORT="70000",
        TRADEMESH_DATABASE_URL="postgresql://trader:hunter2@db:5432/x",
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        "trademesh: invalid settings: TRADEMESH_HTTP_PORT: "
        "Input should be less than or equal to 65535\n"
    )
    assert "hunter2" not in result.stderr
    assert "Traceback" not in result.stderr
