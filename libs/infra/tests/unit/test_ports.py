"""free_port never hands out a port it handed out within CLAIM_S, in this process or another."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from trademesh_infra import ports

pytestmark = pytest.mark.unit


@pytest.fixture
def claims(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "claims"
    monkeypatch.setattr(ports, "CLAIMS", folder)
    return folder


def test_a_port_handed_out_is_not_handed_out_again_while_its_claim_lasts(
    claims: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = ports.free_port()
    # The OS offers the same port again (it is free: nobody bound it); free_port passes it by.
    offered = iter([first, first, first + 1 if first < 65535 else first - 1])
    monkeypatch.setattr(ports, "_os_free_port", lambda host: next(offered))
    assert ports.free_port() != first
    assert (claims / str(first)).exists()


def test_a_claim_older_than_its_time_is_taken_again(
    claims: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = ports.free_port()
    old = time.time() - ports.CLAIM_S - 1
    os.utime(claims / str(port), (old, old))
    monkeypatch.setattr(ports, "_os_free_port", lambda host: port)
    assert ports.free_port() == port
    assert time.time() - (claims / str(port)).stat().st_mtime < 60  # claimed afresh


def test_another_process_is_not_handed_a_port_this_one_was(claims: Path) -> None:
    port = ports.free_port()
    # The other process is offered that port first (as the OS may, once it is free again).
    script = (
        "from pathlib import Path\n"
        "from trademesh_infra import ports\n"
        f"ports.CLAIMS = Path({str(claims)!r})\n"
        f"offered, real = iter([{port}]), ports._os_free_port\n"
        "ports._os_free_port = lambda host: next(offered, None) or real(host)\n"
        "print(ports.free_port())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert int(out.stdout.strip()) != port
    assert (claims / out.stdout.strip()).exists()
