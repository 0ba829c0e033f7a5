"""Every order's story on the real broker and Postgres: a manual intent recorded before risk
decides it (its id claimed once, whoever asks at the same time), a denial kept with its reason,
an approval of a recorded intent placed, each read back by its owner only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from fastapi import FastAPI
from trademesh_bus import Bus
from trademesh_events.orders import (
    DenialReason,
    OrderApproved,
    OrderDenied,
    OrderType,
    SubmitOrder,
)
from trademesh_events.topics import ORDERS_APPROVED, ORDERS_DENIED, get_topic
from trademesh_testing.tokens import bearer
from trademesh_testing.waiting import eventually

from trademesh_execution.config import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
async def peer(settings: Settings) -> AsyncIterator[Bus]:
    """Risk's side of the bus: its approvals and denials."""
    bus = Bus(settings, "test-risk", telemetry=False)
    await bus.start()
    yield bus
    await bus.stop()


async def paper_account(client: httpx.AsyncClient, user: UUID) -> UUID:
    response = await client.post(
        "/api/v1/accounts", json={"name": "paper", "cash": "10000"}, headers=bearer(user)
    )
    assert response.status_code == 201, response.text
    return UUID(response.json()["account_id"])


def intent(account: UUID, user: UUID, **fields: Any) -> SubmitOrder:
    values: dict[str, Any] = {
        "account_id": account,
        "user_id": user,
        "client_order_id": f"man-{uuid4().hex[:20]}",
        "instrument_id": "test:STORY/USD",
        "side": "buy",
        "order_type": OrderType.LIMIT,
        "quantity": Decimal(2),
        "limit_price": Decimal(100),
        "source": "manual",
        "created_at": datetime.now(UTC) - timedelta(seconds=1),
    }
    return SubmitOrder(**{**values, **fields})


def denial(order: SubmitOrder) -> OrderDenied:
    return OrderDenied(
        account_id=order.account_id,
        user_id=order.user_id,
        client_order_id=order.client_order_id,
        instrument_id=order.instrument_id,
        reason=DenialReason.MAX_ORDER_QUANTITY,
        message="quantity 2 is above the account's limit of 1",
        denied_at=datetime.now(UTC),
        order=order,
    )


async def record(client: httpx.AsyncClient, order: SubmitOrder, user: UUID) -> httpx.Response:
    return await client.post(
        "/api/v1/orders", json=order.model_dump(mode="json"), headers=bearer(user)
    )


async def story(client: httpx.AsyncClient, client_order_id: str, user: UUID) -> dict[str, Any]:
    got = await client.get(f"/api/v1/orders/{client_order_id}", headers=bearer(user))
    assert got.status_code == 200, got.text
    body: dict[str, Any] = got.json()
    return body


def statuses(order: dict[str, Any]) -> list[str]:
    return [step["status"] for step in order["history"]]


async def test_a_denied_intent_is_read_back_by_its_owner_with_its_reason_and_history(
    client: httpx.AsyncClient, peer: Bus
) -> None:
    user = uuid4()
    account = await paper_account(client, user)
    order = intent(account, user)
    recorded = await record(client, order, user)
    assert recorded.status_code == 201, recorded.text
    assert recorded.json()["status"] == "INITIALIZED"
    # Visible before risk decides, and listed as such.
    before = await story(client, order.client_order_id, user)
    assert (before["status"], statuses(before)) == ("INITIALIZED", ["INITIALIZED"])
    waiting = await client.get(
        "/api/v1/orders", params={"status": "INITIALIZED"}, headers=bearer(user)
    )
    assert [o["client_order_id"] for o in waiting.json()["items"]] == [order.client_order_id]

    await peer.publish(denial(order), topic=get_topic(ORDERS_DENIED))

    async def denied() -> dict[str, Any] | None:
        got = await story(client, order.client_order_id, user)
        return got if got["status"] == "DENIED" else None

    after = await eventually(denied)
    assert (after["reason_code"], after["reason"]) == (
        "MAX_ORDER_QUANTITY",
        "quantity 2 is above the account's limit of 1",
    )
    assert statuses(after) == ["INITIALIZED", "DENIED"]
    assert after["history"][1]["reason"] == after["reason"]
    assert after["history"][0]["at"] <= after["history"][1]["at"]
    assert (after["side"], after["quantity"], after["limit_price"]) == ("buy", "2", "100")
    listed = await client.get("/api/v1/orders", params={"status": "DENIED"}, headers=bearer(user))
    assert [o["client_order_id"] for o in listed.json()["items"]] == [order.client_order_id]
    assert listed.json()["items"][0]["reason_code"] == "MAX_ORDER_QUANTITY"
    waiting = await client.get(
        "/api/v1/orders", params={"status": "INITIALIZED"}, headers=bearer(user)
    )
    assert waiting.json()["items"] == []
    # Another user: the order does not exist, nor is it listed.
    stranger = await client.get(f"/api/v1/orders/{order.client_order_id}", headers=bearer(uuid4()))
    assert stranger.status_code == 404
    assert stranger.headers["content-type"] == "application/problem+json"


