"""Approval-mode bots on the real broker, Postgres and market-data: an order waits for its
owner, who approves it (API or signed link: then it goes to orders.intents.v1, once) or rejects
it, or it expires (then the strategy hears it); restarts in between change nothing."""

from __future__ import annotations

import asyncio
import csv
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from trademesh_bus import Bus
from trademesh_events.bots import ApprovalDecided, ApprovalRequested
from trademesh_events.marketdata import Bar
from trademesh_events.orders import SubmitOrder
from trademesh_events.topics import BOTS_EVENTS, ORDERS_INTENTS
from trademesh_http.approval_links import approval_link
from trademesh_testing.accounts import book
from trademesh_testing.http import app_client
from trademesh_testing.logs import LogLines
from trademesh_testing.marketdata import start_replay, wait_stored
from trademesh_testing.plugin import SettingsMaker
from trademesh_testing.samples import decoded, read_all
from trademesh_testing.tokens import bearer
from trademesh_testing.waiting import eventually
from trademesh_trading.registry import StrategyRegistry
from trademesh_trading.strategy import Context, Strategy, StrategyConfig

from trademesh_strategy.app import create_app
from trademesh_strategy.config import Settings

pytestmark = pytest.mark.integration

LINK_KEY = SecretStr("an-approval-link-key-for-the-tests-only")
#: What the strategies of these tests heard through on_order_event: (event type, client order
#: id); client order ids are unique to their bot.
HEARD: list[tuple[str, str]] = []


class _AsksEveryBar(Strategy[StrategyConfig]):
    """Buys one on every live bar, and notes the order events it hears."""

    name = "asks_every_bar"
    config_class = StrategyConfig

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        ctx.submit_order("buy", Decimal(1))

    def on_order_event(self, ctx: Context, event: Any) -> None:
        HEARD.append((type(event).__name__, event.client_order_id))


@pytest.fixture
def settings(make_settings: SettingsMaker, schema: str) -> Settings:
    return make_settings(
        Settings,
        database_schema=schema,
        outbox_poll_interval_s=0.2,
        backtest_poll_interval_s=0.2,
        approval_sweep_interval_s=0.2,
        approval_link_key=LINK_KEY,
    )


def _registry() -> StrategyRegistry:
    registry = StrategyRegistry(load_entry_points=False)
    registry.register(_AsksEveryBar)
    return registry


def _app(settings: Settings, market_data_app: FastAPI) -> FastAPI:
    return create_app(
        settings,
        market_transport=httpx.ASGITransport(app=market_data_app),
        execution_transport=book().transport,
        registry=_registry(),
    )


def headers(user: uuid.UUID) -> dict[str, str]:
    return bearer(user, "trader")


@pytest.fixture
async def last_bar(market: httpx.AsyncClient, replay_dir: Path) -> Bar:
    """The last bar of a replay of GOOG_400.csv, once market-data has stored it (read from the
    file here, independently of the replay code)."""
    instrument, _ = await start_replay(market, file="GOOG_400.csv", bars_per_s=1000)
    await wait_stored(market, instrument, 400)
    with (replay_dir / "GOOG_400.csv").open(newline="") as handle:
        row = list(csv.DictReader(handle))[-1]
    opened = datetime.fromisoformat(row[""]).replace(tzinfo=UTC)
    return Bar(
        instrument_id=instrument,
        timeframe="1d",
        open_time=opened,
        close_time=opened + timedelta(days=1),
        open=Decimal(row["Open"]),
        high=Decimal(row["High"]),
        low=Decimal(row["Low"]),
        close=Decimal(row["Close"]),
        volume=Decimal(row["Volume"]),
    )


async def start_bot(
    client: httpx.AsyncClient, user: uuid.UUID, instrument: str, **overrides: Any
) -> dict[str, Any]:
    body = {
        "strategy": "asks_every_bar",
        "instrument_id": instrument,
        "timeframe": "1d",
        "account_id": str(book().open(user)),
        "approval": "required",
    } | overrides
    response = await client.post("/api/v1/bots", json=body, headers=headers(user))
    assert response.status_code == 201, response.text
    bot: dict[str, Any] = response.json()
    return bot


async def publish_next_bar(settings: Settings, last: Bar, days: int = 1) -> Bar:
    nxt = last.open_time + timedelta(days=days)
    bar = last.model_copy(update={"open_time": nxt, "close_time": nxt + timedelta(days=1)})
    producer = Bus(settings, "test-market-data", telemetry=False)
    await producer.start()
    try:
        await producer.publish(bar)
    finally:
        await producer.stop()
    return bar


