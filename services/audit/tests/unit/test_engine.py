"""The audit domain alone: what a row says about an event, its canonical form and hash, and the
chain walk. No broker, no database, no clock."""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from trademesh_events import auth, bots, orders
from trademesh_events.base import Event
from trademesh_events.envelope import Envelope, new_envelope
from trademesh_events.topics import get_topic, topic_for
from trademesh_testing.samples import ACCOUNT, ADMIN, BOT, CLIENT_ORDER_ID, USER, build_sample

from trademesh_audit.engine import (
    CONSUMES,
    GENESIS_HASH,
    PRODUCES,
    AuditRow,
    Break,
    ChainWalker,
    canonical_content,
    canonical_json,
    canonical_time,
    chain_hash,
    entry_of,
    link,
)

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
EVENT_ID = UUID("0190a1b2-0000-7000-8000-0000000000aa")


def _wire(event: Event) -> dict[str, Any]:
    """The event's JSON object as the handler gets it."""
    document: dict[str, Any] = json.loads(topic_for(event).encode(event))
    return document


def _envelope(event: Event, source: str = "strategy", traceparent: str | None = None) -> Envelope:
    return replace(new_envelope(event, source, time=T0), traceparent=traceparent)


def _row(seq: int = 1, prev_hash: bytes = GENESIS_HASH, **changes: Any) -> AuditRow:
    event = build_sample(orders.SubmitOrder)
    entry = replace(entry_of("orders.intents.v1", _wire(event), _envelope(event)), **changes)
    return link(entry, seq=seq, recorded_at=T0 + timedelta(seconds=seq), prev_hash=prev_hash)


def _chain(n: int) -> list[AuditRow]:
    rows: list[AuditRow] = []
    for seq in range(1, n + 1):
        rows.append(_row(seq, rows[-1].hash if rows else GENESIS_HASH))
    return rows


# ---- what a row says ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "actor", "target"),
    [
        (orders.SubmitOrder, ("user", str(USER)), ("client_order_id", CLIENT_ORDER_ID)),
        (orders.CancelOrder, ("user", str(USER)), ("client_order_id", CLIENT_ORDER_ID)),
        # Risk approved it; the order it approved is the thing acted on.
        (orders.OrderApproved, ("service", "strategy"), ("client_order_id", CLIENT_ORDER_ID)),
        (orders.CancelAllOrders, ("service", "strategy"), ("account_id", str(ACCOUNT))),
        (orders.OrderDenied, ("user", str(USER)), ("client_order_id", CLIENT_ORDER_ID)),
        (orders.OrderFilled, ("user", str(USER)), ("client_order_id", CLIENT_ORDER_ID)),
        (orders.DiscrepancyDetected, ("user", str(USER)), ("client_order_id", CLIENT_ORDER_ID)),
        (bots.BotStateChanged, ("user", str(USER)), ("bot_id", str(BOT))),
        (auth.UserLoggedIn, ("user", str(USER)), ("user_id", str(USER))),
        # The admin who acted, on the user acted on.
        (auth.RoleChanged, ("user", str(ADMIN)), ("user_id", str(USER))),
        (auth.UserDisabled, ("user", str(ADMIN)), ("user_id", str(USER))),
        # No such user: the publishing service, and no target.
        (auth.LoginFailed, ("service", "strategy"), (None, None)),
    ],
)
def test_actor_and_target_come_from_the_event_else_its_source(
    cls: type[Event], actor: tuple[str, str], target: tuple[str | None, str | None]
) -> None:
    event = build_sample(cls)
    entry = entry_of(topic_for(event).name, _wire(event), _envelope(event))
    assert (entry.actor_kind, entry.actor) == actor
    assert (entry.target_kind, entry.target) == target


def test_a_discrepancy_of_no_order_targets_the_account() -> None:
    event = build_sample(orders.DiscrepancyDetected, client_order_id=None)
    entry = entry_of("orders.discrepancies.v1", _wire(event), _envelope(event))
    assert (entry.target_kind, entry.target) == ("account_id", str(ACCOUNT))


def test_an_entry_takes_id_type_time_and_trace_from_the_envelope() -> None:
    event = build_sample(orders.OrderAccepted)
    envelope = _envelope(event, "execution", TRACEPARENT)
    entry = entry_of("orders.events.v1", _wire(event), envelope)
    assert (entry.event_id, entry.action, entry.occurred_at, entry.topic) == (
        envelope.id,
        "trademesh.order.accepted",
        T0,
        "orders.events.v1",
    )
    assert entry.trace_id == "0af7651916cd43dd8448eb211c80319c"
    assert entry.event == _wire(event)
    assert entry_of("orders.events.v1", _wire(event), _envelope(event)).trace_id is None


# ---- the canonical form and the hash --------------------------------------------------------


def test_the_canonical_form_and_hash_are_exactly_as_defined() -> None:
    # A hand-written row and its canonical bytes written out in full: any change to the
    # definition (field order, time format, JSON form) changes them and fails here.
    row = AuditRow(
        seq=7,
        event_id=EVENT_ID,
        topic="auth.events.v1",
        action="trademesh.auth.login_failed",
        actor_kind="service",
        actor="auth",
        target_kind=None,
        target=None,
        occurred_at=datetime(2026, 1, 5, 10, 30, 0, 5, tzinfo=timezone(timedelta(hours=1))),
        recorded_at=datetime(2026, 1, 5, 9, 30, 1, tzinfo=UTC),
        trace_id=None,
        event={"type": "trademesh.auth.login_failed", "email": "m***@exämple.com", "n": 1},
        prev_hash=b"\x01" * 32,
        hash=b"",
    )
    expected = (
        '[1,7,"0190a1b2-0000-7000-8000-0000000000aa","auth.events.v1",'
        '"trademesh.auth.login_failed","service","auth",null,null,'
        '"2026-01-05T09:30:00.000005Z","2026-01-05T09:30:01.000000Z",null,'
        '{"email":"m***@ex\\u00e4mple.com","n":1,"type":"trademesh.auth.login_failed"}]'
    ).encode("ascii")
    assert canonical_content(row) == expected
    assert chain_hash(row.prev_hash, expected) == hashlib.sha256(b"\x01" * 32 + expected).digest()


