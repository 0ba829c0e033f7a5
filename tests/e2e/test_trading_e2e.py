"""End to end, through the gateway's HTTP API only, on the platform as `make run` starts it
(every service a process of its own, the embedded engines): a user signs up, opens a paper
account and starts a bot on a replay; intents become approvals, fills, a position and PnL; a
manual limit order fills; an order over a limit is denied with its reason; the bot stops; and
the audit log holds every step, each order's path (gateway -> risk -> execution) under one
trace id; and each bot order's trace id finds that order's path, and only its, in the logs of
strategy, risk and execution."""

from __future__ import annotations

import asyncio
import json
import time
import tomllib
import uuid
from decimal import Decimal
from typing import Any

import httpx
import pytest
from trademesh_events.topics import TOPICS
from trademesh_testing.platform import ROOT, Platform

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

INSTRUMENT = f"nasdaq:E{uuid.uuid4().hex[:8].upper()}/USD"


@pytest.mark.timeout(600)
def test_a_user_trades_through_the_gateway_and_the_audit_log_holds_every_step(
    platform: Platform, trading: Any
) -> None:
    eventually, login = trading.eventually, trading.login
    since = len(platform.lines)
    admin_email = f"admin-{uuid.uuid4().hex[:8]}@example.com"
    made = platform.trademesh("user", "create", "--admin", "--email", admin_email,
                              "--password-stdin", stdin=trading.PASSWORD)  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr
    with httpx.Client(base_url=platform.url(8000), timeout=30.0) as http:
        admin = login(http, admin_email)
        # The admin starts a replay of the bundled GOOG daily bars.
        feed = http.post(
            "/api/v1/feeds",
            json={
                "instrument_id": INSTRUMENT,
                "timeframes": ["1d"],
                "config": {"kind": "replay", "file": "GOOG.csv", "speed": 86400 * 20},
            },
            headers=admin,
        )
        assert feed.status_code == 201, feed.text

        # A trader signs up (open registration), logs in, opens a paper account.
        email = f"trader-{uuid.uuid4().hex[:8]}@example.com"
        signed_up = http.post(
            "/api/v1/auth/register", json={"email": email, "password": trading.PASSWORD}
        )
        assert signed_up.status_code == 201, signed_up.text
        me = login(http, email)
        account = http.post(
            "/api/v1/accounts", json={"name": "e2e paper", "cash": "100000"}, headers=me
        ).json()["account_id"]

        def stored() -> bool:
            bars = http.get(
                "/api/v1/ohlcv",
                params={"instrument": INSTRUMENT, "timeframe": "1d", "start": "2000-01-01",
                        "end": "2100-01-01", "limit": 40},
                headers=me,
            )  # fmt: skip
            return bars.status_code == 200 and len(bars.json()["items"]) >= 40

        eventually(stored, what="the replay's first bars stored")
        # The replay plays twenty trading days a second, so risk's last price may trail
        # market-data's by several bars, a swing a 10 % default price collar does not allow for
        # an order priced off market-data's last price. Only an admin raises a default limit:
        # the admin widens this account's collar (the trader could only tighten it).
        widened = http.put(
            f"/api/v1/accounts/{account}/limits", json={"price_collar_bps": "5000"}, headers=admin
        )
        assert widened.status_code == 200, widened.text
        assert widened.json()["limit_sources"]["price_collar_bps"] == "admin", widened.text
        raised = http.put(
            f"/api/v1/accounts/{account}/limits", json={"price_collar_bps": "6000"}, headers=me
        )
        assert raised.status_code == 422, raised.text
        bot = http.post(
            "/api/v1/bots",
            json={
                "strategy": "rsi_cross",
                "instrument_id": INSTRUMENT,
                "timeframe": "1d",
                "account_id": account,
                "sizing": {"kind": "quantity", "value": "10"},
            },
            headers=me,
        )
        assert bot.status_code == 201, bot.text
        bot_id = bot.json()["bot_id"]

        # Intents -> approvals -> fills -> a position and PnL.
        def bot_filled() -> list[dict[str, Any]] | None:
            orders = http.get("/api/v1/orders", params={"status": "FILLED"}, headers=me)
            filled: list[dict[str, Any]] = (
                orders.json()["items"] if orders.status_code == 200 else []
            )
            return [o for o in filled if o["account_id"] == account] or None

        eventually(bot_filled, 120, "a bot order filled")
        # Two bot orders, for the per-order traces checked at the end.
        eventually(
            lambda: (found := bot_filled()) is not None and len(found) >= 2,
            60,
            "two bot orders filled",
        )
        intents = http.get(f"/api/v1/bots/{bot_id}/orders", headers=me).json()
        assert intents, intents
        pnl = http.get(f"/api/v1/accounts/{account}/pnl", headers=me).json()
        assert pnl["equity"] is not None
        assert pnl["positions"] or Decimal(pnl["realised_pnl"]) != 0, pnl

        # A manual limit order, marketable at the last price: it fills on the next bar.
        last = http.get("/api/v1/prices/last", params={"instrument": INSTRUMENT}, headers=me)
        assert last.status_code == 200, last.text
        limit = (Decimal(str(last.json()["price"])) * Decimal("1.05")).quantize(Decimal("0.01"))
        order = {"account_id": account, "instrument_id": INSTRUMENT, "side": "buy"}
        manual = http.post(
            "/api/v1/orders",
            json={**order, "quantity": "1", "limit_price": str(limit)},
            headers=me,
        )
        assert manual.status_code == 202, manual.text
        manual_id = manual.json()["client_order_id"]

        def manual_filled() -> dict[str, Any] | None:
            got = http.get(f"/api/v1/orders/{manual_id}", headers=me)
            return (
                got.json() if got.status_code == 200 and got.json()["status"] == "FILLED" else None
            )

        eventually(manual_filled, 60, "the manual limit order filled")

        # Over the account's limit: denied, with its reason.
        limits = http.put(
            f"/api/v1/accounts/{account}/limits", json={"max_order_quantity": "50"}, headers=me
        )
        assert limits.status_code == 200, limits.text
        big = http.post(
            "/api/v1/orders",
            json={**order, "quantity": "500", "limit_price": str(limit)},
            headers=me,
        )
        assert big.status_code == 202, big.text
        denied_id = big.json()["client_order_id"]

        # ...which its owner reads back: DENIED, with the reason and the order's history.
        def read_denied() -> dict[str, Any] | None:
            got = http.get(f"/api/v1/orders/{denied_id}", headers=me)
            assert got.status_code == 200, got.text
            return got.json() if got.json()["status"] == "DENIED" else None

        story = eventually(read_denied, 60, "the denied order read back by its owner")
        assert story["reason_code"] == "MAX_ORDER_QUANTITY", story
        assert [h["status"] for h in story["history"]] == ["INITIALIZED", "DENIED"], story
        listed = http.get("/api/v1/orders", params={"status": "DENIED"}, headers=me).json()
        assert denied_id in {o["client_order_id"] for o in listed["items"]}

        # More than the cash pays for: denied for funds, with the figures, read back as well.
        small = http.post("/api/v1/accounts", json={"name": "e2e small", "cash": "1"}, headers=me)
        assert small.status_code == 201, small.text
        poor = small.json()["account_id"]

        def funded() -> bool:  # risk has heard of the account's cash (AccountChanged)
            seen = http.get(f"/api/v1/accounts/{poor}/risk", headers=me)
            return seen.status_code == 200 and seen.json()["buying_power"]["cash"] == "1"

        eventually(funded, 30, "risk told the new account's cash")
        # A market order: valued at the last price (moved against the buyer), where a limit
        # price read a while ago could fall outside the account's price collar by now.
        unpaid = http.post(
            "/api/v1/orders",
            json={**order, "account_id": poor, "quantity": "1", "order_type": "MARKET"},
            headers=me,
        )
        assert unpaid.status_code == 202, unpaid.text
        unpaid_id = unpaid.json()["client_order_id"]

        def read_unpaid() -> dict[str, Any] | None:
            got = http.get(f"/api/v1/orders/{unpaid_id}", headers=me).json()
            return got if got["status"] == "DENIED" else None

        refused = eventually(read_unpaid, 60, "the unpaid order denied")
        assert refused["reason_code"] == "INSUFFICIENT_FUNDS", refused
        assert "1 is available" in refused["reason"], refused

        # The bot stops.
        stopped = http.post(f"/api/v1/bots/{bot_id}/stop", headers=me)
        assert stopped.status_code == 200 and stopped.json()["state"] == "STOPPED", stopped.text

        # The audit log (admin): every step, each order path under one trace id.
        def audited(target: str, *actions: str) -> list[dict[str, Any]] | None:
            rows = http.get("/api/v1/audit", params={"target": target}, headers=admin)
            assert rows.status_code == 200, rows.text
            items: list[dict[str, Any]] = rows.json()["items"]
            return items if {*actions} <= {r["action"] for r in items} else None

        path = eventually(
            lambda: audited(
                manual_id,
                "trademesh.order.intent",
                "trademesh.order.approved",
                "trademesh.order.filled",
            ),
            60,
            "the manual order's path in the audit log",
        )
        traces = {r["trace_id"] for r in path}
        assert len(traces) == 1 and None not in traces, [(r["action"], r["trace_id"]) for r in path]
        assert {r["actor"] for r in path if r["action"] == "trademesh.order.intent"} == {
            signed_up.json()["user_id"]
        }
        denial = eventually(
            lambda: audited(denied_id, "trademesh.order.intent", "trademesh.order.denied"),
            60,
            "the denied order in the audit log",
        )
        [denied] = [r for r in denial if r["action"] == "trademesh.order.denied"]
        assert denied["event"]["reason"] == "MAX_ORDER_QUANTITY"
        assert len({r["trace_id"] for r in denial}) == 1

        def bot_states() -> set[str] | None:
            rows = audited(bot_id, "trademesh.bot.state_changed") or []
            states = {r["event"]["state"] for r in rows}
            return states if {"RUNNING", "STOPPED"} <= states else None

        eventually(bot_states, 60, "the bot's RUNNING and STOPPED states in the audit log")
        verified = http.get("/api/v1/audit/verify", headers=admin).json()
        assert verified["ok"] is True, verified

        # Each bot order has a trace of its own, and from its trace id the services' logs tell
        # that order's path, and only that order's.
        bot_orders = [o for o in bot_filled() or [] if o["client_order_id"] != manual_id][:2]
        assert len(bot_orders) == 2, bot_orders
        traces = {}
        for placed in bot_orders:
            cid = placed["client_order_id"]
            rows = eventually(lambda c=cid: audited(c, "trademesh.order.filled"), 60, "audited")
            [trace_id] = {r["trace_id"] for r in rows}
            traces[cid] = trace_id
        assert len(set(traces.values())) == 2 and None not in traces.values(), traces
        for cid, trace_id in traces.items():
            path = _lines_of_trace(platform, trace_id)
            orders = {line["client_order_id"] for line in path if "client_order_id" in line}
            assert orders == {cid}, path
            assert _steps(path) >= {
                ("strategy", "order intent"),
                ("risk", "order approved"),
                ("execution", "order submitted"),
                ("execution", "order accepted"),
                ("execution", "order filled"),
            }, path
            [intent] = [line for line in path if line["event"] == "order intent"]
            assert intent["bot_id"] == bot_id and intent["account_id"] == account
            [fill] = [line for line in path if line["event"] == "order filled"]
            assert Decimal(fill["price"]) > 0 and Decimal(fill["quantity"]) == Decimal(10)
    assert not [line for line in platform.lines[since:] if "exited with" in line]


