"""Every event kind on the real broker and the real Postgres: each reaches a webhook of its owner
subscribed to it, on a real loopback receiver, and no other user's channel nor a channel of its
owner not subscribed to it; the account events (trading state) reach the account's owner learnt
from AccountChanged, whichever came first."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from fastapi import FastAPI
from trademesh_bus import Bus
from trademesh_events import bots, orders, risk
from trademesh_events.base import Event
from trademesh_events.envelope import new_envelope
from trademesh_events.topics import (
    BOTS_EVENTS_TOPIC,
    ORDERS_DISCREPANCIES_TOPIC,
    ORDERS_EVENTS_TOPIC,
    RISK_EVENTS_TOPIC,
    TopicSpec,
)
from trademesh_http.approval_links import verify
from trademesh_observability.metrics import REGISTRY
from trademesh_testing.http import Receiver
from trademesh_testing.samples import account_changed, build_sample
from trademesh_testing.tokens import bearer
from trademesh_testing.waiting import eventually

from trademesh_notify.api.deps import Runtime
from trademesh_notify.config import Settings
from trademesh_notify.engine import EventKind
from trademesh_notify.webhook.signing import DELIVERY_HEADER

pytestmark = pytest.mark.integration

ALL_KINDS = [kind.value for kind in EventKind]
A, H, R = risk.TradingState.ACTIVE, risk.TradingState.HALTED, risk.TradingState.REDUCING
Why = risk.TradingStateReason


def bodies(receiver: Receiver, path: str) -> list[dict[str, Any]]:
    """What a path of the receiver got: each body, with its delivery id."""
    return [
        r.json() | {"delivery_id": r.headers[DELIVERY_HEADER.lower()]}
        for r in receiver.got.get(path, [])
    ]


async def add_channel(client: httpx.AsyncClient, user: UUID, url: str, events: list[str]) -> UUID:
    made = await client.post(
        "/api/v1/notify/channels", json={"url": url, "events": events}, headers=bearer(user)
    )
    assert made.status_code == 201, made.text
    return UUID(made.json()["id"])


def runtime_of(app: FastAPI) -> Runtime:
    runtime = app.state.runtime
    assert isinstance(runtime, Runtime)
    return runtime


async def deliveries_to(app: FastAPI, channel: UUID) -> list[UUID]:
    rows = await runtime_of(app).deliveries.store.of_channel(channel)
    return [row["event_id"] for row in rows]


async def arrived(receiver: Receiver, path: str, count: int = 1) -> list[dict[str, Any]]:
    async def enough() -> list[dict[str, Any]] | None:
        got = bodies(receiver, path)
        return got if len(got) >= count else None

    found: list[dict[str, Any]] = await eventually(enough)
    return found


@dataclass(frozen=True)
class Channels:
    """A user's channel subscribed to one kind, the same user's to every other kind, and another
    user's to every kind."""

    owner: UUID
    other: UUID
    subscribed: UUID
    unsubscribed: UUID
    others: UUID


async def channels_for(client: httpx.AsyncClient, receiver: Receiver, kind: str) -> Channels:
    owner, other = uuid4(), uuid4()
    rest = [k for k in ALL_KINDS if k != kind]
    return Channels(
        owner,
        other,
        await add_channel(client, owner, f"{receiver.url}/subscribed", [kind]),
        await add_channel(client, owner, f"{receiver.url}/unsubscribed", rest),
        await add_channel(client, other, f"{receiver.url}/others", ALL_KINDS),
    )


async def only_the_subscribed_channel_got(
    app: FastAPI, receiver: Receiver, channels: Channels, event_id: UUID, kind: str
) -> None:
    got = await arrived(receiver, "/subscribed")
    assert [(g["id"], g["kind"]) for g in got] == [(str(event_id), kind)]
    # The deliveries of one event are written in one transaction: once one was sent, every
    # delivery the event will ever have exists.
    assert await deliveries_to(app, channels.subscribed) == [event_id]
    assert await deliveries_to(app, channels.unsubscribed) == []
    assert await deliveries_to(app, channels.others) == []
    assert bodies(receiver, "/unsubscribed") == []
    assert bodies(receiver, "/others") == []


# ---- events that name their user ---------------------------------------------------------------


def _rejected(user: UUID) -> Event:
    return build_sample(
        orders.OrderRejected, user_id=user, account_id=uuid4(), reason="insufficient balance"
    )


def _bot(state: bots.BotState, reason: str | None) -> Callable[[UUID], Event]:
    def made(user: UUID) -> Event:
        return build_sample(
            bots.BotStateChanged, user_id=user, bot_id=uuid4(), state=state, reason=reason
        )

    return made


def _discrepancy(user: UUID) -> Event:
    return build_sample(orders.DiscrepancyDetected, user_id=user, account_id=uuid4())


