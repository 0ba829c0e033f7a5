"""The delivery loop on the real broker and Postgres: woken by the commit (LISTEN/NOTIFY), not a
poll; per-channel rate limits; the delivery metrics; the owner's dead letters, retry, and
disable/enable, through the API. Deliveries go to a real loopback receiver."""

from __future__ import annotations

import time
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from trademesh_bus import Bus
from trademesh_events import orders
from trademesh_events.topics import ORDERS_EVENTS_TOPIC
from trademesh_testing.http import Receiver
from trademesh_testing.samples import build_sample
from trademesh_testing.tokens import bearer
from trademesh_testing.waiting import eventually

from trademesh_notify.api.deps import Runtime
from trademesh_notify.config import Settings
from trademesh_notify.engine import RetryPolicy
from trademesh_notify.ratelimit import ChannelLimits
from trademesh_notify.webhook.signing import DELIVERY_HEADER

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The notify tests' settings with a 30 s safety-net poll: a delivery that arrives in a
    second or two was woken by its commit, not found by the poll."""
    return settings.model_copy(update={"delivery_poll_interval_s": 30.0})


def runtime_of(app: FastAPI) -> Runtime:
    runtime = app.state.runtime
    assert isinstance(runtime, Runtime)
    return runtime


async def add_channel(client: httpx.AsyncClient, user: UUID, url: str) -> UUID:
    made = await client.post(
        "/api/v1/notify/channels", json={"url": url, "events": ["fill"]}, headers=bearer(user)
    )
    assert made.status_code == 201, made.text
    return UUID(made.json()["id"])


async def publish_fill(producer: Bus, user: UUID, account: UUID | None = None) -> UUID:
    fill = build_sample(orders.OrderFilled, user_id=user, account_id=account or uuid4())
    return (await producer.publish(fill, topic=ORDERS_EVENTS_TOPIC)).id


async def statuses(app: FastAPI, channel: UUID) -> list[tuple[str, int]]:
    rows = await runtime_of(app).deliveries.store.of_channel(channel)
    return [(row["status"], row["attempts"]) for row in rows]


def sample(text: str, name: str, **labels: str) -> float:
    """The value of the sample `name` with these labels (0 when it is not exported yet)."""
    for family in text_string_to_metric_families(text):
        for one in family.samples:
            if one.name == name and all(one.labels.get(k) == v for k, v in labels.items()):
                return float(one.value)
    return 0.0


# ---- woken by the commit -----------------------------------------------------------------------


async def test_a_fill_is_sent_when_its_delivery_commits_not_at_the_next_poll(
    client: httpx.AsyncClient, app: FastAPI, receiver: Receiver, producer: Bus
) -> None:
    user = uuid4()
    await add_channel(client, user, f"{receiver.url}/woken")
    listener = runtime_of(app).deliveries.listener
    assert listener is not None
    await eventually(lambda: _true(listener.listening))
    published = time.monotonic()
    await publish_fill(producer, user)
    await eventually(lambda: _true(receiver.count("/woken") == 1), timeout=5)
    # The poll is 30 s: only the NOTIFY at the consumer's commit explains this.
    assert receiver.got["/woken"][0].at - published < 5


async def test_the_listener_reconnects_when_its_connection_is_killed(
    client: httpx.AsyncClient,
    app: FastAPI,
    receiver: Receiver,
    producer: Bus,
    settings: Settings,
) -> None:
    user = uuid4()
    await add_channel(client, user, f"{receiver.url}/again")
    listener = runtime_of(app).deliveries.listener
    assert listener is not None
    await eventually(lambda: _true(listener.listening))
    admin = await asyncpg.connect(settings.database_url.get_secret_value())
    try:
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE query LIKE 'LISTEN %' AND query LIKE '%' || $1 || '%'",
            listener.channel,
        )
        assert killed == 1
        await eventually(lambda: _true(not listener.listening), timeout=5)
        await eventually(lambda: _true(listener.listening), timeout=10)
        assert (
            await admin.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN %' "
                "AND query LIKE '%' || $1 || '%'",
                listener.channel,
            )
            == 1
        )
    finally:
        await admin.close()
    await publish_fill(producer, user)
    await eventually(lambda: _true(receiver.count("/again") == 1), timeout=5)


async def _true(value: bool) -> bool:
    return value


# ---- rate limits -------------------------------------------------------------------------------


async def test_a_channel_over_its_rate_limit_is_put_off_not_failed_and_nothing_is_lost(
    client: httpx.AsyncClient, app: FastAPI, receiver: Receiver, producer: Bus
) -> None:
    """8 fills at once to a channel allowed 3 a second: each arrives once, each in one attempt
    (the ones put off were not attempts), over more than a second, and the deferrals are
    counted."""
    deliveries = runtime_of(app).deliveries
    assert deliveries.limits is not None
    assert deliveries.limits.items("webhook")  # the settings' default limits are in force
    deliveries.limits = ChannelLimits("memory://", {"webhook": "3/second"})
    user, account = uuid4(), uuid4()
    channel = await add_channel(client, user, f"{receiver.url}/limited")
    before = (await client.get("/metrics")).text
    ids = [await publish_fill(producer, user, account) for _ in range(8)]
    await eventually(lambda: _true(receiver.count("/limited") == 8), timeout=20)
    got = receiver.got["/limited"]
    assert sorted(r.headers[DELIVERY_HEADER.lower()] for r in got) == sorted(
        f"{event}:{channel}" for event in ids
    )
    assert got[-1].at - got[0].at > 1.0  # 3 a second: not all in the first window
    assert await statuses(app, channel) == [("sent", 1)] * 8
    after = (await client.get("/metrics")).text
    deferred = {"channel_kind": "webhook", "event_kind": "fill", "outcome": "deferred"}
    name = "trademesh_notify_deliveries_total"
    assert sample(after, name, **deferred) - sample(before, name, **deferred) >= 5


# ---- metrics -----------------------------------------------------------------------------------


async def test_a_sent_delivery_moves_the_sent_counter_and_the_latency_histogram(
    client: httpx.AsyncClient, app: FastAPI, receiver: Receiver, producer: Bus
) -> None:
    user = uuid4()
    await add_channel(client, user, f"{receiver.url}/counted")
    labels = {"channel_kind": "webhook", "event_kind": "fill"}
    before = (await client.get("/metrics")).text
    await publish_fill(producer, user)
    await eventually(lambda: _true(receiver.count("/counted") == 1))

    async def moved() -> str | None:
        text = (await client.get("/metrics")).text
        return text if sample(text, "trademesh_notify_deliveries_total", **labels, outcome="sent") > sample(before, "trademesh_notify_deliveries_total", **labels, outcome="sent") else None  # fmt: skip

    after = await eventually(moved)
    sent = "trademesh_notify_deliveries_total"
    count = "trademesh_notify_delivery_latency_seconds_count"
    total = "trademesh_notify_delivery_latency_seconds_sum"
    assert (
        sample(after, sent, **labels, outcome="sent")
        - sample(before, sent, **labels, outcome="sent")
        == 1
    )
    assert sample(after, count, **labels) - sample(before, count, **labels) == 1
    assert 0 < sample(after, total, **labels) - sample(before, total, **labels) < 30
    # No user's or channel's id is a label.
    assert str(user) not in after


async def test_a_failing_receiver_moves_the_failed_retried_and_dead_counters(
    client: httpx.AsyncClient,
    app: FastAPI,
    receiver: Receiver,
    producer: Bus,
    settings: Settings,
) -> None:
    receiver.status = 500
    user = uuid4()
    channel = await add_channel(client, user, f"{receiver.url}/failing")
    labels = {"channel_kind": "webhook", "event_kind": "fill"}
    name = "trademesh_notify_deliveries_total"
    retries = "trademesh_notify_delivery_retries_total"
    before = (await client.get("/metrics")).text
    await publish_fill(producer, user)
    await eventually(lambda: _dead(app, channel))
    after = (await client.get("/metrics")).text
    attempts = settings.delivery_max_attempts
    for outcome, moved in (("failed", attempts - 1), ("dead", 1)):
        assert (
            sample(after, name, **labels, outcome=outcome)
            - sample(before, name, **labels, outcome=outcome)
            >= moved
        ), outcome
    assert sample(after, retries, **labels) - sample(before, retries, **labels) >= attempts - 1


async def _dead(app: FastAPI, channel: UUID) -> bool:
    return await statuses(app, channel) == [("dead", 3)]


# ---- the owner's dead letters and retry --------------------------------------------------------


async def test_the_owner_lists_a_channels_dead_deliveries_newest_first_page_by_page(
    client: httpx.AsyncClient, app: FastAPI, receiver: Receiver, producer: Bus
) -> None:
    receiver.status = 500
    alice, bob = uuid4(), uuid4()
    channel = await add_channel(client, alice, f"{receiver.url}/dead")
    account = uuid4()
    first = await publish_fill(producer, alice, account)
    await eventually(lambda: _true(receiver.count("/dead") >= 1))
    second = await publish_fill(producer, alice, account)

    async def both_dead() -> bool:
        return await statuses(app, channel) == [("dead", 3), ("dead", 3)]

    await eventually(both_dead)
    path = f"/api/v1/notify/channels/{channel}/deliveries"
    page = await client.get(path, params={"status": "dead", "limit": 1}, headers=bearer(alice))
    assert page.status_code == 200, page.text
    body = page.json()
    assert [item["event_id"] for item in body["items"]] == [str(second)]  # newest first
    item = body["items"][0]
    assert (item["event_kind"], item["event_type"], item["status"]) == (
        "fill",
        "trademesh.order.filled",
        "dead",
    )
    assert (item["attempts"], item["last_error"]) == (3, "answered HTTP 500")
    assert "body" not in item
    rest = await client.get(
        path,
        params={"status": "dead", "limit": 1, "cursor": body["next_cursor"]},
        headers=bearer(alice),
    )
    assert [i["event_id"] for i in rest.json()["items"]] == [str(first)]
    assert rest.json()["next_cursor"] is None
    assert (await client.get(path, params={"status": "sent"}, headers=bearer(alice))).json()[
        "items"
    ] == []
    for who, where in ((bob, path), (alice, f"/api/v1/notify/channels/{uuid4()}/deliveries")):
        refused = await client.get(where, params={"status": "dead"}, headers=bearer(who))
        assert refused.status_code == 404
        assert refused.headers["content-type"] == "application/problem+json"
    bad = await client.get(path, params={"status": "lost"}, headers=bearer(alice))
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"


async def test_a_dead_delivery_retried_by_its_owner_is_sent_with_fresh_attempts(
    client: httpx.AsyncClient, app: FastAPI, receiver: Receiver, producer: Bus
) -> None:
    receiver.status = 500
    alice, bob = uuid4(), uuid4()
    channel = await add_channel(client, alice, f"{receiver.url}/retry")
    event = await publish_fill(producer, alice)
    await eventually(lambda: _dead(app, channel))
    retry = f"/api/v1/notify/channels/{channel}/deliveries/{event}/retry"
    assert (await client.post(retry, headers=bearer(bob))).status_code == 404
    assert (await client.post(retry, headers=bearer(alice, "viewer"))).status_code == 403
    unknown = f"/api/v1/notify/channels/{channel}/deliveries/{uuid4()}/retry"
    assert (await client.post(unknown, headers=bearer(alice))).status_code == 404
    receiver.status = 204
    retried = await client.post(retry, headers=bearer(alice))
    assert retried.status_code == 200, retried.text
    assert (retried.json()["status"], retried.json()["attempts"]) == ("pending", 0)

    async def sent() -> bool:
        return await statuses(app, channel) == [("sent", 1)]

    await eventually(sent, timeout=5)  # woken at the retry's commit (the poll is 30 s)
    again = await client.post(retry, headers=bearer(alice))
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert again.json()["delivery_status"] == "sent"


# ---- disable and enable ------------------------------------------------------------------------


async def test_a_disabled_channel_gets_nothing_new_and_its_pending_deliveries_wait_for_enable(
    client: httpx.AsyncClient, app: FastAPI, receiver: Receiver, producer: Bus
) -> None:
    deliveries = runtime_of(app).deliveries
    # The first attempt fails and the next is ~30 s away: a pending delivery to hold.
    deliveries.policy = RetryPolicy(max_attempts=8, base_s=30.0, cap_s=60.0)
    deliveries.jitter = lambda: 0.99
    receiver.status = 500
    alice, bob = uuid4(), uuid4()
    channel = await add_channel(client, alice, f"{receiver.url}/paused")
    other = await add_channel(client, alice, f"{receiver.url}/other")
    account = uuid4()
    await publish_fill(producer, alice, account)

    async def pending() -> bool:
        return await statuses(app, channel) == [("pending", 1)]

    await eventually(pending)
    path = f"/api/v1/notify/channels/{channel}"
    assert (await client.post(f"{path}/disable", headers=bearer(bob))).status_code == 404
    disabled = await client.post(f"{path}/disable", headers=bearer(alice))
    assert disabled.status_code == 200, disabled.text
    assert disabled.json()["disabled_at"] is not None
    assert await statuses(app, channel) == [("held", 1)]
    # A new fill reaches the enabled channel, and writes nothing for the disabled one.
    receiver.status = 204
    await publish_fill(producer, alice, account)
    await eventually(lambda: _true(receiver.count("/other") == 2))
    assert await statuses(app, channel) == [("held", 1)]
    assert receiver.count("/paused") == 1  # the first, failed, attempt only
    listed = await client.get("/api/v1/notify/channels", headers=bearer(alice))
    assert {c["id"]: c["disabled_at"] is not None for c in listed.json()} == {
        str(channel): True,
        str(other): False,
    }
    # A dead letter of a disabled channel is not tried again before it is enabled.
    assert (await client.post(f"{path}/enable", headers=bearer(bob))).status_code == 404
    enabled = await client.post(f"{path}/enable", headers=bearer(alice))
    assert enabled.status_code == 200, enabled.text
    assert enabled.json()["disabled_at"] is None

    async def sent() -> bool:
        return await statuses(app, channel) == [("sent", 2)]

    await eventually(sent, timeout=5)  # due at once, woken at the enable's commit
    assert receiver.count("/paused") == 2


async def test_retrying_a_dead_delivery_of_a_disabled_channel_is_a_409(
    client: httpx.AsyncClient, app: FastAPI, receiver: Receiver, producer: Bus
) -> None:
    receiver.status = 500
    alice = uuid4()
    channel = await add_channel(client, alice, f"{receiver.url}/off")
    event = await publish_fill(producer, alice)
    await eventually(lambda: _dead(app, channel))
    path = f"/api/v1/notify/channels/{channel}"
    assert (await client.post(f"{path}/disable", headers=bearer(alice))).status_code == 200
    refused = await client.post(f"{path}/deliveries/{event}/retry", headers=bearer(alice))
    assert refused.status_code == 409
    assert refused.json()["type"].endswith("/problems/channel-disabled")
    assert await statuses(app, channel) == [("dead", 3)]