async def pending_of(client: httpx.AsyncClient, user: uuid.UUID, bot_id: str) -> dict[str, Any]:
    """The bot's one pending approval, once there is one."""

    async def listed() -> dict[str, Any] | None:
        response = await client.get(
            f"/api/v1/bots/{bot_id}/approvals", params={"status": "pending"}, headers=headers(user)
        )
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        assert len(items) <= 1
        return items[0] if items else None

    found: dict[str, Any] = await eventually(listed, timeout=30)
    return found


async def bot_events(settings: Settings, bot_id: str, kind: type[Any], expect: int) -> list[Any]:
    async def published() -> list[Any] | None:
        records = await read_all(settings.kafka_bootstrap, BOTS_EVENTS, expect=1, timeout=2)
        mine = [
            e
            for e in decoded(BOTS_EVENTS, records)
            if isinstance(e, kind) and str(e.bot_id) == bot_id
        ]
        return mine if len(mine) >= expect else None

    found: list[Any] = await eventually(published, timeout=30)
    return found


async def intents_of(settings: Settings, bot_id: str) -> list[SubmitOrder]:
    """The bot's intents on orders.intents.v1 now (after the outbox relay's next round)."""
    await asyncio.sleep(1.0)  # the relay polls every 0.2 s: what was committed is out by now
    records = await read_all(settings.kafka_bootstrap, ORDERS_INTENTS, expect=1, timeout=2)
    return [
        e
        for e in decoded(ORDERS_INTENTS, records)
        if isinstance(e, SubmitOrder) and str(e.bot_id) == bot_id
    ]


async def order_status(client: httpx.AsyncClient, user: uuid.UUID, bot_id: str) -> list[str]:
    orders = (await client.get(f"/api/v1/bots/{bot_id}/orders", headers=headers(user))).json()
    return [o["status"] for o in orders["items"]]


@pytest.fixture
async def running(
    settings: Settings, market_data_app: FastAPI, last_bar: Bar
) -> AsyncIterator[tuple[httpx.AsyncClient, uuid.UUID, dict[str, Any], dict[str, Any]]]:
    """An approval-mode bot that asked for one order: (client, owner, bot, its pending approval)."""
    user = uuid.uuid4()
    async with app_client(_app(settings, market_data_app)) as client:
        bot = await start_bot(client, user, last_bar.instrument_id)
        await publish_next_bar(settings, last_bar)
        approval = await pending_of(client, user, bot["bot_id"])
        yield client, user, bot, approval


async def test_an_approval_mode_bot_asks_its_owner_and_sends_no_intent(
    settings: Settings,
    running: tuple[httpx.AsyncClient, uuid.UUID, dict[str, Any], dict[str, Any]],
) -> None:
    client, user, bot, approval = running

    assert bot["approval"] == "required" and bot["approval_expiry_s"] == 60
    (requested,) = await bot_events(settings, bot["bot_id"], ApprovalRequested, 1)
    assert str(requested.approval_id) == approval["approval_id"]
    assert requested.user_id == user and requested.side == "buy"
    assert requested.quantity == Decimal(1) and requested.order_type == "MARKET"
    assert requested.client_order_id == approval["intent"]["client_order_id"]
    assert requested.expires_at - requested.requested_at == timedelta(seconds=60)
    assert await intents_of(settings, bot["bot_id"]) == []
    assert await order_status(client, user, bot["bot_id"]) == ["AWAITING_APPROVAL"]


async def test_approving_through_the_api_sends_the_intent_once(
    settings: Settings,
    running: tuple[httpx.AsyncClient, uuid.UUID, dict[str, Any], dict[str, Any]],
) -> None:
    client, user, bot, approval = running
    path = f"/api/v1/bots/{bot['bot_id']}/approvals/{approval['approval_id']}/approve"

    first, second = await asyncio.gather(
        client.post(path, headers=headers(user)), client.post(path, headers=headers(user))
    )

    assert sorted([first.status_code, second.status_code]) == [200, 409], (first, second)
    refused = first if first.status_code == 409 else second
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"].endswith("/problems/approval-decided")
    intents = await intents_of(settings, bot["bot_id"])
    assert [i.client_order_id for i in intents] == [approval["intent"]["client_order_id"]]
    again = await client.post(path, headers=headers(user))
    assert again.status_code == 409
    (decided,) = await bot_events(settings, bot["bot_id"], ApprovalDecided, 1)
    assert decided.decision == "approved" and decided.decided_by == user
    assert decided.channel == "api"
    assert await order_status(client, user, bot["bot_id"]) == ["REQUESTED"]


async def test_another_users_approval_does_not_exist_for_the_caller(
    running: tuple[httpx.AsyncClient, uuid.UUID, dict[str, Any], dict[str, Any]],
) -> None:
    client, _, bot, approval = running
    stranger = uuid.uuid4()
    base = f"/api/v1/bots/{bot['bot_id']}/approvals"

    decided = await client.post(
        f"{base}/{approval['approval_id']}/approve", headers=headers(stranger)
    )
    listed = await client.get(base, headers=headers(stranger))

    assert decided.status_code == 404 and listed.status_code == 404
    assert decided.headers["content-type"] == "application/problem+json"