@pytest.mark.parametrize(
    ("kind", "topic", "make", "field_"),
    [
        ("rejection", ORDERS_EVENTS_TOPIC, _rejected, ("reason", "insufficient balance")),
        ("bot_state", BOTS_EVENTS_TOPIC, _bot(bots.BotState.PAUSED, None), ("state", "PAUSED")),
        ("bot_error", BOTS_EVENTS_TOPIC, _bot(bots.BotState.ERROR, "strategy raised"),
         ("reason", "strategy raised")),
        ("discrepancy", ORDERS_DISCREPANCIES_TOPIC, _discrepancy, ("kind", "MISSING_FILL")),
    ],
)  # fmt: skip
async def test_an_event_reaches_its_owners_channel_subscribed_to_its_kind_only(
    client: httpx.AsyncClient,
    app: FastAPI,
    receiver: Receiver,
    producer: Bus,
    kind: str,
    topic: TopicSpec[Event],
    make: Callable[[UUID], Event],
    field_: tuple[str, str],
) -> None:
    channels = await channels_for(client, receiver, kind)
    envelope = await producer.publish(make(channels.owner), topic=topic)
    await only_the_subscribed_channel_got(app, receiver, channels, envelope.id, kind)
    data = bodies(receiver, "/subscribed")[0]["data"]
    assert data["user_id"] == str(channels.owner)
    assert data[field_[0]] == field_[1]


async def test_a_bot_state_channel_gets_no_bot_error_and_an_error_channel_no_state(
    client: httpx.AsyncClient, app: FastAPI, receiver: Receiver, producer: Bus
) -> None:
    user = uuid4()
    states = await add_channel(client, user, f"{receiver.url}/states", ["bot_state"])
    errors = await add_channel(client, user, f"{receiver.url}/errors", ["bot_error"])
    bot = uuid4()
    events = [
        build_sample(bots.BotStateChanged, user_id=user, bot_id=bot, state=state)
        for state in (bots.BotState.RUNNING, bots.BotState.ERROR, bots.BotState.STOPPED)
    ]
    sent = [await producer.publish(e, topic=BOTS_EVENTS_TOPIC) for e in events]
    got_states = await arrived(receiver, "/states", 2)
    got_errors = await arrived(receiver, "/errors", 1)
    assert [g["data"]["state"] for g in got_states] == ["RUNNING", "STOPPED"]  # one bot: in order
    assert [g["id"] for g in got_errors] == [str(sent[1].id)]
    assert await deliveries_to(app, errors) == [sent[1].id]
    assert sorted(await deliveries_to(app, states)) == sorted([sent[0].id, sent[2].id])


# ---- events that name only an account ----------------------------------------------------------


def _state(
    account: UUID | None, old: risk.TradingState, new: risk.TradingState, reason: Why
) -> risk.TradingStateChanged:
    event = build_sample(
        risk.TradingStateChanged,
        account_id=account,
        old_state=old,
        new_state=new,
        reason=reason,
        changed_by=None,
    )
    assert isinstance(event, risk.TradingStateChanged)
    return event


@pytest.mark.parametrize(
    ("kind", "old", "new", "reason"),
    [
        ("kill_switch", A, H, Why.KILL_SWITCH_ENGAGED),
        ("reducing", A, R, Why.DAILY_LOSS_LIMIT),
    ],
)
async def test_a_trading_state_change_reaches_the_accounts_owner_after_its_account_changed(
    client: httpx.AsyncClient,
    app: FastAPI,
    receiver: Receiver,
    producer: Bus,
    kind: str,
    old: risk.TradingState,
    new: risk.TradingState,
    reason: Why,
) -> None:
    channels = await channels_for(client, receiver, kind)
    account = uuid4()
    await producer.publish(account_changed(account, channels.owner, "1000"))
    store = runtime_of(app).deliveries.store

    async def owner_learnt() -> bool:
        async with store.db.pool.acquire() as conn:
            return await store.owner_of(conn, account) == channels.owner

    await eventually(owner_learnt)
    envelope = await producer.publish(_state(account, old, new, reason), topic=RISK_EVENTS_TOPIC)
    await only_the_subscribed_channel_got(app, receiver, channels, envelope.id, kind)
    assert bodies(receiver, "/subscribed")[0]["data"]["account_id"] == str(account)


async def test_a_trading_state_change_before_its_accounts_owner_is_known_waits_for_it(
    client: httpx.AsyncClient, app: FastAPI, receiver: Receiver, producer: Bus
) -> None:
    channels = await channels_for(client, receiver, "kill_switch")
    account = uuid4()
    envelope = await producer.publish(
        _state(account, A, H, Why.KILL_SWITCH_ENGAGED), topic=RISK_EVENTS_TOPIC
    )
    db = runtime_of(app).deliveries.store.db

    async def held() -> bool:
        found = await db.pool.fetchval(
            "SELECT count(*) FROM unowned_notices WHERE event_id = $1", envelope.id
        )
        return bool(found == 1)

    await eventually(held)  # handled, and sent to no one
    for channel in (channels.subscribed, channels.unsubscribed, channels.others):
        assert await deliveries_to(app, channel) == []
    await producer.publish(account_changed(account, channels.owner, "1000"))
    await only_the_subscribed_channel_got(app, receiver, channels, envelope.id, "kill_switch")
    assert not await held()  # taken out of the hold


