"""What `make run` sets up once the platform is ready, and the live line it shows.

The first run, through the gateway's public API only (what a user would do):
- a demo admin, made by auth's own command with a random password printed once;
- an API key of that admin (read and trade), kept in `.trademesh/demo.json` (mode 0600, like the
  local master key beside it) so that later runs can show the account without the password;
- a paper account, a replay of the bundled GOOG daily bars, and a bot running RSI cross on it.

Later runs find the file and resume: feeds and bots live in Postgres and restart by themselves
(market-data restarts enabled feeds, strategy resumes running bots).

The live line adds up the services' own Prometheus counters (bars, intents, decisions, fills)
and asks the gateway for the account's equity.
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
from prometheus_client.parser import text_string_to_metric_families

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


@dataclass
class Summary:
    bars: int = 0
    intents: int = 0
    approved: int = 0
    denied: int = 0
    fills: int = 0
    equity: Decimal | None = None
    bot_state: str | None = None

    def line(self) -> str:
        equity = "n/a" if self.equity is None else f"{self.equity:,.2f}"
        bot = f"  bot {self.bot_state}" if self.bot_state else ""
        return (
            f"bars {self.bars}  intents {self.intents}  approved {self.approved}  "
            f"denied {self.denied}  fills {self.fills}  equity {equity}{bot}"
        )


def _counter_sum(text: str, name: str, **labels: str) -> int:
    total = 0.0
    # The parser reads only the family's own lines: a service's whole exposition (hundreds of
    # series) parsed every refresh cost the supervisor more CPU than an idle service uses.
    family_name = name.removesuffix("_total")
    heads = (family_name, f"# HELP {family_name}", f"# TYPE {family_name}")
    own = "\n".join(line for line in text.splitlines() if line.startswith(heads))
    for family in text_string_to_metric_families(own):
        if family.name != name.removesuffix("_total"):
            continue
        for sample in family.samples:
            # Label values as the services write them (a Python bool is "True").
            if sample.name.endswith("_total") and all(
                str(sample.labels.get(k, "")).lower() == v.lower() for k, v in labels.items()
            ):
                total += sample.value
    return int(total)


def summary(
    http: httpx.Client, urls: dict[str, str], gateway: str, state: DemoState | None
) -> Summary:
    """The platform's figures now (a service that does not answer counts 0), read with `http`
    (one client for the supervisor's life: a client made per refresh built a TLS context each
    time, most of an idle supervisor's CPU)."""
    out = Summary()

    def metrics(service: str) -> str:
        url = urls.get(service)
        if url is None:
            return ""
        try:
            return http.get(f"{url}/metrics").text
        except httpx.HTTPError:
            return ""

    out.bars = _counter_sum(metrics("market-data"), "trademesh_md_bars_out_total", final="true")
    out.intents = _counter_sum(metrics("strategy"), "trademesh_strategy_intents_total")
    risk = metrics("risk")
    out.approved = _counter_sum(risk, "trademesh_risk_decisions_total", decision="approved")
    out.denied = _counter_sum(risk, "trademesh_risk_decisions_total", decision="denied")
    out.fills = _counter_sum(metrics("execution"), "trademesh_execution_fills_total")
    if state is not None:
        key = {"X-API-Key": state.api_key}
        try:
            pnl = http.get(f"{gateway}/api/v1/accounts/{state.account_id}/pnl", headers=key)
            if pnl.status_code == 200 and pnl.json().get("equity") is not None:
                out.equity = Decimal(str(pnl.json()["equity"]))
            bot = http.get(f"{gateway}/api/v1/bots/{state.bot_id}", headers=key)
            if bot.status_code == 200:
                out.bot_state = str(bot.json().get("state"))
        except (httpx.HTTPError, ValueError):
            pass
    return out
