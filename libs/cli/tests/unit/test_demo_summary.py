"""The live line `make run` shows: the demo account's own figures, read through the gateway's API
with the demo's API key (here a stand-in gateway that answers as the real one's routes do), and
what to run once the replay has ended."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from trademesh_cli.demo import DemoState, Summary, replay_command, summary

pytestmark = pytest.mark.unit

# The same expression as libs/cli/tests/integration/test_make_run.py reads the line with.
SUMMARY = re.compile(
    r"bars (\d+)  intents (\d+)  approved (\d+)  denied (\d+)  fills (\d+)  equity (\S+)"
)
KEY = "tmk_demo_key"
STATE = DemoState(
    email="demo-admin@example.com",
    user_id="u1",
    api_key=KEY,
    account_id="acc-1",
    feed_id="feed-1",
    bot_id="bot-1",
)
STATUSES = ["FILLED"] * 4 + ["DENIED"] * 2 + ["REQUESTED", "ACCEPTED", "CANCELED"]


def _pages(items: list[dict[str, Any]], request: httpx.Request) -> dict[str, Any]:
    """The shared page shape, in pages of at most `limit`, the cursor being an offset here."""
    limit = int(request.url.params["limit"])
    start = int(request.url.params.get("cursor", "0"))
    end = start + min(limit, 4)  # smaller pages than asked: the client must follow the cursor
    return {"items": items[start:end], "next_cursor": str(end) if end < len(items) else None}


def _gateway(feed_state: str, seen: list[httpx.Request]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.headers.get("X-API-Key") != KEY:
            return httpx.Response(401)
        path = request.url.path
        if path == "/api/v1/bots/bot-1":
            return httpx.Response(200, json={"state": "RUNNING", "bars_seen": 412})
        if path == "/api/v1/bots/bot-1/orders":
            orders = [{"client_order_id": f"o{n}", "status": s} for n, s in enumerate(STATUSES)]
            return httpx.Response(200, json=_pages(orders, request))
        if path == "/api/v1/accounts/acc-1/fills":
            fills = [{"trade_id": f"t{n}"} for n in range(6)]
            return httpx.Response(200, json=_pages(fills, request))
        if path == "/api/v1/accounts/acc-1/pnl":
            return httpx.Response(200, json={"equity": "101234.5"})
        if path == "/api/v1/feeds/feed-1":
            enabled = feed_state not in ("finished", "stopped")
            return httpx.Response(200, json={"state": feed_state, "enabled": enabled})
        return httpx.Response(404)

    return httpx.MockTransport(handle)


def test_the_line_counts_the_demo_accounts_own_orders_and_fills() -> None:
    seen: list[httpx.Request] = []
    with httpx.Client(transport=_gateway("running", seen)) as http:
        got = summary(http, "http://gw", STATE, "make run")
    assert (got.bars, got.intents, got.denied, got.approved, got.fills) == (412, 9, 2, 6, 6)
    assert got.equity == Decimal("101234.5") and got.bot_state == "RUNNING"
    line = got.line()
    found = SUMMARY.search(line)
    assert found is not None, line
    assert tuple(int(found.group(i)) for i in range(1, 6)) == (412, 9, 6, 2, 6)
    assert found.group(6) == "101,234.50"
    assert "replay ended" not in line
    # every page was read (9 orders in pages of 4, 6 fills in pages of 4)
    assert sum(r.url.path.endswith("/orders") for r in seen) == 3
    assert sum(r.url.path.endswith("/fills") for r in seen) == 2


@pytest.mark.parametrize("feed_state", ["finished", "stopped"])
def test_once_the_replay_has_ended_the_line_says_so_and_what_replays_it(feed_state: str) -> None:
    with httpx.Client(transport=_gateway(feed_state, [])) as http:
        line = summary(http, "http://gw", STATE, "Ctrl-C, rm -rf x/postgres, make run").line()
    assert SUMMARY.search(line) is not None, line
    assert line.endswith("replay ended (again: Ctrl-C, rm -rf x/postgres, make run)")


def test_without_a_demo_or_a_gateway_the_figures_are_zero() -> None:
    assert summary(httpx.Client(), "http://gw", None).line() == Summary().line()

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with httpx.Client(transport=httpx.MockTransport(down)) as http:
        got = summary(http, "http://gw", STATE)
    assert (got.bars, got.intents, got.fills, got.equity) == (0, 0, 0, None)
    assert SUMMARY.search(got.line()) is not None


def test_the_replay_command_names_the_home_beside_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert replay_command(tmp_path / ".trademesh") == (
        "Ctrl-C, rm -rf .trademesh/postgres .trademesh/demo.json, make run"
    )
    elsewhere = Path("/srv/trademesh-home")
    assert replay_command(elsewhere) == (
        f"Ctrl-C, rm -rf {elsewhere}/postgres {elsewhere}/demo.json, make run"
    )
