"""The strategy service on the real broker and the real Postgres: events in and out, /ready, /metrics, the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from fastapi import FastAPI
from trademesh_bus import Bus
from trademesh_events.ids import make_client_order_id
from trademesh_events.marketdata import Bar
from trademesh_events.orders import DenialReason, OrderDenied, OrderRejected
from trademesh_events.topics import MD_BARS, ORDERS_DENIED, ORDERS_EVENTS, get_topic
from trademesh_service import service_manifest
from trademesh_testing.accounts import book
from trademesh_testing.contract import ServiceContract
from trademesh_testing.marketdata import finished, start_replay, wait_stored
from trademesh_testing.samples import read_all
from trademesh_testing.tokens import bearer
from trademesh_testing.waiting import eventually

from trademesh_strategy.app import create_app
from trademesh_strategy.config import Settings
from trademesh_strategy.engine import OrderRequest

pytestmark = pytest.mark.integration


class TestService(ServiceContract):
    """/health, /ready, /metrics and the about route (trademesh_testing.contract)."""

    @pytest.fixture
    def private_app(self, private_infra: Any) -> FastAPI:
        # market-data is not a readiness dependency: bots wait for it (their bars are redelivered)
        # rather than the whole service being taken out of rotation.
        return create_app(private_infra.settings(Settings, ready_timeout_s=1.0))


async def running_bot(
    client: httpx.AsyncClient, market: httpx.AsyncClient, user: UUID
) -> dict[str, Any]:
    """A bot on a fully replayed (and stored) instrument: no feed bar will reach it any more,
    so what it does next comes from the events a test publishes."""
    instrument, feed = await start_replay(market, file="GOOG_400.csv")
    await finished(market, feed["feed_id"])
    await wait_stored(market, instrument, 400)
    response = await client.post(
        "/api/v1/bots",
        json={
            "strategy": "rsi_cross",
            "instrument_id": instrument,
            "timeframe": "1d",
            "account_id": str(book().open(user)),
        },
        headers=bearer(user),
    )
    assert response.status_code == 201, response.text
    bot: dict[str, Any] = response.json()
    return bot


def next_bar(bot: dict[str, Any], days: int = 1) -> Bar:
    opens = datetime.fromisoformat(bot["last_bar_time"]) + timedelta(days=days)
    return Bar(
        instrument_id=bot["instrument_id"],
        timeframe="1d",
        open_time=opens,
        close_time=opens + timedelta(days=1),
        open=Decimal(100),
        high=Decimal(101),
        low=Decimal(99),
        close=Decimal(100),
        volume=Decimal(1000),
    )


def ce_headers(event_type: str) -> dict[str, str]:
    return {
        "ce_specversion": "1.0",
        "ce_id": str(uuid4()),
        "ce_source": "test",
        "ce_type": event_type,
        "ce_time": datetime.now(UTC).isoformat(),
    }


async def test_malformed_events_go_to_the_dlq_and_consumption_goes_on(
    app: FastAPI,
    client: httpx.AsyncClient,
    market: httpx.AsyncClient,
    producer: Bus,
    settings: Settings,
) -> None:
    user = uuid4()
    bot = await running_bot(client, market, user)
    path = f"/api/v1/bots/{bot['bot_id']}"
    poison: dict[str, str] = {}
    for topic in service_manifest("trademesh_strategy").consumes:
        spec = get_topic(topic)
        headers = ce_headers(spec.events[0].event_type())
        poison[topic] = headers["ce_id"]
        malformed = b'{"type": "' + spec.events[0].event_type().encode() + b'"}'
        await producer.publish_raw(topic, malformed, bot["instrument_id"].encode(), headers)

    # Behind the poison, valid events are applied: a bar, and a rejection and a denial of the
    # bot's orders.
    await producer.publish(next_bar(bot), topic=get_topic(MD_BARS))
    runtime = app.state.runtime
    record = await runtime.bots.get(UUID(bot["bot_id"]))
    orders = []
    for leg in ("a", "b"):
        request = OrderRequest(
            make_client_order_id(record.bot_id, record.last_bar_time, leg),
            record.last_bar_time,
            leg,
            "buy",
            Decimal(1),
            "market",
            None,
            None,
        )
        async with runtime.db.transaction() as conn:
            run_id = await runtime.bots.current_run(conn, record.bot_id)
            await runtime.runtime._emit(conn, record, run_id, [request])
        orders.append(request.client_order_id)
    now = datetime.now(UTC)
    common = {
        "account_id": record.account_id,
        "user_id": user,
        "instrument_id": bot["instrument_id"],
    }
    await producer.publish(
        OrderRejected(client_order_id=orders[0], ts=now, reason="venue said no", **common),
        topic=get_topic(ORDERS_EVENTS),
    )
    await producer.publish(
        OrderDenied(
            client_order_id=orders[1],
            reason=DenialReason.MAX_POSITION,
            message="over the limit",
            denied_at=now,
            **common,
        ),
        topic=get_topic(ORDERS_DENIED),
    )

    async def applied() -> list[dict[str, Any]] | None:
        got = (await client.get(path, headers=bearer(user))).json()
        listed = (await client.get(f"{path}/orders", headers=bearer(user))).json()["items"]
        done = got["bars_seen"] == bot["bars_seen"] + 1 and all(not o["open"] for o in listed)
        return listed if done else None

    listed = await eventually(applied)
    assert [(o["status"], o["reason"]) for o in listed] == [
        ("REJECTED", "venue said no"),
        ("DENIED", "MAX_POSITION: over the limit"),
    ]
    for topic, ce_id in poison.items():
        dead = await read_all(settings.kafka_bootstrap, get_topic(topic).dlq, expect=1)
        mine = [r for r in dead if dict(r.headers).get("ce_id") == ce_id.encode()]
        assert len(mine) == 1, topic
        assert dict(mine[0].headers)["dlq_reason"] == b"schema_validation"


async def test_a_redelivered_bar_is_applied_once(
    client: httpx.AsyncClient, market: httpx.AsyncClient, producer: Bus
) -> None:
    user = uuid4()
    bot = await running_bot(client, market, user)
    spec = get_topic(MD_BARS)
    bar = next_bar(bot)
    envelope = await producer.publish(bar, topic=spec)
    # The same event again, as a broker redelivers it: same envelope id, same bytes.
    await producer.publish_raw(spec.name, spec.encode(bar), spec.key_of(bar), envelope.to_headers())
    # A later bar of the same instrument, so on the same partition behind the duplicate.
    await producer.publish(next_bar(bot, days=2), topic=spec)

    async def both_seen() -> dict[str, Any] | None:
        got = (await client.get(f"/api/v1/bots/{bot['bot_id']}", headers=bearer(user))).json()
        last = datetime.fromisoformat(got["last_bar_time"])
        return got if last == next_bar(bot, days=2).open_time else None

    assert (await eventually(both_seen))["bars_seen"] == bot["bars_seen"] + 2
