"""Every event of the topic registry encodes and decodes through its topic back to an equal object."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from pydantic import ValidationError
from trademesh_events import TOPICS, TopicSpec, get_topic, orders, topic_for
from trademesh_events.base import Event
from trademesh_events.topics import ORDERS_APPROVED

pytestmark = pytest.mark.unit

TOPIC_EVENTS = [(spec, cls) for spec in TOPICS for cls in spec.events]


def _id(value: object) -> str:
    return value.name if isinstance(value, TopicSpec) else getattr(value, "__name__", str(value))


def test_every_registry_event_type_has_a_sample(sampled_types: frozenset[type[Event]]) -> None:
    registry = {cls for spec in TOPICS for cls in spec.events}
    assert {cls.event_type() for cls in sampled_types} == {cls.event_type() for cls in registry}
    assert set(sampled_types) == registry


@pytest.mark.parametrize(("spec", "cls"), TOPIC_EVENTS, ids=_id)
def test_round_trip_through_topic(
    spec: TopicSpec, cls: type[Event], make_sample: Callable[..., Event]
) -> None:
    event = make_sample(cls)
    data = spec.encode(event)
    assert isinstance(data, bytes)
    decoded = spec.decode(data)
    assert type(decoded) is cls
    assert decoded == event
    # and the decoded event encodes to the very same bytes
    assert spec.encode(decoded) == data


@pytest.mark.parametrize(("spec", "cls"), TOPIC_EVENTS, ids=_id)
def test_encoded_json_carries_type_and_is_compact(
    spec: TopicSpec, cls: type[Event], make_sample: Callable[..., Event]
) -> None:
    data = spec.encode(make_sample(cls))
    doc = json.loads(data)
    assert doc["type"] == cls.event_type()
    assert b"\n" not in data
    assert b": " not in data


@pytest.mark.parametrize("spec", TOPICS, ids=_id)
def test_encode_refuses_an_event_the_topic_does_not_carry(
    spec: TopicSpec, make_sample: Callable[..., Event]
) -> None:
    foreign = next(cls for _, cls in TOPIC_EVENTS if cls not in spec.events)
    with pytest.raises(TypeError, match=spec.name):
        spec.encode(make_sample(foreign))


@pytest.mark.parametrize("spec", TOPICS, ids=_id)
def test_decode_refuses_an_event_of_another_topic(
    spec: TopicSpec, make_sample: Callable[..., Event]
) -> None:
    foreign = next(cls for _, cls in TOPIC_EVENTS if cls not in spec.events)
    data = topic_for(foreign).encode(make_sample(foreign))
    with pytest.raises(ValidationError):
        spec.decode(data)


@pytest.mark.parametrize("spec", TOPICS, ids=_id)
@pytest.mark.parametrize("data", [b"", b"not json", b"{}", b"[]", b'{"type": "nope"}'])
def test_decode_refuses_garbage(spec: TopicSpec, data: bytes) -> None:
    with pytest.raises(ValidationError):
        spec.decode(data)


@pytest.mark.parametrize(("spec", "cls"), TOPIC_EVENTS, ids=_id)
def test_decode_refuses_unknown_fields(
    spec: TopicSpec, cls: type[Event], make_sample: Callable[..., Event]
) -> None:
    doc = json.loads(spec.encode(make_sample(cls)))
    doc["password"] = "hunter2"
    with pytest.raises(ValidationError, match="extra"):
        spec.decode(json.dumps(doc).encode())


@pytest.mark.parametrize(("spec", "cls"), TOPIC_EVENTS, ids=_id)
def test_decode_refuses_an_unknown_type(
    spec: TopicSpec, cls: type[Event], make_sample: Callable[..., Event]
) -> None:
    doc = json.loads(spec.encode(make_sample(cls)))
    doc["type"] = "trademesh.unknown"
    with pytest.raises(ValidationError):
        spec.decode(json.dumps(doc).encode())


def test_nested_order_survives_the_approved_topic(make_sample: Callable[..., Event]) -> None:
    approved = make_sample(orders.OrderApproved)
    spec = get_topic(ORDERS_APPROVED)
    decoded = spec.decode(spec.encode(approved))
    assert isinstance(decoded.order, orders.SubmitOrder)
    assert decoded.order == approved.order
    assert decoded.order.limit_price == approved.order.limit_price
