"""What the end-to-end suites share (fixture `trading`): a trading load through the gateway (a
replay and bots that trade on most bars), and the ledger checks that must hold afterwards, read
from each service's own tables."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import asyncpg
import httpx
import pytest
from trademesh_cli.status import consumer_lag
from trademesh_testing.platform import ROOT, Platform, clean_env, free_offset

T = TypeVar("T")
PASSWORD = "a long e2e passphrase for the test users"
REPLAY_BARS = 2148  # rows of the bundled GOOG.csv (market-data's data/README.md)
GOOG = ROOT / "services/market-data/src/trademesh_market_data/data/GOOG.csv"


def replay_folder(folder: Path, head: int) -> Path:
    """A replay folder (TRADEMESH_REPLAY_DIR) with the bundled GOOG.csv and its first `head`
    days as GOOG-head.csv."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = GOOG.read_text().splitlines()
    (folder / "GOOG.csv").write_text("\n".join(lines) + "\n")
    (folder / "GOOG-head.csv").write_text("\n".join(lines[: head + 1]) + "\n")
    return folder


HEAD_BARS = 1050


class Inbox(BaseHTTPRequestHandler):
    """A webhook receiver and a Telegram Bot API's sendMessage, on loopback: what notify sends
    the users' channels. Every POST's JSON body is kept by its path (`received`)."""

    received: ClassVar[dict[str, list[dict[str, Any]]]] = {}
    lock: ClassVar[threading.Lock] = threading.Lock()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        with self.lock:
            got = self.received.setdefault(self.path, [])
            got.append(body)
            count = len(got)
        # A Bot API answer for Telegram's path, any 2xx for a webhook.
        answer = json.dumps({"ok": True, "result": {"message_id": count}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the test says what it got

    @classmethod
    def bodies(cls, path: str) -> list[dict[str, Any]]:
        with cls.lock:
            return list(cls.received.get(path, []))


@pytest.fixture(scope="session")
def inbox() -> Iterator[str]:
    """The base URL of the Inbox on loopback, for the whole session."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Inbox)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory, inbox: str) -> Iterator[Platform]:
    """The platform as `make run` starts it, on ports of its own, shared by the suites that do
    not change how it runs; open registration (users sign themselves up; the default waits for
    an admin's approval); notify may send to loopback (the Inbox: webhooks, and the Telegram Bot
    API it is pointed at). The Inbox is not Telegram: its per-chat limit (20 a minute) is lifted,
    since a replay played fast asks for an approval every other second, more than a chat may be
    told, and the chat's backlog would only grow (the limits' workings are notify's tests)."""
    base = tmp_path_factory.mktemp("e2e")
    replays = replay_folder(base / "replays", HEAD_BARS)
    env = clean_env(
        TRADEMESH_REGISTRATION="open",
        TRADEMESH_REPLAY_DIR=str(replays),
        TRADEMESH_WEBHOOK_ALLOWED_ADDRESS_KINDS='["loopback"]',
        TRADEMESH_TELEGRAM_API_BASE=inbox,
        TRADEMESH_DELIVERY_RATE_LIMITS=json.dumps(
            {
                "webhook": "20/second;600/minute",
                "telegram": "50/second",
                "email": "10/minute;100/hour",
            }
        ),
    )
    running = Platform(base / "home", free_offset(), "--no-demo", env=env)
    try:
        running.wait_for(r"gateway:.*OpenAPI", 150)
        yield running
    finally:
        running.stop()


# SMA(1) over SMA(2) crosses whenever the close turns (up after down or down after up): about
# every other bar of a real daily series, so each bot asks for an order on about half the bars.
CHOPPY = {"strategy": "sma_cross", "params": {"fast": 1, "slow": 2}}


def eventually(check: Callable[[], T | None], timeout: float = 60.0, what: str = "") -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"not within {timeout:g}s: {what}")


def login(http: httpx.Client, email: str) -> dict[str, str]:
    answer = http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


@dataclass
class Load:
    instruments: list[str]
    accounts: list[str]  # one per bot
    bots: list[str]
    admin: dict[str, str]
    bars: int  # per instrument


def start_trading(
    platform: Platform,
    *,
    instruments: int,
    bots_per_instrument: int,
    bars_per_s: float,
    file: str = "GOOG.csv",
    bars: int = REPLAY_BARS,
) -> Load:
    """An admin starts a replay of GOOG daily bars (`file`, of `bars` days) per instrument; a trader opens one paper
    account per bot and starts a bot on each: SMA(1)/SMA(2) cross, one share per entry."""
    admin_email = f"admin-{uuid.uuid4().hex[:8]}@example.com"
    made = platform.trademesh("user", "create", "--admin", "--email", admin_email,
                              "--password-stdin", stdin=PASSWORD)  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr
    names = [f"nasdaq:C{uuid.uuid4().hex[:6].upper()}/USD" for _ in range(instruments)]
    with httpx.Client(base_url=platform.url(8000), timeout=30.0) as http:
        admin = login(http, admin_email)
        email = f"trader-{uuid.uuid4().hex[:8]}@example.com"
        signed_up = http.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
        assert signed_up.status_code == 201, signed_up.text
        me = login(http, email)
        accounts = []
        for n in range(instruments * bots_per_instrument):
            opened = http.post(
                "/api/v1/accounts", json={"name": f"load {n}", "cash": "1000000"}, headers=me
            )
            assert opened.status_code == 201, opened.text
            accounts.append(opened.json()["account_id"])
        for name in names:
            feed = http.post(
                "/api/v1/feeds",
                json={"instrument_id": name, "timeframes": ["1d"],
                      "config": {"kind": "replay", "file": file,
                                 "speed": 86400 * bars_per_s}},
                headers=admin,
            )  # fmt: skip
            assert feed.status_code == 201, feed.text

        def warm(name: str) -> bool:
            bars = http.get(
                "/api/v1/ohlcv",
                params={"instrument": name, "timeframe": "1d", "start": "2000-01-01",
                        "end": "2100-01-01", "limit": 5},
                headers=me,
            )  # fmt: skip
            return bars.status_code == 200 and len(bars.json()["items"]) >= 5

        for name in names:
            eventually(lambda name=name: warm(name), what=f"{name}'s first bars stored")
        bots = []
        for n, account in enumerate(accounts):
            bot = http.post(
                "/api/v1/bots",
                json={**CHOPPY, "instrument_id": names[n % instruments], "timeframe": "1d",
                      "account_id": account, "sizing": {"kind": "quantity", "value": "1"}},
                headers=me,
            )  # fmt: skip
            assert bot.status_code == 201, bot.text
            bots.append(bot.json()["bot_id"])
    return Load(names, accounts, bots, admin, bars)


async def _rows(dsn: str, query: str, *args: Any) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(dsn)
    try:
        return list(await connection.fetch(query, *args))
    finally:
        await connection.close()


def rows(platform: Platform, query: str, *args: Any) -> list[asyncpg.Record]:
    return asyncio.run(_rows(platform.setting("TRADEMESH_DATABASE_URL"), query, *args))


def lag(platform: Platform) -> dict[str, int]:
    """Messages not yet committed, per shared consumer group of strategy, risk, execution and
    audit that has any (the per-instance groups of price readers are left out)."""
    lags = asyncio.run(consumer_lag(platform.setting("TRADEMESH_KAFKA_BOOTSTRAP")))
    shared = [
        x
        for x in lags
        if x.group.split(".")[0] in ("strategy", "risk", "execution", "audit")
        and not INSTANCE.fullmatch(x.group.rsplit(".", 1)[-1])
    ]
    assert shared, lags
    out: dict[str, int] = {}
    for x in shared:
        if x.lag:
            out[f"{x.group}:{x.topic}"] = x.lag
    return out


# The last part of a per-process group's name (uuid4().hex[:12]): every replica reads it all.
INSTANCE = re.compile(r"[0-9a-f]{12}")


def wait_until_settled(platform: Platform, load: Load, timeout: float = 240.0) -> None:
    """Every bar played and seen by every bot, every intent decided, every fill in its bot's
    books, nothing left unread.

    No lag is not taken to mean that: every fill execution booked is looked for in strategy's
    books as well (a lag read from end offsets that a broker listed short, as Tansu lists the
    end of a partition inside its last batch, once let a check start while a restarted strategy
    still had 63 fills to read). A fill that never arrives fails the wait, with the count."""
    ids = [uuid.UUID(b) for b in load.bots]
    accounts = [uuid.UUID(a) for a in load.accounts]
    state: dict[str, Any] = {}
    began = time.monotonic()

    def settled() -> bool:
        played = rows(platform, "SELECT count(*) AS n, max(open_time) AS last FROM marketdata.bars "
                      "WHERE instrument_id = ANY($1) AND timeframe = '1d'", load.instruments)  # fmt: skip
        seen = rows(platform, "SELECT last_bar_time FROM strategy.bots WHERE bot_id = ANY($1)", ids)
        undecided = rows(
            platform,
            "SELECT count(*) AS n FROM strategy.bot_orders o LEFT JOIN risk.decisions d "
            "USING (client_order_id) WHERE o.bot_id = ANY($1) AND d.client_order_id IS NULL",
            ids,
        )
        unbooked = rows(
            platform,
            "SELECT count(*) AS n FROM execution.fills f WHERE f.account_id = ANY($1) AND NOT "
            "EXISTS (SELECT 1 FROM strategy.bot_fills b WHERE b.client_order_id = f.client_order_id "
            "AND b.trade_id = f.trade_id)",
            accounts,
        )
        state.update(bars=played[0]["n"], last_bar=played[0]["last"],
                     bots_at=sorted(str(r["last_bar_time"]) for r in seen),
                     undecided=undecided[0]["n"], unbooked_fills=unbooked[0]["n"],
                     lag=lag(platform))  # fmt: skip
        rest = (
            state["bars"] >= load.bars * len(load.instruments)
            and all(
                r["last_bar_time"] is not None and r["last_bar_time"] >= state["last_bar"]
                for r in seen
            )
            and state["undecided"] == 0
            and not state["lag"]
        )
        if rest and state["unbooked_fills"]:
            # Shown with the test's output: how far the bots' books trailed the lag check.
            print(f"settled but for {state['unbooked_fills']} fills not yet in the bots' books")
        return rest and state["unbooked_fills"] == 0

    try:
        eventually(
            settled, timeout, "the replay played, every bar seen, intent decided, fill booked"
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last seen: {state}") from None
    print(f"settled in {time.monotonic() - began:.1f}s: {state}")


def check_ledgers(platform: Platform, load: Load) -> int:
    """No order lost or duplicated, every fill applied once, positions equal the sum of fills
    (execution, risk and each bot alike), and the audit chain verifies. The number of orders."""
    ids = [uuid.UUID(b) for b in load.bots]
    accounts = [uuid.UUID(a) for a in load.accounts]
    intents = {r["client_order_id"]: r for r in rows(
        platform, "SELECT client_order_id, bot_id FROM strategy.bot_orders WHERE bot_id = ANY($1)",
        ids)}  # fmt: skip
    decisions = {r["client_order_id"]: r for r in rows(
        platform, "SELECT client_order_id, approved, reason FROM risk.decisions "
        "WHERE account_id = ANY($1)", accounts)}  # fmt: skip
    orders = {r["client_order_id"]: r for r in rows(
        platform, "SELECT client_order_id, account_id, status, quantity, filled FROM "
        "execution.orders WHERE account_id = ANY($1)", accounts)}  # fmt: skip
    # Nothing lost: every intent a bot recorded was decided, every approval became an order, and
    # every denial a DENIED order (execution keeps every order's story, decision 0113).
    assert set(decisions) == set(intents), (len(decisions), len(intents))
    approved = {k for k, d in decisions.items() if d["approved"]}
    denied = {(d["reason"]) for d in decisions.values() if not d["approved"]}
    kept_denied = {k for k, o in orders.items() if o["status"] == "DENIED"}
    assert kept_denied == set(decisions) - approved, (len(kept_denied), denied)
    orders = {k: o for k, o in orders.items() if k not in kept_denied}
    assert set(orders) == approved, (len(orders), len(approved), denied)
    # Each fill once: an order's fills add up to what it says it filled; a filled order filled
    # its quantity; only each bot's last order may still wait for a next bar.
    fills = rows(platform, "SELECT client_order_id, trade_id, account_id, instrument_id, side, "
                 "quantity FROM execution.fills WHERE account_id = ANY($1)", accounts)  # fmt: skip
    per_order: dict[str, Decimal] = {}
    for fill in fills:
        per_order[fill["client_order_id"]] = (
            per_order.get(fill["client_order_id"], Decimal(0)) + (fill["quantity"])
        )
    for key, order in orders.items():
        assert per_order.get(key, Decimal(0)) == order["filled"], (key, dict(order))
    open_orders = [o for o in orders.values() if o["status"] != "FILLED"]
    assert len(open_orders) <= len(load.bots), [dict(o) for o in open_orders]
    assert {o["status"] for o in open_orders} <= {"ACCEPTED", "PENDING", "NEW"}, open_orders
    # Positions equal the sum of fills, in execution, in risk and in each bot.
    signed: dict[tuple[str, str], Decimal] = {}
    for fill in fills:
        key = (str(fill["account_id"]), fill["instrument_id"])
        sign = 1 if fill["side"] == "buy" else -1
        signed[key] = signed.get(key, Decimal(0)) + sign * fill["quantity"]
    for schema in ("execution", "risk"):
        held = {
            (str(r["account_id"]), r["instrument_id"]): r["position"]
            for r in rows(
                platform,
                f"SELECT account_id, instrument_id, position FROM {schema}"
                ".positions WHERE account_id = ANY($1)",
                accounts,
            )
            if r["position"] != 0
        }
        assert held == {k: v for k, v in signed.items() if v != 0}, schema
    bot_fills = rows(platform, "SELECT o.bot_id, f.trade_id, f.side, f.quantity FROM "
                     "strategy.bot_fills f JOIN strategy.bot_orders o USING (client_order_id) "
                     "WHERE o.bot_id = ANY($1)", ids)  # fmt: skip
    assert sorted(f["trade_id"] for f in bot_fills) == sorted(f["trade_id"] for f in fills)
    for bot in rows(platform, "SELECT bot_id, account_id, instrument_id, position FROM "
                    "strategy.bots WHERE bot_id = ANY($1)", ids):  # fmt: skip
        mine = sum((f["quantity"] if f["side"] == "buy" else -f["quantity"])
                   for f in bot_fills if f["bot_id"] == bot["bot_id"])  # fmt: skip
        assert (
            bot["position"]
            == mine
            == signed.get((str(bot["account_id"]), bot["instrument_id"]), Decimal(0))
        ), dict(bot)
    # The audit log: one row per order event, and the chain verifies.
    filled = rows(platform, "SELECT target, count(*) AS n FROM audit.audit_log WHERE action = "
                  "'trademesh.order.filled' AND target = ANY($1) GROUP BY target",
                  list(orders))  # fmt: skip
    assert {r["target"] for r in filled} == {
        k for k, o in orders.items() if o["status"] == "FILLED"
    }
    assert {r["n"] for r in filled} == {1}
    with httpx.Client(base_url=platform.url(8000), timeout=60.0) as http:
        verified = http.get("/api/v1/audit/verify", headers=load.admin)
        assert verified.status_code == 200 and verified.json()["ok"] is True, verified.text
    return len(orders)


class Trading:
    """The load and the checks, for the suites' own platforms."""

    start = staticmethod(start_trading)
    settle = staticmethod(wait_until_settled)
    check = staticmethod(check_ledgers)
    rows = staticmethod(rows)
    lag = staticmethod(lag)
    replay_folder = staticmethod(replay_folder)
    eventually = staticmethod(eventually)
    PASSWORD = PASSWORD
    login = staticmethod(login)


@pytest.fixture(scope="session")
def trading() -> type[Trading]:
    return Trading
