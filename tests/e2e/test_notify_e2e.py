"""End to end, through the gateway's HTTP API only, on the platform as `make run` starts it: a
trader's webhook and Telegram channels receive their bot's pending approval and its fill; the
approval is decided through the signed link the notification carries (its page decides nothing,
its button does, once) and the order fills; the next approval is left alone, expires, is told,
and never trades. The Inbox (conftest) is the webhook receiver and the Telegram Bot API."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest
from trademesh_testing.platform import Platform

from .conftest import CHOPPY, Inbox

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

INSTRUMENT = f"nasdaq:N{uuid.uuid4().hex[:8].upper()}/USD"
BOT_TOKEN = "123456789:e2e-test-token-of-the-bot_0123456789"  # pragma: allowlist secret
EXPIRY_S = 10  # the shortest an approval may wait


def telegram_texts(chat: int) -> list[str]:
    """What the Telegram chat was sent, MarkdownV2 undone: the subject's bold markers dropped
    (the first line, `*subject*`), then the escapes."""
    sent = Inbox.bodies(f"/bot{BOT_TOKEN}/sendMessage")
    texts = [re.sub(r"^\*(.*?)\*\n", r"\1\n", m["text"]) for m in sent if m["chat_id"] == chat]
    return [re.sub(r"\\(.)", r"\1", text) for text in texts]


@pytest.mark.timeout(420)
def test_a_traders_channels_get_an_approval_and_its_fill_and_an_expiry_never_trades(
    platform: Platform, trading: Any, inbox: str
) -> None:
    eventually, login = trading.eventually, trading.login
    admin_email = f"admin-{uuid.uuid4().hex[:8]}@example.com"
    made = platform.trademesh("user", "create", "--admin", "--email", admin_email,
                              "--password-stdin", stdin=trading.PASSWORD)  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr
    hook = f"/hook/{uuid.uuid4().hex}"
    chat = int(uuid.uuid4().int % 10**9)
    with httpx.Client(base_url=platform.url(8000), timeout=30.0) as http:
        admin = login(http, admin_email)
        email = f"trader-{uuid.uuid4().hex[:8]}@example.com"
        signed_up = http.post(
            "/api/v1/auth/register", json={"email": email, "password": trading.PASSWORD}
        )
        assert signed_up.status_code == 201, signed_up.text
        me = login(http, email)

        # The trader's channels: a signed webhook and a Telegram chat, for approvals and fills.
        events = ["approval", "fill"]
        webhook = http.post(
            "/api/v1/notify/channels",
            json={"url": f"{inbox}{hook}", "events": events},
            headers=me,
        )
        assert webhook.status_code == 201, webhook.text
        assert webhook.json()["signing_secret"]
        telegram = http.post(
            "/api/v1/notify/channels",
            json={"kind": "telegram", "chat_id": chat, "bot_token": BOT_TOKEN, "events": events},
            headers=me,
        )
        assert telegram.status_code == 201, telegram.text
        assert (
            BOT_TOKEN not in telegram.text
            and BOT_TOKEN not in http.get("/api/v1/notify/channels", headers=me).text
        )

        account = http.post(
            "/api/v1/accounts", json={"name": "e2e approvals", "cash": "1000000"}, headers=me
        ).json()["account_id"]
        # A replay played fast moves risk's last price off market-data's: a wide collar (an
        # admin's to widen) keeps the approved order from being denied for it.
        widened = http.put(
            f"/api/v1/accounts/{account}/limits", json={"price_collar_bps": "5000"}, headers=admin
        )
        assert widened.status_code == 200, widened.text
        feed = http.post(
            "/api/v1/feeds",
            json={"instrument_id": INSTRUMENT, "timeframes": ["1d"],
                  "config": {"kind": "replay", "file": "GOOG.csv", "speed": 86400 * 4}},
            headers=admin,
        )  # fmt: skip
        assert feed.status_code == 201, feed.text

        def stored() -> bool:  # a bot starts on an instrument with data
            bars = http.get(
                "/api/v1/ohlcv",
                params={"instrument": INSTRUMENT, "timeframe": "1d", "start": "2000-01-01",
                        "end": "2100-01-01", "limit": 5},
                headers=me,
            )  # fmt: skip
            return bars.status_code == 200 and len(bars.json()["items"]) >= 5

        eventually(stored, what="the replay's first bars stored")
        bot = http.post(
            "/api/v1/bots",
            json={**CHOPPY, "instrument_id": INSTRUMENT, "timeframe": "1d",
                  "account_id": account, "sizing": {"kind": "quantity", "value": "1"},
                  "approval": "required", "approval_expiry_s": EXPIRY_S},
            headers=me,
        )  # fmt: skip
        assert bot.status_code == 201, bot.text
        bot_id = bot.json()["bot_id"]

        def approvals_sent(count: int) -> list[dict[str, Any]] | None:
            got = [b for b in Inbox.bodies(hook) if b["type"] == "trademesh.bot.approval_requested"]
            return got if len(got) >= count else None

        # The first pending approval reaches both channels, the webhook with its two links.
        first = eventually(lambda: approvals_sent(1), 120, "a pending approval on the webhook")[0]
        approval_id = first["data"]["approval_id"]
        assert first["data"]["bot_id"] == bot_id
        approve = first["links"]["approve"]
        assert approve.startswith(f"{platform.url(8000)}/api/v1/approvals/{approval_id}/approve?")
        eventually(
            lambda: [t for t in telegram_texts(chat) if f"Approve: {approve}" in t],
            30,
            "the pending approval and its link in the Telegram chat",
        )
        # Opening the link decides nothing (a chat app's preview opens links too)...
        page = httpx.get(approve, timeout=30.0)
        assert page.status_code == 200 and "<form" in page.text, page.text
        pending = http.get(
            f"/api/v1/bots/{bot_id}/approvals", params={"status": "pending"}, headers=me
        )
        assert approval_id in {a["approval_id"] for a in pending.json()["items"]}, pending.text
        # ...its button does, once: without a login, the signature is the authority.
        decided = httpx.post(approve, timeout=30.0)
        assert decided.status_code == 200, decided.text
        again = httpx.post(approve, timeout=30.0)
        assert again.status_code == 409, again.text

        # The approved order fills, and both channels hear of the fill.
        order_id = first["data"]["client_order_id"]

        def filled() -> dict[str, Any] | None:
            got = http.get(f"/api/v1/orders/{order_id}", headers=me)
            return (
                got.json() if got.status_code == 200 and got.json()["status"] == "FILLED" else None
            )

        eventually(filled, 90, "the approved order filled")
        fills = eventually(
            lambda: [b for b in Inbox.bodies(hook) if b["kind"] == "fill"
                     and b["data"]["client_order_id"] == order_id] or None,
            60,
            "the fill on the webhook",
        )  # fmt: skip
        assert fills[0]["data"]["account_id"] == account
        eventually(
            lambda: [t for t in telegram_texts(chat) if t.startswith("Fill: ") and order_id in t],
            60,
            "the fill in the Telegram chat",
        )

        # The next approval is left alone: it expires, the owner is told, it never trades.
        second = eventually(lambda: approvals_sent(2), 120, "a second pending approval")[1]
        assert second["data"]["approval_id"] != approval_id
        expired_order = second["data"]["client_order_id"]
        told = eventually(
            lambda: [b for b in Inbox.bodies(hook)
                     if b["type"] == "trademesh.bot.approval_decided"
                     and b["data"]["client_order_id"] == expired_order] or None,
            EXPIRY_S + 60,
            "the expiry on the webhook",
        )  # fmt: skip
        assert told[0]["data"]["decision"] == "expired", told
        eventually(
            lambda: [t for t in telegram_texts(chat)
                     if t.startswith(f"Approval expired: order {expired_order}")],
            30,
            "the expiry in the Telegram chat",
        )  # fmt: skip
        listed = http.get(
            f"/api/v1/bots/{bot_id}/approvals", params={"status": "expired"}, headers=me
        )
        assert second["data"]["approval_id"] in {a["approval_id"] for a in listed.json()["items"]}
        assert http.get(f"/api/v1/orders/{expired_order}", headers=me).status_code == 404
        late = httpx.post(second["links"]["approve"], timeout=30.0)
        assert late.status_code == 409, late.text
        assert http.get(f"/api/v1/orders/{expired_order}", headers=me).status_code == 404

        stopped = http.post(f"/api/v1/bots/{bot_id}/stop", headers=me)
        assert stopped.status_code == 200, stopped.text
    # The bot token was sealed, and only ever used in the Bot API's path: never logged.
    assert not [line for line in platform.lines if BOT_TOKEN in line]
