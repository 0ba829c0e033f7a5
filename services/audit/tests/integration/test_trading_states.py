"""Audit records what the real risk service publishes of an account's trading state: risk and
audit in process on the same real broker and Postgres (each on a schema of its own), the
account's fills, intents and switches sent as the other services and its owner send them."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from trademesh_bus import Bus
from trademesh_events.orders import OrderFilled, OrderType, SubmitOrder
from trademesh_events.risk import TradingStateChanged
from trademesh_events.topics import RISK_EVENTS, get_topic
from trademesh_testing.accounts import AccountBook
from trademesh_testing.http import app_client
from trademesh_testing.samples import decoded, price_bar, read_all
from trademesh_testing.tokens import bearer
from trademesh_testing.waiting import eventually

from trademesh_audit.config import Settings

pytestmark = pytest.mark.integration

TRADER_ID = uuid4()
CHANGED = "trademesh.risk.trading_state_changed"
CallerHeaders = Callable[[str | None], dict[str, str]]  # the conftest's caller_headers


@pytest.fixture
async def risk(
    service_settings: Callable[..., Any],
    settings: Settings,
    database_url: str,
    account_book: AccountBook,
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The risk service, running (its consumers and outbox relay), on a schema of its own."""
    from trademesh_risk.app import create_app
    from trademesh_risk.config import Settings as RiskSettings

    schema = f"r_{uuid.uuid4().hex[:10]}"
    made = service_settings(
        RiskSettings,
        http_port=0,
        consumer_group=f"test-{uuid.uuid4().hex[:10]}",
        database_schema=schema,
    )
    app: FastAPI = create_app(made, execution_transport=account_book.transport)
    try:
        async with app_client(app) as http:
            yield app, http
    finally:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()


@pytest.fixture
async def peer(settings: Settings) -> AsyncIterator[Bus]:
    """The other services' side of the bus: execution's fills, a bot's intents."""
    bus = Bus(settings, "test-peer", telemetry=False)
    await bus.start()
    yield bus
    await bus.stop()


def fill(account: UUID, instrument: str, side: str, quantity: str, price: str, fee: str) -> Any:
    return OrderFilled(
        account_id=account,
        user_id=TRADER_ID,
        client_order_id=f"a-{uuid4().hex[:20]}",
        instrument_id=instrument,
        ts=datetime.now(UTC),
        trade_id=f"tr-{uuid4().hex[:12]}",
        side=side,  # type: ignore[arg-type]
        last_qty=Decimal(quantity),
        last_price=Decimal(price),
        cum_qty=Decimal(quantity),
        leaves_qty=Decimal(0),
        fee=Decimal(fee),
        fee_currency="USD",
        liquidity="taker",
    )


async def logged_changes(
    audit: httpx.AsyncClient, admin: dict[str, str], account: UUID, expect: int
) -> list[dict[str, Any]]:
    """The log's rows of the account's trading state changes, oldest first, once there are
    `expect` of them."""

    async def found() -> list[dict[str, Any]] | None:
        response = await audit.get(
            "/api/v1/audit", params={"action": CHANGED, "target": str(account)}, headers=admin
        )
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return sorted(items, key=lambda item: item["seq"]) if len(items) >= expect else None

    rows: list[dict[str, Any]] = await eventually(found)
    return rows


async def test_a_daily_loss_breach_and_a_kill_switch_are_published_once_each_and_logged(
    client: httpx.AsyncClient,
    risk: tuple[FastAPI, httpx.AsyncClient],
    peer: Bus,
    settings: Settings,
    account_book: AccountBook,
    caller_headers: CallerHeaders,
) -> None:
    risk_app, risk_api = risk
    admin, trader = caller_headers("admin"), bearer(TRADER_ID, "trader")
    account, name = account_book.open(TRADER_ID), f"test:A{uuid4().hex[:10].upper()}/USD"
    limited = await risk_api.put(
        f"/api/v1/accounts/{account}/limits", json={"daily_loss_limit": "100"}, headers=trader
    )
    assert limited.status_code == 200, limited.text

    # Bought 10 at 100, sold 5 at 79 with a fee of 5: realised -110, past the limit of 100;
    # then 1 more sold at 70 (realised -140): the account is REDUCING already.
    await peer.publish(fill(account, name, "buy", "10", "100", "0"))
    await peer.publish(fill(account, name, "sell", "5", "79", "5"))
    await peer.publish(fill(account, name, "sell", "1", "70", "0"))

    async def booked() -> dict[str, Any] | None:
        got = (await risk_api.get(f"/api/v1/accounts/{account}", headers=trader)).json()
        return got if Decimal(got["realised_today"]) == Decimal(-140) else None

    assert (await eventually(booked))["state"] == "REDUCING"
    # An intent that would grow the position: denied REDUCE_ONLY, and no second switch.
    await peer.publish(price_bar(name, "70"))

    async def priced() -> bool:
        return risk_app.state.runtime.prices.get(name) is not None

    await eventually(priced)
    grow = SubmitOrder(
        account_id=account,
        user_id=TRADER_ID,
        client_order_id=f"a-{uuid4().hex[:20]}",
        instrument_id=name,
        side="buy",
        order_type=OrderType.LIMIT,
        quantity=Decimal(1),
        limit_price=Decimal(70),
        source="manual",
        created_at=datetime.now(UTC),
    )
    await peer.publish(grow)

    async def decided() -> list[dict[str, Any]] | None:
        params = {"action": "trademesh.order.denied", "target": grow.client_order_id}
        response = await client.get("/api/v1/audit", params=params, headers=admin)
        items: list[dict[str, Any]] = response.json()["items"]
        return items or None

    [denial] = await eventually(decided)
    assert denial["event"]["reason"] == "REDUCE_ONLY"
    engaged = await risk_api.post(
        f"/api/v1/accounts/{account}/kill-switch",
        json={"engaged": True, "reason": "enough for today"},
        headers=trader,
    )
    assert engaged.status_code == 200, engaged.text

    rows = await logged_changes(client, admin, account, expect=2)
    # On the topic: the two changes, and nothing between them (the relay publishes in commit
    # order, so a change made by the later fill or the intent would be there before the halt).
    records = await read_all(settings.kafka_bootstrap, RISK_EVENTS, expect=1, timeout=1)
    published = [
        e
        for e in decoded(RISK_EVENTS, records)
        if isinstance(e, TradingStateChanged) and e.account_id == account
    ]
    assert [(e.old_state.value, e.new_state.value, e.reason.value) for e in published] == [
        ("ACTIVE", "REDUCING", "DAILY_LOSS_LIMIT"),
        ("REDUCING", "HALTED", "KILL_SWITCH_ENGAGED"),
    ]
    # In the log, once each, in the chain's order: risk's own act, then the trader's.
    assert [
        (row["actor_kind"], row["actor"], row["topic"], row["target_kind"]) for row in rows
    ] == [
        ("service", "risk", RISK_EVENTS, "account_id"),
        ("user", str(TRADER_ID), RISK_EVENTS, "account_id"),
    ]
    # Each row holds the event as it travelled.
    assert [row["event"] for row in rows] == [
        json.loads(get_topic(RISK_EVENTS).encode(event)) for event in published
    ]
    assert [row["event"]["message"] for row in rows] == [
        "realised PnL today -110 has reached the daily_loss_limit 100",
        "enough for today",
    ]
    verified = (await client.get("/api/v1/audit/verify", headers=admin)).json()
    assert verified["ok"] is True and verified["first_broken"] is None
