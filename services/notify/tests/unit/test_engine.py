"""The domain logic alone: no broker, no database, no clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from trademesh_events import orders, risk
from trademesh_events.base import Event
from trademesh_events.envelope import new_envelope
from trademesh_events.topics import ORDERS_EVENTS_TOPIC
from trademesh_testing.samples import build_sample

from trademesh_notify.engine import EventKind, RetryPolicy, next_attempt, notice_of

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)


def test_a_fill_is_a_fill_notice_for_the_user_whose_order_it_is() -> None:
    user = uuid4()
    fill = build_sample(orders.OrderFilled, user_id=user)
    envelope = new_envelope(fill, "execution", time=T0)
    notice = notice_of(fill, envelope)
    assert notice is not None
    assert (notice.owner, notice.kind, notice.event_id) == (user, EventKind.FILL, envelope.id)
    document = json.loads(notice.body)
    assert (document["id"], document["kind"], document["type"]) == (
        str(envelope.id),
        "fill",
        "trademesh.order.filled",
    )
    # The event as on the bus: Decimals as strings, no float ever holds a price
    assert document["data"] == json.loads(ORDERS_EVENTS_TOPIC.encode(fill))
    assert isinstance(document["data"]["last_price"], str)


def test_a_denial_is_a_denial_notice_with_its_reason() -> None:
    denial = build_sample(orders.OrderDenied)
    notice = notice_of(denial, new_envelope(denial, "risk", time=T0))
    assert notice is not None and notice.kind is EventKind.DENIAL
    assert json.loads(notice.body)["data"]["reason"] == denial.reason  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "cls", [orders.OrderAccepted, orders.AccountChanged, risk.TradingStateChanged]
)
def test_events_of_no_subscribed_kind_are_no_notice(cls: type[Event]) -> None:
    event = build_sample(cls)
    assert notice_of(event, new_envelope(event, "test", time=T0)) is None


def test_retries_back_off_exponentially_within_the_jittered_ceiling() -> None:
    policy = RetryPolicy(max_attempts=5, base_s=1.0, cap_s=5.0)
    ceilings = [next_attempt(policy, attempts, T0, 0.999999) for attempts in (1, 2, 3, 4)]
    delays = [(at - T0).total_seconds() for at in ceilings if at is not None]
    assert [round(d) for d in delays] == [1, 2, 4, 5]  # doubling, capped
    assert next_attempt(policy, 3, T0, 0.0) == T0  # full jitter reaches down to now
    assert next_attempt(policy, 3, T0, 0.5) == T0 + timedelta(seconds=2)


def test_after_the_last_attempt_a_delivery_is_dead() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert next_attempt(policy, 2, T0, 0.5) is not None
    assert next_attempt(policy, 3, T0, 0.5) is None


def test_a_jitter_outside_zero_one_is_refused() -> None:
    with pytest.raises(ValueError, match="jitter"):
        next_attempt(RetryPolicy(), 1, T0, 1.0)
