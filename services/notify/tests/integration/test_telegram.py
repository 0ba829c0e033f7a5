"""Telegram channels on the real broker and the real Postgres: a fill delivered to a real loopback
server speaking the Bot API's shape, its answers (ok, ok: false, 429 with retry_after, chat not
found) acted on, and the bot token never in an answer or a log."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from trademesh_bus import Bus
from trademesh_events import orders
from trademesh_events.topics import ORDERS_EVENTS_TOPIC
from trademesh_testing.http import served
from trademesh_testing.samples import build_sample
from trademesh_testing.tokens import bearer
from trademesh_testing.waiting import eventually

from trademesh_notify.api.deps import Runtime
from trademesh_notify.config import Settings
from trademesh_notify.ratelimit import ChannelLimits

pytestmark = pytest.mark.integration

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"  # pragma: allowlist secret


@dataclass
class Sent:
    token: str
    json: dict[str, Any]
    at: float  # time.monotonic() when it arrived


@dataclass
class BotApi:
    """A loopback HTTP server with the Bot API's shape: `/bot<token>/sendMessage` keeps what it
    receives and answers the next of `script` (status, body), then `{"ok": true, ...}`."""

    url: str = ""
    sent: list[Sent] = field(default_factory=list)
    script: list[tuple[int, dict[str, Any]]] = field(default_factory=list)

    async def send_message(self, request: Request) -> JSONResponse:
        self.sent.append(Sent(request.path_params["token"], await request.json(), time.monotonic()))
        if self.script:
            status, body = self.script.pop(0)
            return JSONResponse(body, status_code=status)
        return JSONResponse({"ok": True, "result": {"message_id": len(self.sent), "date": 0}})


@pytest.fixture
async def bot_api() -> AsyncIterator[BotApi]:
    kept = BotApi()
    app = Starlette(routes=[Route("/bot{token}/sendMessage", kept.send_message, methods=["POST"])])
    async with served(app) as url:
        kept.url = url
        yield kept


@pytest.fixture
def settings(settings: Settings, bot_api: BotApi) -> Settings:
    """The conftest's settings with the Bot API on the loopback server (loopback is allowed)."""
    return settings.model_copy(update={"telegram_api_base": bot_api.url})


async def add_telegram(
    client: httpx.AsyncClient, user: UUID, chat_id: int | str = 42, events: list[str] | None = None
) -> httpx.Response:
    return await client.post(
        "/api/v1/notify/channels",
        json={
            "kind": "telegram",
            "chat_id": chat_id,
            "bot_token": TOKEN,
            "events": events or ["fill"],
        },
        headers=bearer(user),
    )


def fill_of(user: UUID) -> orders.OrderFilled:
    fill = build_sample(orders.OrderFilled, user_id=user, account_id=uuid4())
    assert isinstance(fill, orders.OrderFilled)
    return fill


async def rows_of(app: FastAPI, channel_id: str) -> list[Any]:
    runtime = app.state.runtime
    assert isinstance(runtime, Runtime)
    return await runtime.deliveries.store.of_channel(UUID(channel_id))


async def test_a_fill_reaches_its_owners_telegram_chat_in_markdown_v2(
    client: httpx.AsyncClient, app: FastAPI, bot_api: BotApi, producer: Bus
) -> None:
    user = uuid4()
    made = await add_telegram(client, user, chat_id=-1001234567890)
    assert made.status_code == 201, made.text
    channel = made.json()
    assert (channel["kind"], channel["url"], channel["config"]) == (
        "telegram",
        None,
        {"chat_id": -1001234567890},
    )
    assert channel["signing_secret"] is None
    fill = fill_of(user)
    await producer.publish(fill, topic=ORDERS_EVENTS_TOPIC)

    got = await eventually(lambda: _sent(bot_api, 1))
    assert got[0].token == TOKEN
    message = got[0].json
    assert (message["chat_id"], message["parse_mode"]) == (-1001234567890, "MarkdownV2")
    escaped_price = str(fill.last_price).replace(".", "\\.").replace("-", "\\-")
    assert message["text"].startswith("*Fill: ")
    assert f"@ {escaped_price}*" in message["text"]
    escaped_account = str(fill.account_id).replace("-", "\\-")
    assert f"Account: {escaped_account}" in message["text"]
    rows = await eventually(lambda: _status(app, channel["id"], "sent"))
    assert rows[0]["attempts"] == 1


async def test_a_429_defers_the_next_attempt_to_its_retry_after(
    client: httpx.AsyncClient, app: FastAPI, bot_api: BotApi, producer: Bus, settings: Settings
) -> None:
    # Far longer than the tests' back-off (at most delivery_backoff_cap_s = 0.2 s).
    assert settings.delivery_backoff_cap_s < 1
    bot_api.script.append(
        (
            429,
            {
                "ok": False,
                "error_code": 429,
                "description": "Too Many Requests: retry after 1",
                "parameters": {"retry_after": 1},
            },
        )
    )
    user = uuid4()
    channel = (await add_telegram(client, user)).json()
    await producer.publish(fill_of(user), topic=ORDERS_EVENTS_TOPIC)

    got = await eventually(lambda: _sent(bot_api, 2))
    assert got[1].at - got[0].at >= 1.0
    rows = await eventually(lambda: _status(app, channel["id"], "sent"))
    assert rows[0]["attempts"] == 2