def test_genesis_is_32_zero_bytes_and_row_one_chains_from_it() -> None:
    assert bytes(32) == GENESIS_HASH
    row = _row()
    assert row.prev_hash == GENESIS_HASH
    assert row.hash == hashlib.sha256(GENESIS_HASH + canonical_content(row)).digest()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("seq", 2),
        ("event_id", UUID(int=1)),
        ("topic", "orders.events.v1"),
        ("action", "trademesh.order.cancel"),
        ("actor_kind", "service"),
        ("actor", "someone-else"),
        ("target_kind", "account_id"),
        ("target", "other-order"),
        ("occurred_at", T0 + timedelta(microseconds=1)),
        ("recorded_at", T0),
        ("trace_id", "0" * 31 + "1"),
        ("event", {"type": "trademesh.order.intent"}),
    ],
)
def test_every_field_but_the_hashes_is_covered(field: str, value: Any) -> None:
    row = _row()
    assert canonical_content(replace(row, **{field: value})) != canonical_content(row)


def test_the_same_instant_in_any_zone_is_one_canonical_time() -> None:
    paris = T0.astimezone(timezone(timedelta(hours=1)))
    assert canonical_time(paris) == canonical_time(T0) == "2026-01-05T09:30:00.000000Z"
    with pytest.raises(ValueError, match="timezone-aware"):
        canonical_time(datetime(2026, 1, 5, 9, 30))


@pytest.mark.parametrize("topic", CONSUMES)
def test_an_event_stored_as_canonical_json_and_read_back_hashes_the_same(topic: str) -> None:
    # The store keeps canonical_json(event) and parses it again to verify: the round trip must
    # give the same bytes.
    spec = get_topic(topic)
    for cls in spec.events:
        document = _wire(build_sample(cls))
        text = canonical_json(document)
        assert canonical_json(json.loads(text)) == text


# ---- the chain walk -------------------------------------------------------------------------


def _walk(rows: list[AuditRow], head: tuple[int, bytes] | None = None) -> tuple[int, Break | None]:
    walker = ChainWalker()
    for row in rows:
        broken = walker.check(row)
        if broken is not None:
            return walker.rows, broken
    last = (rows[-1].seq, rows[-1].hash) if rows else (0, GENESIS_HASH)
    return walker.rows, walker.finish(*(head or last))


def test_an_intact_chain_verifies() -> None:
    assert _walk(_chain(5)) == (5, None)
    assert _walk([]) == (0, None)


def test_an_edited_row_is_the_first_broken() -> None:
    rows = _chain(5)
    edited = replace(rows[2], actor="someone-else")
    rows[2] = edited
    intact, broken = _walk(rows)
    assert intact == 2
    assert broken == Break(
        3, edited.event_id, chain_hash(rows[1].hash, canonical_content(edited)), edited.hash
    )
    assert broken.expected_hash != broken.stored_hash


def test_a_deleted_row_breaks_the_chain_at_the_next_row() -> None:
    rows = _chain(5)
    del rows[2]
    intact, broken = _walk(rows)
    assert intact == 2
    assert broken is not None
    assert (broken.seq, broken.event_id, broken.stored_hash) == (4, rows[2].event_id, rows[2].hash)


def test_a_row_whose_hash_was_recomputed_after_an_edit_still_breaks_the_next_link() -> None:
    rows = _chain(4)
    forged = _row(2, rows[0].hash, actor="someone-else")  # a consistent row 2 of its own
    rows[1] = forged
    intact, broken = _walk(rows)
    assert (intact, broken and broken.seq) == (2, 3)


def test_a_prev_hash_that_does_not_link_is_a_break_even_with_a_matching_hash() -> None:
    rows = _chain(2)
    # Row 2 hashed over a wrong previous hash, and claiming it: self-consistent, not linked.
    rows[1] = _row(2, b"\x07" * 32)
    intact, broken = _walk(rows)
    assert (intact, broken and broken.seq) == (1, 2)


def test_rows_missing_at_the_end_break_against_the_chain_head() -> None:
    rows = _chain(4)
    intact, broken = _walk(rows[:3], head=(4, rows[3].hash))
    assert intact == 3
    assert broken == Break(4, None, rows[3].hash, rows[2].hash)
    assert _walk([], head=(4, rows[3].hash)) == (0, Break(4, None, rows[3].hash, None))


def test_chain_hash_refuses_a_previous_hash_of_the_wrong_size() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        chain_hash(b"short", b"content")


# ---- the contract -----------------------------------------------------------------------------


def test_contract_matches_pyproject_and_the_topic_registry() -> None:
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    declared = pyproject["tool"]["trademesh"]["service"]
    assert tuple(declared["consumes"]) == CONSUMES
    assert tuple(declared["produces"]) == PRODUCES
    for name in (*CONSUMES, *PRODUCES):
        assert get_topic(name).name == name
    assert not any(name.startswith("md.") for name in CONSUMES)  # see engine.py's docstring
