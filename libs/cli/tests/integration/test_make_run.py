"""`make run` as a new user sees it: every service as a process, the demo, the live line,
`trademesh status`, Ctrl-C, and a second run that resumes."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from trademesh_testing.platform import Platform, clean_env, free_offset

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SUMMARY = re.compile(
    r"bars (\d+)  intents (\d+)  approved (\d+)  denied (\d+)  fills (\d+)  equity (\S+)"
)


@pytest.mark.timeout(600)
def test_make_run_trades_on_paper_out_of_the_box_and_resumes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    offset = free_offset()
    env = clean_env(TRADEMESH_DEMO_BARS_PER_S="40")
    first = Platform(home, offset, env=env)
    try:
        first.wait_for(r"gateway:.*OpenAPI: http://127\.0\.0\.1:\d+/docs", 150)
        password = first.wait_for(r"demo admin:.*password: (\S+)", 120).group(1)
        assert len(password) >= 20
        first.wait_for(r"log in: curl", 5)
        # The live line (printed every 10 s when not on a terminal) shows the bot trading.
        deadline = time.monotonic() + 150
        figures: tuple[int, ...] = (0, 0, 0, 0, 0)
        while time.monotonic() < deadline:
            found = [m for m in (SUMMARY.search(line) for line in first.lines) if m]
            if found:
                figures = tuple(int(found[-1].group(i)) for i in range(1, 6))
                if figures[4] > 0:
                    break
            time.sleep(1)
        bars, intents, approved, _denied, fills = figures
        assert bars > 0 and intents > 0 and approved > 0 and fills > 0, "".join(first.lines)

        status = first.trademesh("status")
        assert status.returncode == 0, status.stdout + status.stderr
        table = status.stdout
        for service in ("market-data", "strategy", "risk", "execution", "auth", "audit"):
            assert re.search(rf"{service}\s.*ready", table), table
        assert "consumer lag" in table and "orders.intents.v1" in table
        assert re.search(r"demo bot:.*state RUNNING", table), table
    finally:
        output = first.stop()
    assert first.proc.returncode == 0, output
    assert output.rstrip().endswith("stopped")
    assert password not in (home / "demo.json").read_text()
    assert (home / "demo.json").stat().st_mode & 0o777 == 0o600
    logs = "".join(p.read_text(errors="replace") for p in (home / "logs").glob("*.log"))
    assert password not in logs

    second = Platform(home, offset, env=env)
    try:
        second.wait_for(r"demo:.*resuming the RSI-cross bot", 150)
        status = second.trademesh("status")
        assert re.search(r"demo bot:.*state RUNNING", status.stdout), status.stdout
    finally:
        again = second.stop()
    assert second.proc.returncode == 0, again
    assert password not in again and "demo admin:" not in again