async def test_an_accounts_owner_is_the_first_learnt_and_never_another_user(
    client: httpx.AsyncClient,
    app: FastAPI,
    receiver: Receiver,
    producer: Bus,
    settings: Settings,
) -> None:
    channels = await channels_for(client, receiver, "reducing")
    account = uuid4()
    conflicts = {"service": settings.service_name, "outcome": "conflict"}
    before = REGISTRY.get_sample_value("trademesh_notify_unowned_total", conflicts) or 0.0
    await producer.publish(account_changed(account, channels.owner, "1000"))
    # An AccountChanged for the same account naming another user changes nothing.
    await producer.publish(account_changed(account, channels.other, "5"))

    async def refused() -> bool:
        seen = REGISTRY.get_sample_value("trademesh_notify_unowned_total", conflicts) or 0.0
        return seen > before

    await eventually(refused)
    envelope = await producer.publish(
        _state(account, A, R, Why.DAILY_LOSS_LIMIT), topic=RISK_EVENTS_TOPIC
    )
    await only_the_subscribed_channel_got(app, receiver, channels, envelope.id, "reducing")


async def test_the_global_kill_switch_reaches_every_users_kill_switch_channel_only(
    client: httpx.AsyncClient, app: FastAPI, receiver: Receiver, producer: Bus
) -> None:
    alice, bob = uuid4(), uuid4()
    alices = await add_channel(client, alice, f"{receiver.url}/alice", ["kill_switch"])
    bobs = await add_channel(client, bob, f"{receiver.url}/bob", ["fill", "kill_switch"])
    reducing = await add_channel(client, bob, f"{receiver.url}/reducing", ["reducing"])
    engaged = _state(None, A, H, Why.GLOBAL_KILL_SWITCH_ENGAGED)
    envelope = await producer.publish(engaged, topic=RISK_EVENTS_TOPIC)
    for path in ("/alice", "/bob"):
        got = await arrived(receiver, path)
        assert [(g["id"], g["kind"]) for g in got] == [(str(envelope.id), "kill_switch")]
        assert got[0]["data"]["account_id"] is None
    assert await deliveries_to(app, alices) == [envelope.id]
    assert await deliveries_to(app, bobs) == [envelope.id]
    assert await deliveries_to(app, reducing) == []


async def test_an_event_older_than_a_channel_is_not_sent_to_it(
    client: httpx.AsyncClient, app: FastAPI, receiver: Receiver, producer: Bus
) -> None:
    # What a new consumer group reading the topics' history meets: events from before the
    # channel existed, which its owner never subscribed to.
    user = uuid4()
    channel = await add_channel(client, user, f"{receiver.url}/now", ["rejection"])
    old = _rejected(user)
    old_envelope = new_envelope(old, "execution", time=datetime.now(UTC) - timedelta(hours=1))
    await producer.publish_raw(
        ORDERS_EVENTS_TOPIC.name,
        ORDERS_EVENTS_TOPIC.encode(old),
        ORDERS_EVENTS_TOPIC.key_of(old),
        old_envelope.to_headers(),
    )
    # A later event on the same partition (same account): once it arrived, the old one was
    # handled before it.
    new = _rejected(user).model_copy(update={"account_id": old.account_id})  # type: ignore[attr-defined]
    envelope = await producer.publish(new, topic=ORDERS_EVENTS_TOPIC)
    got = await arrived(receiver, "/now")
    assert [g["id"] for g in got] == [str(envelope.id)]
    assert await deliveries_to(app, channel) == [envelope.id]


# ---- pending approvals, with their signed links ------------------------------------------------


async def test_a_pending_approval_reaches_its_owner_with_links_that_are_not_kept(
    client: httpx.AsyncClient, app: FastAPI, receiver: Receiver, producer: Bus
) -> None:
    settings = runtime_of(app).settings
    key, public_url = settings.approval_link_key, settings.public_url
    assert key is not None and public_url is not None  # the tests' settings make links
    channels = await channels_for(client, receiver, "approval")
    asked = build_sample(bots.ApprovalRequested, user_id=channels.owner)
    assert isinstance(asked, bots.ApprovalRequested)
    envelope = await producer.publish(asked, topic=BOTS_EVENTS_TOPIC)
    await only_the_subscribed_channel_got(app, receiver, channels, envelope.id, "approval")
    links = bodies(receiver, "/subscribed")[0]["links"]
    for decision in ("approve", "reject"):
        link = httpx.URL(links[decision])
        assert str(link.copy_with(query=None)) == (
            f"{public_url}/api/v1/approvals/{asked.approval_id}/{decision}"
        )
        assert verify(key, asked.approval_id, decision, link.params["sig"])
    # Made when sent, never stored: the deliveries table holds the body without them.
    store = runtime_of(app).deliveries.store
    kept = await store.db.pool.fetchval(
        "SELECT body FROM deliveries WHERE channel_id = $1", channels.subscribed
    )
    assert "links" not in json.loads(kept)
    assert links["approve"].split("sig=")[1] not in bytes(kept).decode()
