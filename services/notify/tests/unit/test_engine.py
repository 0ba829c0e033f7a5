"""The domain logic alone: no broker, no database, no clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from trademesh_events import bots, orders, risk
from trademesh_events.base import Event
from trademesh_events.envelope import new_envelope
from trademesh_events.topics import ORDERS_EVENTS_TOPIC
from trademesh_testing.samples import build_sample

from trademesh_notify.engine import EventKind, Notice, RetryPolicy, next_attempt, notice_of

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
    "cls",
    [orders.OrderAccepted, orders.OrderSubmitted, orders.OrderCanceled, orders.AccountChanged],
)
def test_events_of_no_subscribed_kind_are_no_notice(cls: type[Event]) -> None:
    event = build_sample(cls)
    assert notice_of(event, new_envelope(event, "test", time=T0)) is None


# ---- the kinds of events that name their user -------------------------------------------------

OWNED: list[tuple[type[Event], dict[str, Any], EventKind]] = [
    (orders.OrderFilled, {}, EventKind.FILL),
    (orders.OrderDenied, {}, EventKind.DENIAL),
    (orders.OrderRejected, {"reason": "insufficient balance"}, EventKind.REJECTION),
    (bots.BotStateChanged, {"state": bots.BotState.STARTING}, EventKind.BOT_STATE),
    (bots.BotStateChanged, {"state": bots.BotState.RUNNING}, EventKind.BOT_STATE),
    (bots.BotStateChanged, {"state": bots.BotState.PAUSED}, EventKind.BOT_STATE),
    (bots.BotStateChanged, {"state": bots.BotState.STOPPED}, EventKind.BOT_STATE),
    (bots.BotStateChanged, {"state": bots.BotState.ERROR, "reason": "boom"}, EventKind.BOT_ERROR),
    (orders.DiscrepancyDetected, {}, EventKind.DISCREPANCY),
]


@pytest.mark.parametrize(("cls", "fields", "kind"), OWNED)
def test_an_event_naming_its_user_is_a_notice_of_its_kind_for_that_user_only(
    cls: type[Event], fields: dict[str, Any], kind: EventKind
) -> None:
    user, other = uuid4(), uuid4()
    event = build_sample(cls, user_id=user, **fields)
    envelope = new_envelope(event, "test", time=T0)
    notice = notice_of(event, envelope)
    assert notice is not None
    assert (notice.owner, notice.kind, notice.time) == (user, kind, T0)
    assert notice.owner != other
    assert (notice.account_id, notice.everyone) == (None, False)  # no lookup, no broadcast
    document = json.loads(notice.body)
    assert (document["id"], document["kind"], document["type"]) == (
        str(envelope.id),
        kind.value,
        event.type,
    )
    assert document["data"]["user_id"] == str(user)


def test_a_bot_error_is_only_a_bot_error_and_a_bot_state_never_one() -> None:
    # A channel subscribed to bot_error gets only errors: every event has exactly one kind.
    kinds = {
        state: notice_of(e, new_envelope(e, "strategy", time=T0))
        for state in bots.BotState
        for e in [build_sample(bots.BotStateChanged, state=state)]
    }
    assert {s for s, n in kinds.items() if n and n.kind is EventKind.BOT_ERROR} == {
        bots.BotState.ERROR
    }
    assert all(n is not None for n in kinds.values())


def test_a_rejection_carries_the_venues_reason() -> None:
    rejected = build_sample(orders.OrderRejected, reason="price out of band")
    notice = notice_of(rejected, new_envelope(rejected, "execution", time=T0))
    assert notice is not None and notice.kind is EventKind.REJECTION
    assert json.loads(notice.body)["data"]["reason"] == "price out of band"


# ---- trading state: owned by the account's owner, or everyone's -------------------------------


def _state(
    old: risk.TradingState,
    new: risk.TradingState,
    reason: risk.TradingStateReason,
    account: UUID | None,
) -> Event:
    return build_sample(
        risk.TradingStateChanged, old_state=old, new_state=new, reason=reason, account_id=account
    )


A, H, R = risk.TradingState.ACTIVE, risk.TradingState.HALTED, risk.TradingState.REDUCING
Why = risk.TradingStateReason


@pytest.mark.parametrize(
    ("old", "new", "reason", "kind"),
    [
        (A, H, Why.KILL_SWITCH_ENGAGED, EventKind.KILL_SWITCH),
        (R, H, Why.KILL_SWITCH_ENGAGED, EventKind.KILL_SWITCH),
        (H, A, Why.KILL_SWITCH_RELEASED, EventKind.KILL_SWITCH),
        (H, R, Why.KILL_SWITCH_RELEASED, EventKind.KILL_SWITCH),
        (A, R, Why.DAILY_LOSS_LIMIT, EventKind.REDUCING),
        (A, R, Why.MANUAL, EventKind.REDUCING),
        (R, A, Why.MANUAL, EventKind.REDUCING),
        (A, H, Why.MANUAL, EventKind.KILL_SWITCH),
        (H, A, Why.MANUAL, EventKind.KILL_SWITCH),
    ],
)
def test_an_accounts_trading_state_is_for_the_accounts_owner_looked_up(
    old: risk.TradingState, new: risk.TradingState, reason: risk.TradingStateReason, kind: EventKind
) -> None:
    account = uuid4()
    event = _state(old, new, reason, account)
    notice = notice_of(event, new_envelope(event, "risk", time=T0))
    assert notice is not None
    assert (notice.kind, notice.account_id, notice.owner, notice.everyone) == (
        kind,
        account,
        None,  # not the acting user (changed_by): the account's owner, once known
        False,
    )
    owner = uuid4()
    assert notice.for_owner(owner).owner == owner
    assert notice.for_owner(owner).account_id == account


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [(A, H, Why.GLOBAL_KILL_SWITCH_ENGAGED), (H, A, Why.GLOBAL_KILL_SWITCH_RELEASED)],
)
def test_the_global_kill_switch_is_a_kill_switch_notice_for_everyone(
    old: risk.TradingState, new: risk.TradingState, reason: risk.TradingStateReason
) -> None:
    event = _state(old, new, reason, None)
    notice = notice_of(event, new_envelope(event, "risk", time=T0))
    assert notice is not None
    assert (notice.kind, notice.everyone, notice.owner, notice.account_id) == (
        EventKind.KILL_SWITCH,
        True,
        None,
        None,
    )
    with pytest.raises(ValueError, match="no single owner"):
        notice.for_owner(uuid4())


def test_a_notice_is_for_exactly_one_audience() -> None:
    for owner, account, everyone in [(None, None, False), (uuid4(), None, True), (None, uuid4(), True)]:  # fmt: skip
        with pytest.raises(ValueError, match="or everyone"):
            Notice(uuid4(), owner, EventKind.FILL, "t", b"{}", T0, account_id=account, everyone=everyone)  # fmt: skip


def test_a_pending_approval_is_an_approval_notice_for_the_bots_owner() -> None:
    user = uuid4()
    asked = build_sample(bots.ApprovalRequested, user_id=user)
    notice = notice_of(asked, new_envelope(asked, "strategy", time=T0))
    assert notice is not None
    assert (notice.owner, notice.kind) == (user, EventKind.APPROVAL)
    assert json.loads(notice.body)["data"]["approval_id"] == str(asked.approval_id)


def test_an_expired_approval_is_told_and_a_decided_one_is_not() -> None:
    user = uuid4()
    made = {
        decision: notice_of(e, new_envelope(e, "strategy", time=T0))
        for decision in bots.ApprovalDecision
        for e in [build_sample(bots.ApprovalDecided, user_id=user, decision=decision)]
    }
    expired = made.pop(bots.ApprovalDecision.EXPIRED)
    assert expired is not None
    assert (expired.owner, expired.kind) == (user, EventKind.APPROVAL)
    assert made == {bots.ApprovalDecision.APPROVED: None, bots.ApprovalDecision.REJECTED: None}


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


def test_a_receivers_retry_after_is_the_earliest_next_attempt_even_past_the_cap() -> None:
    policy = RetryPolicy(max_attempts=5, base_s=1.0, cap_s=10.0)
    asked = T0 + timedelta(seconds=30)
    assert next_attempt(policy, 1, T0, 0.5, not_before=asked) == asked
    # an earlier demand than the back-off changes nothing
    early = T0 + timedelta(milliseconds=1)
    assert next_attempt(policy, 3, T0, 0.5, not_before=early) == T0 + timedelta(seconds=2)
    # and it never adds an attempt: the last one is still dead
    assert next_attempt(policy, 5, T0, 0.5, not_before=asked) is None