async def test_one_bots_messages_to_all_its_chats_keep_to_the_bots_limit(
    client: httpx.AsyncClient, app: FastAPI, bot_api: BotApi, producer: Bus
) -> None:
    """Two chats of one bot, each under its chat's limit, 8 messages in all: a bot allowed 3 a
    second sends them over more than a second, each once and in one attempt (put off, not
    failed)."""
    runtime = app.state.runtime
    assert isinstance(runtime, Runtime)
    assert runtime.deliveries.limits is not None
    assert runtime.deliveries.limits.per_bot  # the settings' per-bot limit is in force
    runtime.deliveries.limits = ChannelLimits("memory://", {"telegram": "100/second"}, "3/second")
    user = uuid4()
    chats = [(await add_telegram(client, user, chat_id=chat)).json() for chat in (1, 2)]
    for _ in range(4):
        await producer.publish(fill_of(user), topic=ORDERS_EVENTS_TOPIC)

    got = await eventually(lambda: _sent(bot_api, 8), timeout=20)
    assert sorted(sent.json["chat_id"] for sent in got) == [1] * 4 + [2] * 4
    assert got[-1].at - got[0].at > 1.0  # 3 a second for the bot, though 100 for each chat
    for chat in chats:
        channel_id = chat["id"]
        rows = await eventually(lambda: _all_sent(app, channel_id, 4))  # noqa: B023 - awaited here
        assert [row["attempts"] for row in rows] == [1] * 4


async def test_ok_false_is_a_failure_tried_again(
    client: httpx.AsyncClient, app: FastAPI, bot_api: BotApi, producer: Bus
) -> None:
    bot_api.script.append((200, {"ok": False, "description": "Internal Server Error"}))
    user = uuid4()
    channel = (await add_telegram(client, user)).json()
    await producer.publish(fill_of(user), topic=ORDERS_EVENTS_TOPIC)
    rows = await eventually(lambda: _status(app, channel["id"], "sent"))
    assert rows[0]["attempts"] == 2
    assert len(bot_api.sent) == 2


async def test_a_chat_not_found_is_dead_at_once_and_the_token_is_never_shown_or_logged(
    client: httpx.AsyncClient,
    app: FastAPI,
    bot_api: BotApi,
    producer: Bus,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    # The fake Bot API's own access log (uvicorn's, of the request it received) is Telegram's
    # side of the wire, not the service's: without it, every log line left is the service's.
    monkeypatch.setattr(logging.getLogger("uvicorn.access"), "disabled", True)
    bot_api.script.append(
        (400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"})
    )
    user = uuid4()
    made = await add_telegram(client, user, chat_id="@trademesh_alerts")
    listed = await client.get("/api/v1/notify/channels", headers=bearer(user))
    bad = await client.post(
        "/api/v1/notify/channels",
        json={"kind": "telegram", "chat_id": 42, "bot_token": TOKEN + "/x", "events": ["fill"]},
        headers=bearer(user),
    )
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"
    channel = made.json()
    assert listed.json()[0]["config"] == {"chat_id": "@trademesh_alerts"}
    await producer.publish(fill_of(user), topic=ORDERS_EVENTS_TOPIC)

    rows = await eventually(lambda: _status(app, channel["id"], "dead"))
    assert rows[0]["attempts"] == 1  # not tried again: the chat will not appear by itself
    assert rows[0]["last_error"] == "Telegram answered 400: Bad Request: chat not found"
    assert len(bot_api.sent) == 1

    logged = "\n".join(f"{r.getMessage()} {r.args!r} {r.__dict__!r}" for r in caplog.records)
    captured = capsys.readouterr()
    assert "delivery dead" in logged + caplog.text  # the logs were captured at all
    for text in (
        made.text,
        listed.text,
        bad.text,
        logged,
        caplog.text,
        captured.out,
        captured.err,
        str(rows),
    ):
        assert TOKEN not in text
        assert TOKEN.split(":", 1)[1] not in text


async def _sent(bot_api: BotApi, count: int) -> list[Sent] | None:
    return bot_api.sent if len(bot_api.sent) >= count else None


async def _all_sent(app: FastAPI, channel_id: str, count: int) -> list[Any] | None:
    rows = await rows_of(app, channel_id)
    return rows if len(rows) == count and all(r["status"] == "sent" for r in rows) else None


async def _status(app: FastAPI, channel_id: str, status: str) -> list[Any] | None:
    rows = await rows_of(app, channel_id)
    return rows if rows and rows[0]["status"] == status else None