async def test_a_bot_order_denied_unrecorded_is_kept_denied_once(
    client: httpx.AsyncClient, peer: Bus, app: FastAPI
) -> None:
    """A bot's intent is not recorded before risk decides it: its denial alone tells its story.
    The same denial again (a second publication, another event id) changes nothing."""
    user = uuid4()
    account = await paper_account(client, user)
    order = intent(
        account, user, source="bot", bot_id=uuid4(), client_order_id=f"bot-{uuid4().hex[:16]}"
    )
    denied = denial(order)
    await peer.publish(denied, topic=get_topic(ORDERS_DENIED))

    async def kept() -> dict[str, Any] | None:
        got = await client.get(f"/api/v1/orders/{order.client_order_id}", headers=bearer(user))
        return got.json() if got.status_code == 200 else None

    first = await eventually(kept)
    assert (first["status"], statuses(first)) == ("DENIED", ["INITIALIZED", "DENIED"])
    assert first["history"][0]["at"] == order.created_at.isoformat().replace("+00:00", "Z")
    await peer.publish(denied, topic=get_topic(ORDERS_DENIED))
    # A later denial on the same partition shows the repeat was handled (in order) first.
    marker = intent(account, user, client_order_id=f"bot-{uuid4().hex[:16]}")
    await peer.publish(denial(marker), topic=get_topic(ORDERS_DENIED))
    await eventually(lambda: kept_id(client, marker.client_order_id, user))
    again = await story(client, order.client_order_id, user)
    assert statuses(again) == ["INITIALIZED", "DENIED"]


async def kept_id(client: httpx.AsyncClient, client_order_id: str, user: UUID) -> bool:
    got = await client.get(f"/api/v1/orders/{client_order_id}", headers=bearer(user))
    return got.status_code == 200


async def test_an_approved_intent_becomes_the_placed_order_and_a_late_denial_changes_nothing(
    client: httpx.AsyncClient, peer: Bus
) -> None:
    user = uuid4()
    account = await paper_account(client, user)
    order = intent(account, user)
    assert (await record(client, order, user)).status_code == 201
    approved = OrderApproved(account_id=account, order=order, approved_at=datetime.now(UTC))
    await peer.publish(approved, topic=get_topic(ORDERS_APPROVED))

    async def working() -> dict[str, Any] | None:
        got = await story(client, order.client_order_id, user)
        return got if got["status"] == "ACCEPTED" else None

    placed = await eventually(working)
    assert statuses(placed) == ["INITIALIZED", "PENDING", "SUBMITTED", "ACCEPTED"]
    # A denial of a placed order (risk decides an id once; this one is forged) is ignored.
    await peer.publish(denial(order), topic=get_topic(ORDERS_DENIED))
    marker = intent(account, user)
    await peer.publish(denial(marker), topic=get_topic(ORDERS_DENIED))
    await eventually(lambda: kept_id(client, marker.client_order_id, user))
    assert (await story(client, order.client_order_id, user))["status"] == "ACCEPTED"


async def test_a_recorded_id_answers_the_kept_order_or_a_409_and_only_its_owner(
    client: httpx.AsyncClient,
) -> None:
    user = uuid4()
    account = await paper_account(client, user)
    order = intent(account, user)
    first = await record(client, order, user)
    assert first.status_code == 201, first.text
    # The same order again (amounts written otherwise are the same amounts): the kept one.
    same = order.model_copy(update={"quantity": Decimal("2.000"), "created_at": datetime.now(UTC)})
    again = await record(client, same, user)
    assert again.status_code == 200, again.text
    assert again.json()["created_at"] == first.json()["created_at"]
    other = await record(client, order.model_copy(update={"quantity": Decimal(3)}), user)
    assert other.status_code == 409
    assert other.headers["content-type"] == "application/problem+json"
    assert other.json()["type"].endswith("/problems/order-id-in-use")
    # Another user: their order under a used id is refused, the account of another is unknown.
    stranger = uuid4()
    theirs = await paper_account(client, stranger)
    taken = await record(
        client, intent(theirs, stranger, client_order_id=order.client_order_id), stranger
    )
    assert taken.status_code == 409
    assert str(account) not in taken.text
    not_theirs = await record(client, intent(account, stranger), stranger)
    assert not_theirs.status_code == 404
    # Not decided yet: no cancel.
    cancel = await client.post(
        f"/api/v1/orders/{order.client_order_id}/cancel", headers=bearer(user)
    )
    assert cancel.status_code == 409, cancel.text
    assert (await story(client, order.client_order_id, user))["status"] == "INITIALIZED"


async def test_concurrent_records_of_one_id_record_it_once(client: httpx.AsyncClient) -> None:
    """Many posts of one id at once: exactly one records it (201); the same order again is the
    kept one (200), another order under it a 409; one history entry."""
    user = uuid4()
    account = await paper_account(client, user)
    order = intent(account, user)
    answers = await asyncio.gather(*(record(client, order, user) for _ in range(6)))
    assert sorted(a.status_code for a in answers) == [200] * 5 + [201]
    assert len({a.json()["created_at"] for a in answers}) == 1
    rival = intent(account, user)
    variants = [rival.model_copy(update={"quantity": Decimal(n)}) for n in range(1, 7)]
    answers = await asyncio.gather(*(record(client, v, user) for v in variants))
    assert sorted(a.status_code for a in answers) == [201] + [409] * 5
    winner = next(v for v, a in zip(variants, answers, strict=True) if a.status_code == 201)
    kept = await story(client, rival.client_order_id, user)
    assert Decimal(kept["quantity"]) == winner.quantity
    assert statuses(kept) == ["INITIALIZED"]
