"""The topic registry: names, DLQs, keys, partitions and the event-to-topic mapping."""

from __future__ import annotations

import re
import typing
from collections import Counter
from collections.abc import Callable
from uuid import UUID

import pytest
from trademesh_events import (
    TOPICS,
    TopicSpec,
    audit,
    auth,
    bots,
    get_topic,
    marketdata,
    orders,
    risk,
    topic_for,
)
from trademesh_events import topics as topics_module
from trademesh_events.base import Event
from trademesh_events.topics import (
    AUDIT_CHECKPOINTS,
    AUTH_EVENTS,
    BOTS_EVENTS,
    MD_BARS,
    MD_TICKS,
    ORDERS_APPROVED,
    ORDERS_DENIED,
    ORDERS_DISCREPANCIES,
    ORDERS_EVENTS,
    ORDERS_INTENTS,
    RISK_EVENTS,
    UNKEYED,
)

pytestmark = pytest.mark.unit

TOPIC_EVENTS = [(spec, cls) for spec in TOPICS for cls in spec.events]
ALL_EVENTS = sorted({cls for _, cls in TOPIC_EVENTS}, key=lambda c: c.__name__)
EXPECTED_KEYS = {
    MD_TICKS: "instrument_id",
    MD_BARS: "instrument_id",
    ORDERS_INTENTS: "account_id",
    ORDERS_APPROVED: "account_id",
    ORDERS_DENIED: "account_id",
    ORDERS_EVENTS: "account_id",
    ORDERS_DISCREPANCIES: "account_id",
    BOTS_EVENTS: "bot_id",
    AUTH_EVENTS: "user_id",
    AUDIT_CHECKPOINTS: "chain",
    RISK_EVENTS: "account_id",
}


def _id(value: object) -> str:
    return value.name if isinstance(value, TopicSpec) else getattr(value, "__name__", str(value))


def test_topic_names_unique_and_complete() -> None:
    names = [spec.name for spec in TOPICS]
    assert len(names) == len(set(names))
    assert set(names) == set(EXPECTED_KEYS)


@pytest.mark.parametrize("spec", TOPICS, ids=_id)
def test_topic_shape(spec: TopicSpec) -> None:
    assert re.fullmatch(r"[a-z]+(\.[a-z]+)+\.v[0-9]+", spec.name)
    assert spec.dlq == f"{spec.name}.dlq"
    assert spec.dlq not in {s.name for s in TOPICS}
    assert isinstance(spec.partitions, int)
    assert spec.partitions > 0
    assert spec.events
    assert spec.description.strip()
    assert spec.key_field == EXPECTED_KEYS[spec.name]
    assert get_topic(spec.name) is spec


def test_dlq_names_unique() -> None:
    dlqs = [spec.dlq for spec in TOPICS]
    assert len(dlqs) == len(set(dlqs))


@pytest.mark.parametrize("spec", TOPICS, ids=_id)
def test_event_types_unique_within_topic(spec: TopicSpec) -> None:
    assert len(spec.event_types) == len(set(spec.event_types))
    assert spec.event_types == tuple(cls.event_type() for cls in spec.events)


def test_event_type_names_unique_across_classes() -> None:
    names = Counter(cls.event_type() for cls in ALL_EVENTS)
    assert all(count == 1 for count in names.values()), names


def test_only_cancel_order_travels_on_two_topics() -> None:
    # By design (topics.py): a cancellation goes on the intents topic, then on approved.
    carried = Counter(cls for _, cls in TOPIC_EVENTS)
    shared = {cls for cls, count in carried.items() if count > 1}
    assert shared == {orders.CancelOrder}
    assert {spec.name for spec, cls in TOPIC_EVENTS if cls is orders.CancelOrder} == {
        ORDERS_INTENTS,
        ORDERS_APPROVED,
    }


@pytest.mark.parametrize(("spec", "cls"), TOPIC_EVENTS, ids=_id)
def test_key_field_exists_on_every_event(spec: TopicSpec, cls: type[Event]) -> None:
    assert spec.key_field in cls.model_fields


@pytest.mark.parametrize(("spec", "cls"), TOPIC_EVENTS, ids=_id)
def test_key_of(spec: TopicSpec, cls: type[Event], make_sample: Callable[..., Event]) -> None:
    event = make_sample(cls)
    value = getattr(event, spec.key_field)
    key = spec.key_of(event)
    assert isinstance(key, bytes)
    if value is None:
        assert key == UNKEYED
    else:
        assert key == str(value).encode()
        assert key != UNKEYED
        if isinstance(value, UUID):
            assert UUID(key.decode()) == value  # canonical, parseable UUID text


def test_key_of_examples(make_sample: Callable[..., Event]) -> None:
    tick = make_sample(marketdata.Tick, instrument_id="replay:GOOG")
    assert get_topic(MD_TICKS).key_of(tick) == b"replay:GOOG"
    fill = make_sample(orders.OrderFilled)
    assert get_topic(ORDERS_EVENTS).key_of(fill) == str(fill.account_id).encode()
    approved = make_sample(orders.OrderApproved)
    assert get_topic(ORDERS_APPROVED).key_of(approved) == str(approved.order.account_id).encode()


def test_unknown_user_login_failure_is_unkeyed(make_sample: Callable[..., Event]) -> None:
    spec = get_topic(AUTH_EVENTS)
    anonymous = make_sample(auth.LoginFailed, user_id=None)
    assert spec.key_of(anonymous) == UNKEYED == b"-"
    user = UUID("0190a1b2-0000-7000-8000-000000000002")
    known = make_sample(auth.LoginFailed, user_id=user)
    assert spec.key_of(known) == str(user).encode()


