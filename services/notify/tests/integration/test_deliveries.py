"""The delivery loop on the real broker and Postgres: woken by the commit (LISTEN/NOTIFY), not a
poll; per-channel rate limits; the delivery metrics. Deliveries go to a real loopback receiver."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
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
from trademesh_notify.webhook.signing import DELIVERY_HEADER

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The notify tests' settings with a 30 s safety-net poll: a delivery that arrives in a
    second or two was woken by its commit, not found by the poll."""
    return settings.model_copy(update={"delivery_poll_interval_s": 30.0})


@dataclass
class Receiver:
    """A loopback HTTP server that keeps what each path receives, and when; `status` answers."""

    url: str = ""
    got: dict[str, list[tuple[float, dict[str, str]]]] = field(default_factory=dict)
    status: int = 204

    async def handle(self, request: Request) -> Response:
        await request.body()
        self.got.setdefault(request.url.path, []).append((time.monotonic(), dict(request.headers)))
        return Response(status_code=self.status)

    def count(self, path: str) -> int:
        return len(self.got.get(path, []))


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    kept = Receiver()
    app = Starlette(routes=[Route("/{path:path}", kept.handle, methods=["POST"])])
    async with served(app) as url:
        kept.url = url
        yield kept


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
    assert receiver.got["/woken"][0][0] - published < 5


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
    assert sorted(h[DELIVERY_HEADER.lower()] for _, h in got) == sorted(
        f"{event}:{channel}" for event in ids
    )
    assert got[-1][0] - got[0][0] > 1.0  # 3 a second: not all in the first window
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