def _lines_of_trace(platform: Platform, trace_id: str) -> list[dict[str, Any]]:
    """The JSON log lines of strategy, risk and execution (their files under the platform's
    home) that were logged in the trace `trace_id`."""
    found = []
    for service in ("strategy", "risk", "execution"):
        path = platform.home / "logs" / f"{service}.log"
        for text in path.read_text(errors="replace").splitlines():
            if trace_id not in text or not text.startswith("{"):
                continue
            line = json.loads(text)
            if line.get("trace_id") == trace_id:
                found.append(line)
    return found


def _steps(lines: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(line["service"], line["event"]) for line in lines}


async def _poison_and_read_dlqs(bootstrap: str, topics: list[str]) -> dict[str, set[str]]:
    """Publish malformed records (not JSON; JSON of no event; no envelope) on each topic; then
    which consumers (dlq_consumer header) put each topic's poison on `<topic>.dlq`."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    marker = uuid.uuid4().hex
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        for topic in topics:
            headers = [("ce_id", marker.encode()), ("ce_type", b"trademesh.nonsense")]
            await producer.send_and_wait(topic, b"\xff not json", key=marker.encode())
            await producer.send_and_wait(topic, b'{"hello": 1}', key=marker.encode(),
                                         headers=headers)  # fmt: skip
    finally:
        await producer.stop()
    seen: dict[str, set[str]] = {topic: set() for topic in topics}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not all(seen.values()):
        reader = AIOKafkaConsumer(*(f"{t}.dlq" for t in topics), bootstrap_servers=bootstrap,
                                  auto_offset_reset="earliest", group_id=None)  # fmt: skip
        await reader.start()
        try:
            batches = await reader.getmany(timeout_ms=2000, max_records=10000)
        finally:
            await reader.stop()
        for records in batches.values():
            for record in records:
                headers = {k: v.decode(errors="replace") for k, v in record.headers}
                if record.key == marker.encode():
                    seen[headers["dlq_source_topic"]].add(headers["dlq_consumer"])
        await asyncio.sleep(1)
    return seen


@pytest.mark.timeout(300)
def test_poison_on_every_input_topic_lands_in_the_dlqs_and_trading_goes_on(
    platform: Platform, trading: Any
) -> None:
    eventually, login = trading.eventually, trading.login
    # Who consumes what, as each service declares it ([tool.trademesh.service] consumes); a
    # service's consumer groups are named `<service>.<topic>[.<instance>]`.
    consumers: dict[str, set[str]] = {}
    for pyproject in sorted((ROOT / "services").glob("*/pyproject.toml")):
        declared = tomllib.loads(pyproject.read_text())["tool"]["trademesh"]["service"]
        for topic in declared.get("consumes", []):
            consumers.setdefault(topic, set()).add(declared["name"])
    assert {t.name for t in TOPICS} <= set(consumers), "a topic nobody consumes"
    seen = asyncio.run(
        _poison_and_read_dlqs(platform.setting("TRADEMESH_KAFKA_BOOTSTRAP"), sorted(consumers))
    )
    for topic, services in consumers.items():
        dead_lettered = {c.split(".")[0] for c in seen[topic]}
        assert services <= dead_lettered, (topic, services, seen[topic])
    # ...and the pipeline still trades: a new user's market-price order fills.
    email = f"after-{uuid.uuid4().hex[:8]}@example.com"
    with httpx.Client(base_url=platform.url(8000), timeout=30.0) as http:
        made = http.post(
            "/api/v1/auth/register", json={"email": email, "password": trading.PASSWORD}
        )
        assert made.status_code == 201, made.text
        me = login(http, email)
        account = http.post(
            "/api/v1/accounts", json={"name": "after poison", "cash": "100000"}, headers=me
        ).json()["account_id"]
        order = http.post(
            "/api/v1/orders",
            json={"account_id": account, "instrument_id": INSTRUMENT, "side": "buy",
                  "order_type": "MARKET", "quantity": "1"},
            headers=me,
        )  # fmt: skip
        assert order.status_code == 202, order.text
        client_order_id = order.json()["client_order_id"]

        def placed() -> dict[str, Any] | None:
            # Recorded (INITIALIZED) before its intent is published: placed once past that.
            got = http.get(f"/api/v1/orders/{client_order_id}", headers=me)
            ok = got.status_code == 200 and got.json()["status"] != "INITIALIZED"
            return got.json() if ok else None

        eventually(placed, 60, "the order after the poison reached execution")
