"""The domain logic alone: no broker, no database, no clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from trademesh_events.envelope import new_envelope
from trademesh_events.topics import get_topic
from trademesh_testing.samples import sample_for_topic

from trademesh_notify.engine import (
    Observation,
    observe,
    record,
)

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)


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