async def test_a_rejected_order_is_told_to_the_strategy_and_never_sent(
    settings: Settings,
    running: tuple[httpx.AsyncClient, uuid.UUID, dict[str, Any], dict[str, Any]],
) -> None:
    client, user, bot, approval = running
    cid = approval["intent"]["client_order_id"]

    rejected = await client.post(
        f"/api/v1/bots/{bot['bot_id']}/approvals/{approval['approval_id']}/reject",
        headers=headers(user),
    )

    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    assert ("OrderRejected", cid) in HEARD
    assert await order_status(client, user, bot["bot_id"]) == ["REJECTED"]
    assert await intents_of(settings, bot["bot_id"]) == []
    (decided,) = await bot_events(settings, bot["bot_id"], ApprovalDecided, 1)
    assert decided.decision == "rejected" and decided.decided_by == user


def _link(approval_id: str, decision: str, key: SecretStr = LINK_KEY) -> str:
    """The link's path and query, as the gateway forwards them."""
    parts = urlsplit(approval_link("https://trade.example", key, uuid.UUID(approval_id), decision))  # type: ignore[arg-type]
    return f"{parts.path}?{parts.query}"


async def test_a_signed_link_shows_a_form_on_get_and_decides_on_post(
    settings: Settings,
    running: tuple[httpx.AsyncClient, uuid.UUID, dict[str, Any], dict[str, Any]],
    log_lines: LogLines,
) -> None:
    client, user, bot, approval = running
    link = _link(approval["approval_id"], "approve")

    page = await client.get(link)  # no token: the signature is the authority

    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<form method="post">' in page.text and "Approve" in page.text
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"
    # A GET (a chat app's preview, say) decides nothing.
    assert (await pending_of(client, user, bot["bot_id"]))["approval_id"] == approval["approval_id"]
    assert await intents_of(settings, bot["bot_id"]) == []

    decided = await client.post(link)

    assert decided.status_code == 200 and "Order approved" in decided.text
    intents = await intents_of(settings, bot["bot_id"])
    assert [i.client_order_id for i in intents] == [approval["intent"]["client_order_id"]]
    (event,) = await bot_events(settings, bot["bot_id"], ApprovalDecided, 1)
    assert event.decision == "approved" and event.decided_by == user and event.channel == "link"
    used_again = await client.post(link)
    assert used_again.status_code == 409
    assert used_again.headers["content-type"] == "application/problem+json"
    shown_again = await client.get(link)
    assert shown_again.status_code == 200 and "<form" not in shown_again.text
    # The link is a secret: its signature, and the key, are in no log line.
    (line,) = log_lines.named("approval decided", approval_id=approval["approval_id"])
    assert line["channel"] == "link" and line["decision"] == "approved"
    # (The test's own client logs its requests through httpx: those lines are not the service's.)
    logged = "\n".join(
        json.dumps(entry)
        for entry in log_lines.all()
        if not (entry.get("logger") == "httpx" and "http://service/" in entry["event"])
    )
    sig = parse_qs(urlsplit(link).query)["sig"][0]
    assert sig not in logged and LINK_KEY.get_secret_value() not in logged


@pytest.mark.parametrize(
    "tamper",
    [
        lambda a: _link(a, "approve", SecretStr("another-key-another-key-another-key")),
        lambda a: _link(a, "reject").replace("/reject?", "/approve?"),
        lambda a: _link(a, "approve").split("?")[0],
    ],
    ids=["other-key", "other-decision", "no-signature"],
)
async def test_a_link_with_a_bad_signature_is_a_403_problem_and_decides_nothing(
    settings: Settings,
    running: tuple[httpx.AsyncClient, uuid.UUID, dict[str, Any], dict[str, Any]],
    tamper: Any,
) -> None:
    client, user, bot, approval = running
    link = tamper(approval["approval_id"])

    shown, posted = await client.get(link), await client.post(link)

    for response in (shown, posted):
        assert response.status_code == 403
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"].endswith("/problems/bad-signature")
    assert (await pending_of(client, user, bot["bot_id"]))["status"] == "pending"
    assert await intents_of(settings, bot["bot_id"]) == []


