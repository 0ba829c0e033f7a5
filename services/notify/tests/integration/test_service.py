"""The notify service on the real broker and the real Postgres: its channels API, and events
delivered, signed, to their owners' webhooks on a real loopback receiver."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from fastapi import FastAPI
from trademesh_bus import Bus
from trademesh_events import orders
from trademesh_events.topics import ORDERS_DENIED_TOPIC, ORDERS_EVENTS_TOPIC
from trademesh_service import service_manifest
from trademesh_testing.contract import ServiceContract
from trademesh_testing.http import Received, Receiver
from trademesh_testing.samples import build_sample, read_all
from trademesh_testing.tokens import bearer
from trademesh_testing.waiting import eventually

from trademesh_notify.api.deps import Runtime
from trademesh_notify.app import create_app
from trademesh_notify.config import Settings
from trademesh_notify.webhook.signing import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    verify,
)

pytestmark = pytest.mark.integration
MANIFEST = service_manifest("trademesh_notify")


class TestService(ServiceContract):
    """/health, /ready, /metrics and the about route (trademesh_testing.contract)."""

    @pytest.fixture
    def private_app(self, private_infra: Any) -> FastAPI:
        return create_app(private_infra.settings(Settings, ready_timeout_s=1.0))


async def add_channel(
    client: httpx.AsyncClient, user: UUID, url: str, events: list[str]
) -> dict[str, Any]:
    made = await client.post(
        "/api/v1/notify/channels", json={"url": url, "events": events}, headers=bearer(user)
    )
    assert made.status_code == 201, made.text
    body: dict[str, Any] = made.json()
    return body


def fill_of(user: UUID) -> orders.OrderFilled:
    fill = build_sample(orders.OrderFilled, user_id=user, account_id=uuid4())
    assert isinstance(fill, orders.OrderFilled)
    return fill


# ---- the channels API --------------------------------------------------------------------------


async def test_a_webhook_secret_is_shown_at_creation_and_never_again(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    user = uuid4()
    made = await add_channel(client, user, f"{receiver.url}/a", ["fill", "denial"])
    assert made["signing_secret"].startswith("whsec_")
    assert (made["kind"], sorted(made["events"])) == ("webhook", ["denial", "fill"])
    listed = await client.get("/api/v1/notify/channels", headers=bearer(user))
    assert listed.status_code == 200
    assert [c["id"] for c in listed.json()] == [made["id"]]
    assert made["signing_secret"] not in listed.text
    assert "signing_secret" not in listed.json()[0]


async def test_a_user_sees_and_deletes_only_their_own_channels(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    alice, bob = uuid4(), uuid4()
    made = await add_channel(client, alice, f"{receiver.url}/a", ["fill"])
    assert (await client.get("/api/v1/notify/channels", headers=bearer(bob))).json() == []
    refused = await client.delete(f"/api/v1/notify/channels/{made['id']}", headers=bearer(bob))
    assert refused.status_code == 404
    assert refused.headers["content-type"] == "application/problem+json"
    deleted = await client.delete(f"/api/v1/notify/channels/{made['id']}", headers=bearer(alice))
    assert deleted.status_code == 204
    assert (await client.get("/api/v1/notify/channels", headers=bearer(alice))).json() == []


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::ffff:10.0.0.1]/hook",
        "http://0.0.0.0:8080/hook",
        "ftp://127.0.0.1/hook",
        "http://user:pass@127.0.0.1/hook",  # pragma: allowlist secret
        "not a url",
    ],
)
async def test_a_webhook_url_to_a_private_address_or_of_another_form_is_a_422_problem(
    client: httpx.AsyncClient, url: str
) -> None:
    user = uuid4()
    refused = await client.post(
        "/api/v1/notify/channels", json={"url": url, "events": ["fill"]}, headers=bearer(user)
    )
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert (await client.get("/api/v1/notify/channels", headers=bearer(user))).json() == []


async def test_bad_bodies_and_missing_tokens_are_problems(client: httpx.AsyncClient) -> None:
    user = uuid4()
    for body in ({"url": "http://127.0.0.1/x", "events": []}, {"url": "http://127.0.0.1/x"},
                 {"url": "http://127.0.0.1/x", "events": ["weather"]},
                 {"url": "http://127.0.0.1/x", "events": ["fill"], "owner_id": str(uuid4())}):  # fmt: skip
        bad = await client.post("/api/v1/notify/channels", json=body, headers=bearer(user))
        assert bad.status_code == 422, body
        assert bad.headers["content-type"] == "application/problem+json"
    anonymous = await client.get("/api/v1/notify/channels")
    assert anonymous.status_code == 401
    viewer = await client.post(
        "/api/v1/notify/channels",
        json={"url": "http://127.0.0.1/x", "events": ["fill"]},
        headers=bearer(user, "viewer"),
    )
    assert viewer.status_code == 403


# ---- delivery ----------------------------------------------------------------------------------


async def test_a_fill_reaches_its_owners_webhook_once_signed_and_no_one_elses(
    client: httpx.AsyncClient, app: FastAPI, receiver: Receiver, producer: Bus
) -> None:
    alice, bob = uuid4(), uuid4()
    mine = await add_channel(client, alice, f"{receiver.url}/alice", ["fill"])
    await add_channel(client, bob, f"{receiver.url}/bob", ["fill", "denial"])
    fill = fill_of(alice)
    envelope = await producer.publish(fill, topic=ORDERS_EVENTS_TOPIC)
    # The same event again, as a broker redelivers it: same envelope id, same bytes.
    await producer.publish_raw(
        ORDERS_EVENTS_TOPIC.name,
        ORDERS_EVENTS_TOPIC.encode(fill),
        ORDERS_EVENTS_TOPIC.key_of(fill),
        envelope.to_headers(),
    )
    # A later fill on the same partition (same account): once it arrived, the duplicate was
    # handled before it.
    marker = fill_of(alice).model_copy(update={"account_id": fill.account_id})
    marker_envelope = await producer.publish(marker, topic=ORDERS_EVENTS_TOPIC)

    async def both_arrived() -> list[Received] | None:
        got = receiver.got.get("/alice", [])
        return got if len(got) >= 2 else None

    got = await eventually(both_arrived)
    runtime = app.state.runtime
    assert isinstance(runtime, Runtime)
    rows = await runtime.deliveries.store.of_channel(UUID(mine["id"]))
    assert [row["status"] for row in rows] == ["sent", "sent"]  # two events, two deliveries
    assert len(receiver.got["/alice"]) == 2
    ids = [r.headers[DELIVERY_HEADER.lower()].split(":")[0] for r in got]
    assert sorted(ids) == sorted([str(envelope.id), str(marker_envelope.id)])  # the duplicate: once
    first = next(r for r in got if r.headers[DELIVERY_HEADER.lower()].startswith(str(envelope.id)))
    # The receiver's recipe (webhook/signing.py, README): HMAC-SHA256 over "<timestamp>.<body>"
    assert verify(
        mine["signing_secret"],
        first.headers[TIMESTAMP_HEADER.lower()],
        first.headers[SIGNATURE_HEADER.lower()],
        first.body,
        now=int(time.time()),
    )
    assert not verify("whsec_another", first.headers[TIMESTAMP_HEADER.lower()],
                      first.headers[SIGNATURE_HEADER.lower()], first.body, now=int(time.time()))  # fmt: skip
    assert b'"trade_id":"' + fill.trade_id.encode() in first.body
    assert receiver.got.get("/bob", []) == []  # Bob's channel got nothing of Alice's


async def test_a_denial_reaches_a_channel_subscribed_to_denials_only(
    client: httpx.AsyncClient, receiver: Receiver, producer: Bus
) -> None:
    user = uuid4()
    await add_channel(client, user, f"{receiver.url}/denials", ["denial"])
    await add_channel(client, user, f"{receiver.url}/fills", ["fill"])
    denial = build_sample(orders.OrderDenied, user_id=user, account_id=uuid4())
    await producer.publish(denial, topic=ORDERS_DENIED_TOPIC)
    got = await eventually(lambda: _arrived(receiver, "/denials"))
    assert b'"reason":"' + denial.reason.encode() in got[0].body  # type: ignore[attr-defined]
    assert receiver.got.get("/fills", []) == []


async def _arrived(receiver: Receiver, path: str) -> list[Received] | None:
    return receiver.got.get(path) or None


async def test_a_failing_receiver_is_retried_then_the_delivery_is_dead(
    client: httpx.AsyncClient, app: FastAPI, receiver: Receiver, producer: Bus, settings: Settings
) -> None:
    receiver.status = 500
    user = uuid4()
    channel = await add_channel(client, user, f"{receiver.url}/down", ["fill"])
    await producer.publish(fill_of(user), topic=ORDERS_EVENTS_TOPIC)
    runtime = app.state.runtime
    assert isinstance(runtime, Runtime)

    async def dead() -> list[Any] | None:
        rows = await runtime.deliveries.store.of_channel(UUID(channel["id"]))
        return rows if rows and rows[0]["status"] == "dead" else None

    rows = await eventually(dead)
    assert rows[0]["attempts"] == settings.delivery_max_attempts
    assert rows[0]["last_error"] == "answered HTTP 500"
    assert len(receiver.got["/down"]) == settings.delivery_max_attempts


async def test_a_malformed_event_goes_to_the_dlq_and_consumption_goes_on(
    client: httpx.AsyncClient, receiver: Receiver, producer: Bus, settings: Settings
) -> None:
    user = uuid4()
    await add_channel(client, user, f"{receiver.url}/after-dlq", ["fill"])
    good = fill_of(user)
    headers = {
        "ce_specversion": "1.0",
        "ce_id": str(uuid4()),
        "ce_source": "test",
        "ce_type": good.type,
        "ce_time": datetime.now(UTC).isoformat(),
    }
    malformed = b'{"type": "' + good.type.encode() + b'"}'  # the right type, no fields
    key = ORDERS_EVENTS_TOPIC.key_of(good)
    await producer.publish_raw(ORDERS_EVENTS_TOPIC.name, malformed, key, headers)
    await producer.publish(good, topic=ORDERS_EVENTS_TOPIC)
    assert len(await eventually(lambda: _arrived(receiver, "/after-dlq"))) == 1
    dead = await read_all(settings.kafka_bootstrap, ORDERS_EVENTS_TOPIC.dlq, expect=1)
    mine = [r for r in dead if dict(r.headers).get("ce_id") == headers["ce_id"].encode()]
    assert len(mine) == 1
    assert dict(mine[0].headers)["dlq_reason"] == b"schema_validation"
