"""The audit service on the real broker and the real Postgres: events in, /ready, /metrics, the DLQ."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from fastapi import FastAPI
from trademesh_bus import Bus
from trademesh_events.topics import get_topic
from trademesh_testing.contract import ServiceContract
from trademesh_testing.samples import read_all, sample_for_topic, unique_key
from trademesh_testing.waiting import eventually

from trademesh_audit.api.deps import Runtime
from trademesh_audit.app import create_app
from trademesh_audit.config import Settings
from trademesh_audit.engine import LOGGED

pytestmark = pytest.mark.integration


class TestService(ServiceContract):
    """/health, /ready, /metrics and the about route (trademesh_testing.contract)."""

    @pytest.fixture
    def private_app(self, private_infra: Any, keystore: dict[str, Any]) -> FastAPI:
        return create_app(private_infra.settings(Settings, ready_timeout_s=1.0, **keystore))


async def rows_of(app: FastAPI, event_id: UUID) -> list[dict[str, Any]]:
    """The log's rows of one event, read through the service's own pool."""
    runtime = app.state.runtime
    assert isinstance(runtime, Runtime) and runtime.db is not None
    records = await runtime.db.pool.fetch(
        "SELECT seq, topic, action, actor_kind, actor FROM audit_log WHERE event_id = $1", event_id
    )
    return [dict(record) for record in records]


@pytest.mark.parametrize("topic", LOGGED)
async def test_an_event_on_a_logged_topic_is_logged(
    topic: str, client: httpx.AsyncClient, app: FastAPI, producer: Bus
) -> None:
    event = sample_for_topic(topic, unique_key(topic))
    envelope = await producer.publish(event, topic=get_topic(topic))
    rows = await eventually(lambda: rows_of(app, envelope.id))
    assert len(rows) == 1
    assert (rows[0]["topic"], rows[0]["action"]) == (topic, envelope.type)


async def test_a_malformed_event_goes_to_the_dlq_and_consumption_goes_on(
    client: httpx.AsyncClient, app: FastAPI, producer: Bus, settings: Settings
) -> None:
    spec = get_topic(LOGGED[0])
    key = unique_key(spec.name)
    good = sample_for_topic(spec.name, key)
    headers = {
        "ce_specversion": "1.0",
        "ce_id": str(uuid4()),
        "ce_source": "test",
        "ce_type": good.type,
        "ce_time": datetime.now(UTC).isoformat(),
    }
    malformed = b'{"type": "' + good.type.encode() + b'"}'  # the right type, no fields
    await producer.publish_raw(spec.name, malformed, key.encode(), headers)
    envelope = await producer.publish(good, topic=spec)

    # The good event behind it, on the same partition, is logged: the consumer went on.
    assert len(await eventually(lambda: rows_of(app, envelope.id))) == 1
    assert await rows_of(app, UUID(headers["ce_id"])) == []  # the malformed one wrote nothing
    dead = await read_all(settings.kafka_bootstrap, spec.dlq, expect=1)
    mine = [r for r in dead if dict(r.headers).get("ce_id") == headers["ce_id"].encode()]
    assert len(mine) == 1
    assert dict(mine[0].headers)["dlq_reason"] == b"schema_validation"


async def test_a_redelivered_event_adds_no_row(
    client: httpx.AsyncClient, app: FastAPI, producer: Bus
) -> None:
    spec = get_topic(LOGGED[0])
    key = unique_key(spec.name)
    first = sample_for_topic(spec.name, key)
    envelope = await producer.publish(first, topic=spec)
    # The same event again, as a broker redelivers it: same envelope id, same bytes.
    await producer.publish_raw(
        spec.name, spec.encode(first), spec.key_of(first), envelope.to_headers()
    )
    # A later event of the same key, so on the same partition behind the duplicate: once it is
    # logged, the duplicate has been handled too.
    marker = await producer.publish(sample_for_topic(spec.name, key), topic=spec)
    await eventually(lambda: rows_of(app, marker.id))
    assert len(await rows_of(app, envelope.id)) == 1