async def test_an_overdue_approval_expires_and_its_strategy_hears_it(
    settings: Settings,
    running: tuple[httpx.AsyncClient, uuid.UUID, dict[str, Any], dict[str, Any]],
) -> None:
    client, user, bot, approval = running
    cid = approval["intent"]["client_order_id"]
    link = _link(approval["approval_id"], "approve")
    await _make_overdue(settings, approval["approval_id"])

    (decided,) = await bot_events(settings, bot["bot_id"], ApprovalDecided, 1)

    assert decided.decision == "expired" and decided.decided_by is None
    assert await eventually(lambda: _heard(("OrderExpired", cid)), timeout=10), (
        "the strategy was not told"
    )
    assert await order_status(client, user, bot["bot_id"]) == ["EXPIRED"]
    late = await client.post(
        f"/api/v1/bots/{bot['bot_id']}/approvals/{approval['approval_id']}/approve",
        headers=headers(user),
    )
    assert late.status_code == 409 and late.json()["type"].endswith("/problems/approval-expired")
    assert (await client.post(link)).status_code == 409
    assert await intents_of(settings, bot["bot_id"]) == []


async def _heard(entry: tuple[str, str]) -> bool | None:
    return True if entry in HEARD else None


async def _make_overdue(settings: Settings, approval_id: str) -> None:
    """The approval's expiry moved into the past (instead of waiting its minute out)."""
    conn = await asyncpg.connect(
        settings.database_url.get_secret_value(),
        server_settings={"search_path": settings.database_schema},
    )
    try:
        await conn.execute(
            "UPDATE approvals SET expires_at = created_at - interval '1 second' "
            "WHERE approval_id = $1",
            uuid.UUID(approval_id),
        )
    finally:
        await conn.close()


async def test_stopping_a_bot_withdraws_its_pending_approval_and_sends_nothing(
    settings: Settings,
    running: tuple[httpx.AsyncClient, uuid.UUID, dict[str, Any], dict[str, Any]],
) -> None:
    client, user, bot, approval = running

    stopped = await client.post(f"/api/v1/bots/{bot['bot_id']}/stop", headers=headers(user))

    assert stopped.status_code == 200 and stopped.json()["state"] == "STOPPED"
    (decided,) = await bot_events(settings, bot["bot_id"], ApprovalDecided, 1)
    assert decided.decision == "expired" and decided.decided_by is None
    assert await order_status(client, user, bot["bot_id"]) == ["CANCELED"]
    # Risk never saw the order: neither it nor a cancellation of it is on orders.intents.v1.
    await asyncio.sleep(1.0)
    records = await read_all(settings.kafka_bootstrap, ORDERS_INTENTS, expect=1, timeout=2)
    assert [
        e
        for e in decoded(ORDERS_INTENTS, records)
        if e.client_order_id == approval["intent"]["client_order_id"]
    ] == []
    late = await client.post(
        f"/api/v1/bots/{bot['bot_id']}/approvals/{approval['approval_id']}/approve",
        headers=headers(user),
    )
    assert late.status_code == 409


async def test_a_pending_approval_survives_a_restart_and_is_approved_once(
    settings: Settings, market_data_app: FastAPI, last_bar: Bar
) -> None:
    user = uuid.uuid4()
    async with app_client(_app(settings, market_data_app)) as client:
        bot = await start_bot(client, user, last_bar.instrument_id)
        await publish_next_bar(settings, last_bar)
        approval = await pending_of(client, user, bot["bot_id"])
    # A new process: the same database, nothing in memory.
    async with app_client(_app(settings, market_data_app)) as client:
        assert (await pending_of(client, user, bot["bot_id"]))["approval_id"] == approval[
            "approval_id"
        ]
        path = f"/api/v1/bots/{bot['bot_id']}/approvals/{approval['approval_id']}/approve"
        assert (await client.post(path, headers=headers(user))).status_code == 200
        assert (await client.post(_link(approval["approval_id"], "approve"))).status_code == 409
        intents = await intents_of(settings, bot["bot_id"])
        assert [i.client_order_id for i in intents] == [approval["intent"]["client_order_id"]]


async def test_an_approval_overdue_at_start_expires_at_start(
    settings: Settings, market_data_app: FastAPI, last_bar: Bar
) -> None:
    user = uuid.uuid4()
    async with app_client(_app(settings, market_data_app)) as client:
        bot = await start_bot(client, user, last_bar.instrument_id)
        await publish_next_bar(settings, last_bar)
        approval = await pending_of(client, user, bot["bot_id"])
    await _make_overdue(settings, approval["approval_id"])  # it expired while nothing ran
    async with app_client(_app(settings, market_data_app)):
        (decided,) = await bot_events(settings, bot["bot_id"], ApprovalDecided, 1)
        assert decided.decision == "expired"
        assert str(decided.approval_id) == approval["approval_id"]
        assert decided.decided_at > datetime.now(UTC) - timedelta(minutes=1)
    assert await intents_of(settings, bot["bot_id"]) == []


async def test_links_are_off_without_a_key(
    make_settings: SettingsMaker, schema: str, market_data_app: FastAPI
) -> None:
    plain = make_settings(Settings, database_schema=schema)
    assert plain.approval_link_key is None
    async with app_client(_app(plain, market_data_app)) as client:
        response = await client.get(_link(str(uuid.uuid4()), "approve"))
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
