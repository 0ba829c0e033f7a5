{%- set produces = cookiecutter.produces.split(',')|map('trim')|select|list -%}
"""The domain logic alone: no broker, no database, no clock."""

from __future__ import annotations

{% if produces -%}
import json
{% endif -%}
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
{%- if produces %}
from pydantic import ValidationError
{%- endif %}
from trademesh_events.envelope import new_envelope
from trademesh_events.topics import get_topic
{%- if produces %}
from trademesh_service import service_manifest
{%- endif %}
from trademesh_testing.samples import sample_for_topic

from {{ cookiecutter.package }}.engine import (
    Observation,
{%- if produces %}
    RejectedEvent,
{%- endif %}
    observe,
{%- if produces %}
    publishable,
{%- endif %}
    record,
)

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
{%- if produces %}
PRODUCES = service_manifest("{{ cookiecutter.package }}").produces
{%- endif %}


def _seen(at: datetime = T0, key: str = "binance:BTC/USDT") -> Observation:
    return Observation(
        key=key, direction="in", topic="md.ticks.v1", event_id=uuid4(), event_type="t", at=at
    )


def test_first_observation_starts_the_count() -> None:
    seen = _seen()
    activity = record(None, seen)
    assert (activity.events, activity.last_event_id, activity.first_at, activity.last_at) == (
        1,
        seen.event_id,
        T0,
        T0,
    )


def test_later_observation_counts_and_becomes_the_last() -> None:
    first, later = _seen(), _seen(T0 + timedelta(seconds=1))
    activity = record(record(None, first), later)
    assert activity.events == 2
    assert activity.last_event_id == later.event_id
    assert (activity.first_at, activity.last_at) == (T0, later.at)


def test_late_observation_counts_but_does_not_become_the_last() -> None:
    current, late = _seen(T0 + timedelta(seconds=5)), _seen(T0)
    activity = record(record(None, current), late)
    assert activity.events == 2
    assert activity.last_event_id == current.event_id
    assert (activity.first_at, activity.last_at) == (T0, current.at)


def test_observation_of_another_key_is_refused() -> None:
    activity = record(None, _seen())
    with pytest.raises(ValueError, match="applied to"):
        record(activity, _seen(key="binance:ETH/USDT"))
    with pytest.raises(ValueError, match="applied to"):
        record(activity, replace(_seen(), direction="out"))


def test_observe_keys_by_the_topics_rule_and_times_by_the_envelope() -> None:
    spec = get_topic("orders.events.v1")
    event = sample_for_topic(spec.name)
    envelope = new_envelope(event, "test", time=T0)
    seen = observe(spec, event, envelope, "in")
    assert seen.key == spec.key_of(event).decode()
    assert (seen.event_id, seen.event_type, seen.at, seen.topic) == (
        envelope.id,
        event.type,
        T0,
        spec.name,
    )
{%- if produces %}


@pytest.mark.parametrize("topic", PRODUCES)
def test_an_event_of_a_produced_topic_is_publishable(topic: str) -> None:
    event = sample_for_topic(topic)
    spec, decoded = publishable(event.model_dump_json().encode(), PRODUCES)
    assert spec.name == topic
    assert decoded == event


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"type": "trademesh.nothing"}', "type must be one of"),
        (b"{}", "type must be one of"),
    ],
)
def test_other_bodies_are_rejected(body: bytes, reason: str) -> None:
    with pytest.raises(RejectedEvent, match=reason):
        publishable(body, PRODUCES)


def test_an_invalid_event_of_a_produced_type_fails_validation() -> None:
    spec = get_topic(PRODUCES[0])
    document = json.loads(sample_for_topic(spec.name).model_dump_json())
    del document[spec.key_field]
    with pytest.raises(ValidationError):
        publishable(json.dumps(document).encode(), PRODUCES)
{%- endif %}
