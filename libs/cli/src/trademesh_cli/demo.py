"""What `make run` sets up once the platform is ready, and the live line it shows.

The first run, through the gateway's public API only (what a user would do):
- a demo admin, made by auth's own command with a random password printed once;
- an API key of that admin (read and trade), kept in `.trademesh/demo.json` (mode 0600, like the
  local master key beside it) so that later runs can show the account without the password;
- a paper account, a replay of the bundled GOOG daily bars, and a bot running RSI cross on it.

Later runs find the file and resume: feeds and bots live in Postgres and restart by themselves
(market-data restarts enabled feeds, strategy resumes running bots).

The live line shows the demo account's own figures (its bot's bars and intents, risk's approvals
and denials of them, the account's fills and equity), read through the gateway with the demo's
API key, and says when the replay has ended and what replays it again.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

DEMO_EMAIL = "demo-admin@example.com"
DEMO_INSTRUMENT = "nasdaq:GOOG/USD"
DEMO_FILE = "GOOG.csv"  # bundled with market-data (its data/README.md says where it comes from)
DEMO_BARS_PER_S = 8.0  # the whole file (2,148 days) in about four and a half minutes
DEMO_STRATEGY = "rsi_cross"
WARM_BARS = 30  # the bot is started once this many bars are stored (RSI's warm-up and more)


class DemoError(RuntimeError):
    """A demo step failed: the message says which and why (never a secret)."""


@dataclass
class DemoState:
    email: str
    user_id: str
    api_key: str
    account_id: str
    feed_id: str
    bot_id: str
    instrument_id: str = DEMO_INSTRUMENT

    def __repr__(self) -> str:  # never the key
        return f"DemoState({self.email!r}, account={self.account_id}, bot={self.bot_id})"


def state_path(home: Path) -> Path:
    return home / "demo.json"


def load_state(home: Path) -> DemoState | None:
    path = state_path(home)
    if not path.exists():
        return None
    try:
        return DemoState(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _save(home: Path, state: DemoState) -> None:
    path = state_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(asdict(state), handle)


def _check(response: httpx.Response, what: str, *ok: int) -> Any:
    if response.status_code not in (ok or (200, 201)):
        try:
            detail = response.json().get("detail") or response.json().get("title")
        except ValueError:
            detail = response.text[:200]
        raise DemoError(f"{what}: {response.status_code} {detail}")
    return response.json() if response.content else None


def create_admin(env: dict[str, str], email: str, password: str) -> None:
    """The demo admin, by auth's own command (a process of its own, as `trademesh user create`)."""
    command = [sys.executable, "-m", "trademesh_auth.admin", "create-user", "--email", email]
    done = subprocess.run(
        [*command, "--admin", "--password-stdin"],
        input=password.encode(),
        env={**os.environ, **env},
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise DemoError(f"creating the demo admin failed: {tail[0]}")


def set_up(gateway: str, home: Path, env: dict[str, str]) -> tuple[DemoState, str]:
    """The first run's steps; (state, the admin's password: print it once, keep it nowhere)."""
    bars_per_s = float(os.environ.get("TRADEMESH_DEMO_BARS_PER_S", DEMO_BARS_PER_S))
    password = secrets.token_urlsafe(18)
    create_admin(env, DEMO_EMAIL, password)
    with httpx.Client(base_url=gateway, timeout=30.0) as http:
        login = _check(
            http.post("/api/v1/auth/login", json={"email": DEMO_EMAIL, "password": password}),
            "logging the demo admin in",
        )
        bearer = {"Authorization": f"Bearer {login['access_token']}"}
        key = _check(
            http.post(
                "/api/v1/api-keys",
                json={"name": "make run demo", "scopes": ["read", "trade"]},
                headers=bearer,
            ),
            "making the demo's API key",
        )
        me = _check(http.get("/api/v1/auth/me", headers=bearer), "reading the demo admin")
        account = _check(
            http.post(
                "/api/v1/accounts",
                json={"name": "demo paper account", "venue": "paper", "cash": "100000"},
                headers=bearer,
            ),
            "opening the paper account",
        )
        feed = _check(
            http.post(
                "/api/v1/feeds",
                json={
                    "instrument_id": DEMO_INSTRUMENT,
                    "timeframes": ["1d"],
                    "config": {
                        "kind": "replay",
                        "file": DEMO_FILE,
                        "speed": 86400 * bars_per_s,
                    },
                },
                headers=bearer,
            ),
            "starting the replay",
        )
        _wait_for_bars(http, bearer, WARM_BARS)
        bot = _check(
            http.post(
                "/api/v1/bots",
                json={
                    "name": "demo RSI cross",
                    "strategy": DEMO_STRATEGY,
                    "instrument_id": DEMO_INSTRUMENT,
                    "timeframe": "1d",
                    "account_id": account["account_id"],
                    "sizing": {"kind": "quantity", "value": "10"},
                },
                headers=bearer,
            ),
            "starting the bot",
        )
    state = DemoState(
        email=DEMO_EMAIL,
        user_id=str(me["user_id"]),
        api_key=str(key["api_key"]),
        account_id=str(account["account_id"]),
        feed_id=str(feed["feed_id"]),
        bot_id=str(bot["bot_id"]),
    )
    _save(home, state)
    return state, password


def _wait_for_bars(http: httpx.Client, headers: dict[str, str], at_least: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        response = http.get(
            "/api/v1/ohlcv",
            params={
                "instrument": DEMO_INSTRUMENT,
                "timeframe": "1d",
                "start": "2000-01-01",
                "end": "2100-01-01",
                "limit": at_least,
            },
            headers=headers,
        )
        if response.status_code == 200 and len(response.json()["items"]) >= at_least:
            return
        time.sleep(0.5)
    raise DemoError(f"the replay stored fewer than {at_least} bars in two minutes")


REPLAY_ENDED = ("finished", "stopped")  # a replay feed that ran to its end, or was stopped


@dataclass
class Summary:
    """The demo account's own figures: its bot's bars, its intents and what became of them, its
    fills and equity, read through the gateway with the demo's API key."""

    bars: int = 0
    intents: int = 0
    approved: int = 0
    denied: int = 0
    fills: int = 0
    equity: Decimal | None = None
    bot_state: str | None = None
    replay_ended: bool = False
    replay_command: str | None = None

    def line(self) -> str:
        equity = "n/a" if self.equity is None else f"{self.equity:,.2f}"
        bot = f"  bot {self.bot_state}" if self.bot_state else ""
        ended = ""
        if self.replay_ended:
            ended = "  replay ended" + (
                f" (again: {self.replay_command})" if self.replay_command else ""
            )
        return (
            f"bars {self.bars}  intents {self.intents}  approved {self.approved}  "
            f"denied {self.denied}  fills {self.fills}  equity {equity}{bot}{ended}"
        )


def replay_command(home: Path) -> str:
    """What replays the demo from its first bar: a fresh database and demo (the bot has seen
    every bar of the file, and bars it has seen it never acts on again)."""
    here = Path.cwd()
    shown = home.relative_to(here) if home.is_relative_to(here) else home
    return f"Ctrl-C, rm -rf {shown}/postgres {shown}/demo.json, make run"


def _every(http: httpx.Client, url: str, key: dict[str, str]) -> list[dict[str, Any]]:
    """Every item of a list route, page by page (the shared page shape: items, next_cursor)."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 500} | ({"cursor": cursor} if cursor else {})
        response = http.get(url, params=params, headers=key)
        if response.status_code != 200:
            raise ValueError(f"{url}: {response.status_code}")
        page = response.json()
        items += page["items"]
        cursor = page.get("next_cursor")
        if not cursor:
            return items


def summary(
    http: httpx.Client, gateway: str, state: DemoState | None, replay: str | None = None
) -> Summary:
    """The demo account's figures now, through the gateway's API with the demo's API key (a
    figure the gateway does not give stays as it was: 0, n/a), read with `http` (one client for
    the supervisor's life: a client made per refresh built a TLS context each time, most of an
    idle supervisor's CPU). `replay` is the command that replays the demo again, shown once the
    replay has ended."""
    out = Summary(replay_command=replay)
    if state is None:
        return out
    key = {"X-API-Key": state.api_key}
    api = f"{gateway}/api/v1"
    try:
        bot = http.get(f"{api}/bots/{state.bot_id}", headers=key)
        if bot.status_code == 200:
            out.bot_state = str(bot.json().get("state"))
            out.bars = int(bot.json().get("bars_seen", 0))
        intents = _every(http, f"{api}/bots/{state.bot_id}/orders", key)
        out.intents = len(intents)
        out.denied = sum(1 for o in intents if o["status"] == "DENIED")
        # Risk approved what execution has heard of: an order still REQUESTED is undecided.
        out.approved = sum(1 for o in intents if o["status"] not in ("REQUESTED", "DENIED"))
        out.fills = len(_every(http, f"{api}/accounts/{state.account_id}/fills", key))
        pnl = http.get(f"{api}/accounts/{state.account_id}/pnl", headers=key)
        if pnl.status_code == 200 and pnl.json().get("equity") is not None:
            out.equity = Decimal(str(pnl.json()["equity"]))
        feed = http.get(f"{api}/feeds/{state.feed_id}", headers=key)
        if feed.status_code == 200:
            body = feed.json()
            out.replay_ended = not body.get("enabled") and body.get("state") in REPLAY_ENDED
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        pass
    return out
