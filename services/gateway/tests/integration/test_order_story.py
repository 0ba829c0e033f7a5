"""A manual order's story through the gateway, with the real services behind it: readable at
once, denied with risk's reason, listed by status, its id answered once (200 with the order or
409 for another body, even for posts at the same time), and only for its owner."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from trademesh_events.orders import OrderType, SubmitOrder
from trademesh_testing.waiting import eventually

pytestmark = pytest.mark.integration


def unpriced() -> str:
    """An instrument nobody has priced: risk denies a limit order on it (NO_MARKET_PRICE, since
    the default limits collar limit prices around the last price)."""
    return f"binance:S{uuid.uuid4().hex[:8].upper()}/USDT"


async def open_account(platform: Any, headers: dict[str, str]) -> str:
    opened = await platform.gateway.post(
        "/api/v1/accounts", json={"name": "story", "cash": "10000"}, headers=headers
    )
    assert opened.status_code == 201, opened.text
    return str(opened.json()["account_id"])


async def decided(
    gateway: httpx.AsyncClient, client_order_id: str, headers: dict[str, str]
) -> dict[str, Any]:
    async def denied() -> dict[str, Any] | None:
        got = await gateway.get(f"/api/v1/orders/{client_order_id}", headers=headers)
        assert got.status_code == 200, got.text
        body: dict[str, Any] = got.json()
        return body if body["status"] == "DENIED" else None

    found: dict[str, Any] = await eventually(denied)
    return found


async def test_a_denied_manual_order_is_its_owners_to_read_and_its_id_is_answered_once(
    platform: Any,
) -> None:
    gateway = platform.gateway
    _alice, alice = await platform.register()
    _bob, bob = await platform.register()
    account = await open_account(platform, alice)
    order = {
        "account_id": account,
        "instrument_id": unpriced(),
        "side": "buy",
        "quantity": "1",
        "limit_price": "100",
        "client_order_id": f"man-{uuid.uuid4().hex[:20]}",
    }
    placed = await gateway.post("/api/v1/orders", json=order, headers=alice)
    assert placed.status_code == 202, placed.text
    cid = order["client_order_id"]
    # Recorded before the intent was published: readable at once, whatever risk decides.
    at_once = await gateway.get(f"/api/v1/orders/{cid}", headers=alice)
    assert at_once.status_code == 200, at_once.text
    assert at_once.json()["status"] in ("INITIALIZED", "DENIED")

    denied = await decided(gateway, cid, alice)
    assert denied["reason_code"] == "NO_MARKET_PRICE"
    assert denied["reason"]
    assert [s["status"] for s in denied["history"]] == ["INITIALIZED", "DENIED"]
    assert (denied["side"], denied["quantity"], denied["limit_price"]) == ("buy", "1", "100")
    listed = await gateway.get("/api/v1/orders", params={"status": "DENIED"}, headers=alice)
    assert [o["client_order_id"] for o in listed.json()["items"]] == [cid]

    # Sent again: the order as it is, never a second 202; another body under the id: 409.
    again = await gateway.post("/api/v1/orders", json=order, headers=alice)
    assert again.status_code == 200, again.text
    assert (again.json()["client_order_id"], again.json()["status"]) == (cid, "DENIED")
    assert again.headers["location"] == f"/api/v1/orders/{cid}"
    other = await gateway.post("/api/v1/orders", json={**order, "quantity": "2"}, headers=alice)
    assert other.status_code == 409, other.text
    assert other.headers["content-type"] == "application/problem+json"

    # Bob: not his to read, list, or take over.
    assert (await gateway.get(f"/api/v1/orders/{cid}", headers=bob)).status_code == 404
    bobs = await gateway.get("/api/v1/orders", params={"status": "DENIED"}, headers=bob)
    assert bobs.status_code == 200 and bobs.json()["items"] == []
    bob_account = await open_account(platform, bob)
    taken = await gateway.post(
        "/api/v1/orders", json={**order, "account_id": bob_account}, headers=bob
    )
    assert taken.status_code == 409
    assert account not in taken.text
    assert (await decided(gateway, cid, alice))["history"] == denied["history"]


async def test_posts_of_one_order_at_once_are_accepted_once(platform: Any) -> None:
    gateway = platform.gateway
    _user, headers = await platform.register()
    account = await open_account(platform, headers)
    order = {
        "account_id": account,
        "instrument_id": unpriced(),
        "side": "sell",
        "quantity": "3",
        "limit_price": "50",
        "client_order_id": f"man-{uuid.uuid4().hex[:20]}",
    }
    answers = await asyncio.gather(
        *(gateway.post("/api/v1/orders", json=order, headers=headers) for _ in range(4))
    )
    assert sorted(a.status_code for a in answers) == [200, 200, 200, 202], [a.text for a in answers]
    denied = await decided(gateway, str(order["client_order_id"]), headers)
    assert [s["status"] for s in denied["history"]] == ["INITIALIZED", "DENIED"]


async def test_a_resent_order_whose_intent_was_lost_is_decided(platform: Any) -> None:
    """Execution recorded the order but its intent never reached the bus (the gateway stopped in
    between): the client sends it again and, as it is still undecided long after it was
    recorded, the gateway publishes its intent again, and risk decides it."""
    gateway = platform.gateway
    user, headers = await platform.register()
    account = await open_account(platform, headers)
    instrument = unpriced()
    cid = f"man-{uuid.uuid4().hex[:20]}"
    lost = SubmitOrder(
        account_id=uuid.UUID(account),
        user_id=user,
        client_order_id=cid,
        instrument_id=instrument,
        side="buy",
        order_type=OrderType.LIMIT,
        quantity=Decimal(1),
        limit_price=Decimal(10),
        source="manual",
        created_at=datetime.now(UTC) - timedelta(minutes=1),
    )
    transport = httpx.ASGITransport(app=platform.apps["execution"])
    async with httpx.AsyncClient(transport=transport, base_url="http://execution") as direct:
        recorded = await direct.post(
            "/api/v1/orders", json=lost.model_dump(mode="json"), headers=headers
        )
    assert recorded.status_code == 201, recorded.text
    again = await gateway.post(
        "/api/v1/orders",
        json={
            "account_id": account,
            "instrument_id": instrument,
            "side": "buy",
            "quantity": "1",
            "limit_price": "10",
            "client_order_id": cid,
        },
        headers=headers,
    )
    assert (again.status_code, again.json()["status"]) == (200, "INITIALIZED"), again.text
    denied = await decided(gateway, cid, headers)
    assert denied["reason_code"] == "NO_MARKET_PRICE"
