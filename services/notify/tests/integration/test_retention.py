"""Notify's retention on the real Postgres: sent deliveries go a week after they were sent, dead
ones 30 days after their last attempt, notices of accounts whose owner never became known a week
after they were held; pending and held deliveries stay, however old."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import httpx
import pytest
from fastapi import FastAPI
from trademesh_db import Database
from trademesh_observability.metrics import REGISTRY
from trademesh_testing.http import Receiver, app_client
from trademesh_testing.tokens import bearer
from trademesh_testing.waiting import eventually

from trademesh_notify.api.deps import Runtime
from trademesh_notify.app import create_app
from trademesh_notify.config import Settings
from trademesh_notify.usecases.retention import DeliveryRetention, Pruned

pytestmark = pytest.mark.integration

DAY = timedelta(days=1)
RETENTIONS = (
    "sent_delivery_retention_h",
    "dead_delivery_retention_h",
    "unowned_notice_retention_h",
)


def defaults(settings: Settings) -> Settings:
    """These settings with the retentions a deployment gets when it sets none."""
    return settings.model_copy(update={f: Settings.model_fields[f].default for f in RETENTIONS})


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The running app keeps everything (a century): only the test's own pruning deletes."""
    return settings.model_copy(update=dict.fromkeys(RETENTIONS, 876_000.0))


async def add_channel(client: httpx.AsyncClient, receiver: Receiver, user: UUID) -> UUID:
    made = await client.post(
        "/api/v1/notify/channels",
        json={"url": f"{receiver.url}/kept", "events": ["fill"]},
        headers=bearer(user),
    )
    assert made.status_code == 201, made.text
    return UUID(made.json()["id"])


def database(app: FastAPI) -> Database:
    runtime = app.state.runtime
    assert isinstance(runtime, Runtime)
    return runtime.deliveries.store.db


async def add_delivery(
    db: Database,
    channel: UUID,
    user: UUID,
    status: str,
    created: datetime,
    next_attempt: datetime,
    sent: datetime | None,
) -> UUID:
    event_id = uuid4()
    await db.pool.execute(
        "INSERT INTO deliveries (event_id, channel_id, owner_id, event_kind, event_type, "
        "body, status, next_attempt_at, created_at, sent_at, event_time) "
        "VALUES ($1, $2, $3, 'fill', 'trademesh.order.filled', '{}', $4, $5, $6, $7, $6)",
        event_id,
        channel,
        user,
        status,
        next_attempt,
        created,
        sent,
    )
    return event_id


async def test_what_is_past_its_retention_goes_and_nothing_still_to_send_does(
    client: httpx.AsyncClient, app: FastAPI, receiver: Receiver, settings: Settings
) -> None:
    db = database(app)
    user = uuid4()
    channel = await add_channel(client, receiver, user)
    now = datetime.now(UTC)
    # (status, created, next attempt, sent): the name says whether the retention keeps it.
    rows = {
        "sent 8 days ago": ("sent", now - 9 * DAY, now - 8 * DAY, now - 8 * DAY),
        "sent 6 days ago, kept": ("sent", now - 9 * DAY, now - 6 * DAY, now - 6 * DAY),
        "dead 31 days ago": ("dead", now - 32 * DAY, now - 31 * DAY, None),
        "dead 29 days ago, kept": ("dead", now - 40 * DAY, now - 29 * DAY, None),
        "pending for 60 days, kept": ("pending", now - 60 * DAY, now - 60 * DAY, None),
        "held for 60 days, kept": ("held", now - 60 * DAY, now - 60 * DAY, None),
    }
    ids = {name: await add_delivery(db, channel, user, *row) for name, row in rows.items()}
    unowned = {"held 8 days ago": now - 8 * DAY, "held 6 days ago, kept": now - 6 * DAY}
    unowned_ids = {name: uuid4() for name in unowned}
    for name, held_at in unowned.items():
        await db.pool.execute(
            "INSERT INTO unowned_notices (event_id, account_id, event_kind, event_type, body, "
            "event_time, held_at) VALUES ($1, $2, 'reducing', 'trademesh.order.trading_state', "
            "'{}', $3, $3)",
            unowned_ids[name],
            uuid4(),
            held_at,
        )

    dropped = {"service": settings.service_name, "outcome": "dropped"}
    before = REGISTRY.get_sample_value("trademesh_notify_unowned_total", dropped) or 0.0
    retention = DeliveryRetention.from_settings(db, defaults(settings))
    assert await retention.prune_once() == Pruned(sent=1, dead=1, unowned=1)
    after = REGISTRY.get_sample_value("trademesh_notify_unowned_total", dropped)
    assert after == before + 1  # an event nobody will be told of is counted, not only logged
    left = {r["event_id"] for r in await db.pool.fetch("SELECT event_id FROM deliveries")}
    assert left == {ids[name] for name in rows if name.endswith("kept")}
    held = {r["event_id"] for r in await db.pool.fetch("SELECT event_id FROM unowned_notices")}
    assert held == {unowned_ids["held 6 days ago, kept"]}
    assert await retention.prune_once() == Pruned(sent=0, dead=0, unowned=0)


async def test_the_service_prunes_when_it_starts(
    client: httpx.AsyncClient, app: FastAPI, receiver: Receiver, settings: Settings
) -> None:
    db = database(app)
    user = uuid4()
    channel = await add_channel(client, receiver, user)
    now = datetime.now(UTC)
    eight_days_ago = now - 8 * DAY
    old = await add_delivery(
        db, channel, user, "sent", now - 9 * DAY, eight_days_ago, eight_days_ago
    )

    async def gone() -> bool:
        return not await db.pool.fetchval("SELECT 1 FROM deliveries WHERE event_id = $1", old)

    assert not await gone()
    # Another replica starts with the default retentions: its first prune takes the old row.
    group = f"{settings.consumer_group}-replica"
    replica = create_app(defaults(settings).model_copy(update={"consumer_group": group}))
    async with app_client(replica):
        await eventually(gone, timeout=20)