def test_the_platforms_trading_state_is_unkeyed(make_sample: Callable[..., Event]) -> None:
    spec = get_topic(RISK_EVENTS)
    account = make_sample(risk.TradingStateChanged)
    assert isinstance(account, risk.TradingStateChanged) and account.account_id is not None
    assert spec.key_of(account) == str(account.account_id).encode()
    platform = make_sample(
        risk.TradingStateChanged,
        account_id=None,
        old_state=risk.TradingState.ACTIVE,
        new_state=risk.TradingState.HALTED,
        reason=risk.TradingStateReason.GLOBAL_KILL_SWITCH_ENGAGED,
    )
    assert spec.key_of(platform) == UNKEYED


def test_same_account_same_key(make_sample: Callable[..., Event]) -> None:
    spec = get_topic(ORDERS_EVENTS)
    keys = {spec.key_of(make_sample(cls)) for cls in spec.events}
    assert len(keys) == 1


@pytest.mark.parametrize("cls", ALL_EVENTS, ids=_id)
def test_topic_for_maps_each_event_to_a_topic_carrying_it(
    cls: type[Event], make_sample: Callable[..., Event]
) -> None:
    spec = topic_for(cls)
    assert cls in spec.events
    assert topic_for(make_sample(cls)) is spec
    expected = next(s for s in TOPICS if cls in s.events)  # the first registration wins
    assert spec is expected


def test_topic_for_cancel_order_is_the_intent_topic() -> None:
    assert topic_for(orders.CancelOrder).name == ORDERS_INTENTS


@pytest.mark.parametrize(
    ("cls", "topic"),
    [
        (orders.SubmitOrder, ORDERS_INTENTS),
        (orders.OrderApproved, ORDERS_APPROVED),
        (orders.CancelAllOrders, ORDERS_APPROVED),
        (orders.OrderDenied, ORDERS_DENIED),
        (orders.OrderFilled, ORDERS_EVENTS),
        (auth.LoginFailed, AUTH_EVENTS),
        (audit.ChainCheckpointed, AUDIT_CHECKPOINTS),
        (risk.TradingStateChanged, RISK_EVENTS),
    ],
    ids=_id,
)
def test_topic_for_examples(cls: type[Event], topic: str) -> None:
    assert topic_for(cls).name == topic


def test_topic_for_unregistered_event() -> None:
    class Stray(Event):
        type: str = "trademesh.stray"

    with pytest.raises(KeyError, match="Stray is not carried by any topic"):
        topic_for(Stray)
    with pytest.raises(KeyError, match="Stray"):
        topic_for(Stray())


def test_get_topic_unknown_lists_known() -> None:
    with pytest.raises(KeyError, match=r"unknown topic 'nope\.v1'.*md\.ticks\.v1"):
        get_topic("nope.v1")


def test_order_lifecycle_is_the_events_topic() -> None:
    assert get_topic(ORDERS_EVENTS).events == (*orders.ORDER_LIFECYCLE, orders.AccountChanged)


def test_registry_modules_cover_every_event_class() -> None:
    """Every concrete Event subclass defined in the event modules is on some topic."""
    defined = {
        obj
        for module in (marketdata, orders, bots, auth, audit, risk)
        for obj in vars(module).values()
        if isinstance(obj, type)
        and issubclass(obj, Event)
        and obj.__module__ == module.__name__
        and not obj.__name__.startswith("_")
    }
    assert defined == set(ALL_EVENTS)
    assert topics_module.TOPICS is TOPICS


# ---- typed topics ------------------------------------------------------------------------------

TYPED_TOPICS = {
    name.removesuffix("_TOPIC"): hint
    for name, hint in typing.get_type_hints(topics_module).items()
    if name.endswith("_TOPIC")
}


def test_every_topic_has_a_typed_constant() -> None:
    constants = {getattr(topics_module, f"{name}_TOPIC").name for name in TYPED_TOPICS}
    assert constants == {spec.name for spec in TOPICS}
    for name in TYPED_TOPICS:
        assert getattr(topics_module, f"{name}_TOPIC").name == getattr(topics_module, name)


@pytest.mark.parametrize("name", sorted(TYPED_TOPICS))
def test_typed_constant_says_exactly_what_its_topic_carries(name: str) -> None:
    """The type parameter of `<NAME>_TOPIC` is the union of the event types the topic carries:
    mypy checks that a handler takes it, so a type missing here would go unhandled unnoticed."""
    hint = TYPED_TOPICS[name]
    assert typing.get_origin(hint) is TopicSpec
    (carried,) = typing.get_args(hint)
    declared = set(typing.get_args(carried)) or {carried}
    assert declared == set(getattr(topics_module, f"{name}_TOPIC").events)


def test_get_topic_gives_the_typed_constant() -> None:
    assert get_topic(ORDERS_EVENTS) is topics_module.ORDERS_EVENTS_TOPIC


def test_decode_of_a_typed_topic_gives_one_of_its_types(make_sample: Callable[..., Event]) -> None:
    spec = topics_module.ORDERS_INTENTS_TOPIC
    event = make_sample(orders.CancelOrder)
    assert isinstance(spec.decode(spec.encode(event)), orders.CancelOrder)
