{%- set consumes = cookiecutter.consumes.split(',')|map('trim')|select|list -%}
{%- set produces = cookiecutter.produces.split(',')|map('trim')|select|list -%}
"""The {{ cookiecutter.slug }} service on the real broker{% if cookiecutter.owns_schema %} and the real Postgres{% endif %}: events in and out, /ready, /metrics, the API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import httpx
import pytest
from fastapi import FastAPI
{%- if consumes %}
from trademesh_bus import Bus
{%- endif %}
{%- if consumes or produces %}
from trademesh_events.topics import get_topic
{%- endif %}
from trademesh_service import service_manifest
from trademesh_testing.contract import ServiceContract
{%- if consumes or produces %}
from trademesh_testing.samples import read_all, sample_for_topic, unique_key
{%- endif %}
{%- if consumes or produces %}
from trademesh_testing.waiting import eventually
{%- endif %}

from {{ cookiecutter.package }}.api.deps import Runtime
from {{ cookiecutter.package }}.app import create_app
from {{ cookiecutter.package }}.config import Settings
from {{ cookiecutter.package }}.engine import Observation

pytestmark = pytest.mark.integration
MANIFEST = service_manifest("{{ cookiecutter.package }}")


class TestService(ServiceContract):
    """/health, /ready, /metrics and the about route (trademesh_testing.contract)."""
{%- if not cookiecutter.owns_schema %}

    readiness = ("kafka",)
{%- endif %}

    @pytest.fixture
    def private_app(self, private_infra: Any) -> FastAPI:
        return create_app(private_infra.settings(Settings, ready_timeout_s=1.0))


async def test_unknown_key_is_a_404_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/activity/nobody:NOTHING")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["title"] == "Unknown key"


async def test_activity_pages_in_key_order(client: httpx.AsyncClient, app: FastAPI) -> None:
    runtime = app.state.runtime
    assert isinstance(runtime, Runtime)
    prefix = f"page-{uuid4().hex[:8]}"
    at = datetime(2026, 1, 1, tzinfo=UTC)
    for n in range(3):
        seen = Observation(f"{prefix}:{n}", "in", "md.ticks.v1", uuid4(), "t", at)
        await runtime.store.apply(seen)
    keys: list[str] = []
    cursor: str | None = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/v1/activity", params=params)).json()
        keys += [item["key"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    mine = [key for key in keys if key.startswith(prefix)]
    assert mine == [f"{prefix}:0", f"{prefix}:1", f"{prefix}:2"]
    assert keys == sorted(keys)
    bad = await client.get("/api/v1/activity", params={"cursor": "forged"})
    assert bad.status_code == 400
{%- if consumes %}


async def activity_of(client: httpx.AsyncClient, key: str, direction: str) -> dict[str, Any] | None:
    response = await client.get(f"/api/v1/activity/{key}")
    if response.status_code != 200:
        return None
    return next((row for row in response.json() if row["direction"] == direction), None)


@pytest.mark.parametrize("topic", MANIFEST.consumes)
async def test_an_event_on_an_input_topic_changes_state(
    topic: str, client: httpx.AsyncClient, producer: Bus
) -> None:
    key = unique_key(topic)
    envelope = await producer.publish(sample_for_topic(topic, key), topic=get_topic(topic))

    async def applied() -> dict[str, Any] | None:
        row = await activity_of(client, key, "in")
        return row if row and row["last_event_id"] == str(envelope.id) else None

    row = await eventually(applied)
    assert (row["events"], row["last_topic"], row["last_event_type"]) == (1, topic, envelope.type)


async def test_a_malformed_event_goes_to_the_dlq_and_consumption_goes_on(
    client: httpx.AsyncClient, producer: Bus, settings: Settings
) -> None:
    spec = get_topic(MANIFEST.consumes[0])
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

    async def applied() -> dict[str, Any] | None:
        row = await activity_of(client, key, "in")
        return row if row and row["last_event_id"] == str(envelope.id) else None

    assert (await eventually(applied))["events"] == 1  # the malformed one changed nothing
    dead = await read_all(settings.kafka_bootstrap, spec.dlq, expect=1)
    mine = [r for r in dead if dict(r.headers).get("ce_id") == headers["ce_id"].encode()]
    assert len(mine) == 1
    assert dict(mine[0].headers)["dlq_reason"] == b"schema_validation"
{%- if cookiecutter.owns_schema %}


async def test_a_redelivered_event_is_applied_once(
    client: httpx.AsyncClient, producer: Bus
) -> None:
    spec = get_topic(MANIFEST.consumes[0])
    key = unique_key(spec.name)
    first = sample_for_topic(spec.name, key)
    envelope = await producer.publish(first, topic=spec)
    # The same event again, as a broker redelivers it: same envelope id, same bytes.
    await producer.publish_raw(
        spec.name, spec.encode(first), spec.key_of(first), envelope.to_headers()
    )
    # A later event of the same key, so on the same partition behind the duplicate: once it is
    # applied, the duplicate has been handled too.
    marker = await producer.publish(sample_for_topic(spec.name, key), topic=spec)

    async def marker_applied() -> dict[str, Any] | None:
        row = await activity_of(client, key, "in")
        return row if row and row["last_event_id"] == str(marker.id) else None

    assert (await eventually(marker_applied))["events"] == 2
{%- endif %}
{%- endif %}
{%- if produces %}


@pytest.mark.parametrize("topic", MANIFEST.produces)
async def test_a_published_event_reaches_its_topic(
    topic: str, client: httpx.AsyncClient, settings: Settings
) -> None:
    key = unique_key(topic)
    event = sample_for_topic(topic, key)
    response = await client.post(
        "/api/v1/events",
        content=event.model_dump_json(),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 202, response.text
    event_id = response.json()["event_id"]

    async def on_the_bus() -> list[Any]:
        records = await read_all(settings.kafka_bootstrap, topic, expect=1, timeout=2.0)
        return [r for r in records if dict(r.headers).get("ce_id") == event_id.encode()]

    record = (await eventually(on_the_bus))[0]
    assert record.key == key.encode()
    assert get_topic(topic).decode(record.value) == event
    out = (await client.get(f"/api/v1/activity/{key}")).json()
    assert [(row["direction"], row["events"]) for row in out] == [("out", 1)]


async def test_an_invalid_event_is_refused_with_a_problem(client: httpx.AsyncClient) -> None:
    wrong_type = await client.post("/api/v1/events", json={"type": "trademesh.nothing"})
    assert wrong_type.status_code == 422
    assert wrong_type.headers["content-type"] == "application/problem+json"
    spec = get_topic(MANIFEST.produces[0])
    document = sample_for_topic(spec.name).model_dump(mode="json")
    del document[spec.key_field]
    invalid = await client.post("/api/v1/events", json=document)
    assert invalid.status_code == 422
    assert invalid.json()["errors"][0]["loc"][-1] == spec.key_field
{%- endif %}
