"""The audit domain alone: what a row says about an event, its canonical form and link, the
keyed chain walk, and checkpoints. No broker, no database, no clock."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from trademesh_events import auth, bots, orders, risk
from trademesh_events.base import Event
from trademesh_events.envelope import Envelope, new_envelope
from trademesh_events.topics import get_topic, topic_for
from trademesh_service import ServiceManifest
from trademesh_testing.samples import ACCOUNT, ADMIN, BOT, CLIENT_ORDER_ID, USER, build_sample

from trademesh_audit.engine import (
    CHECKPOINTS,
    GENESIS_HASH,
    LOGGED,
    AuditRow,
    Break,
    ChainKey,
    ChainWalker,
    Keyring,
    canonical_content,
    canonical_json,
    canonical_time,
    chain_hash,
    check_checkpoint,
    check_checkpoints,
    checkpoint,
    checkpoint_message,
    entry_of,
    link,
    link_holds,
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


KEY = ChainKey("20260105-0a1b2c3d", bytes(range(32)))
KEYRING = Keyring(keys={KEY.key_id: KEY}, current=KEY.key_id, keyed_from=1)
# A key of the attacker's own: someone with the database but not the master key.
FORGER = ChainKey("20260105-ffffffff", b"\xee" * 32)


def _row(
    seq: int = 1,
    prev_hash: bytes = GENESIS_HASH,
    key: ChainKey | None = KEY,
    **changes: Any,
) -> AuditRow:
    event = build_sample(orders.SubmitOrder)
    entry = replace(entry_of("orders.intents.v1", _wire(event), _envelope(event)), **changes)
    recorded_at = T0 + timedelta(seconds=seq)
    return link(entry, seq=seq, recorded_at=recorded_at, prev_hash=prev_hash, key=key)


def _chain(n: int, *, keyed_from: int = 1, key: ChainKey = KEY) -> list[AuditRow]:
    """Rows 1..n: unkeyed before `keyed_from`, linked with `key` from there on."""
    rows: list[AuditRow] = []
    for seq in range(1, n + 1):
        prev = rows[-1].hash if rows else GENESIS_HASH
        rows.append(_row(seq, prev, key if seq >= keyed_from else None))
    return rows


def _relink_unkeyed(rows: list[AuditRow], start: int, *, keep_key_id: bool) -> list[AuditRow]:
    """What someone with the database but without the key can do: from index `start` on,
    recompute every link with the unkeyed formula (SHA-256), keeping the key id or dropping it."""
    out = rows[:start]
    for row in rows[start:]:
        prev = out[-1].hash if out else GENESIS_HASH
        moved = replace(row, prev_hash=prev, key_id=row.key_id if keep_key_id else None)
        out.append(replace(moved, hash=chain_hash(prev, canonical_content(moved))))
    return out


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
        # An approval-mode bot's order: the owner's, until the owner decides it.
        (bots.ApprovalRequested, ("user", str(USER)), ("client_order_id", CLIENT_ORDER_ID)),
        (bots.ApprovalDecided, ("user", str(USER)), ("client_order_id", CLIENT_ORDER_ID)),
        (auth.UserLoggedIn, ("user", str(USER)), ("user_id", str(USER))),
        # The admin who acted, on the user acted on.
        (auth.RoleChanged, ("user", str(ADMIN)), ("user_id", str(USER))),
        (auth.UserDisabled, ("user", str(ADMIN)), ("user_id", str(USER))),
        # No such user: the publishing service, and no target.
        (auth.LoginFailed, ("service", "strategy"), (None, None)),
        # The user who pulled the switch or set the state, on the account.
        (risk.TradingStateChanged, ("user", str(USER)), ("account_id", str(ACCOUNT))),
    ],
)
def test_actor_and_target_come_from_the_event_else_its_source(
    cls: type[Event], actor: tuple[str, str], target: tuple[str | None, str | None]
) -> None:
    event = build_sample(cls)
    entry = entry_of(topic_for(event).name, _wire(event), _envelope(event))
    assert (entry.actor_kind, entry.actor) == actor
    assert (entry.target_kind, entry.target) == target


def test_an_expired_approval_is_the_publishing_services_act_not_its_owners() -> None:
    expired = build_sample(
        bots.ApprovalDecided, decision=bots.ApprovalDecision.EXPIRED, decided_by=None, channel=None
    )
    decided_by_admin = build_sample(bots.ApprovalDecided, decided_by=ADMIN)

    entry = entry_of(topic_for(expired).name, _wire(expired), _envelope(expired))
    by_admin = entry_of(
        topic_for(decided_by_admin).name, _wire(decided_by_admin), _envelope(decided_by_admin)
    )

    assert (entry.actor_kind, entry.actor) == ("service", "strategy")
    assert (by_admin.actor_kind, by_admin.actor) == ("user", str(ADMIN))


def test_a_discrepancy_of_no_order_targets_the_account() -> None:
    event = build_sample(orders.DiscrepancyDetected, client_order_id=None)
    entry = entry_of("orders.discrepancies.v1", _wire(event), _envelope(event))
    assert (entry.target_kind, entry.target) == ("account_id", str(ACCOUNT))


def test_a_daily_loss_switch_is_risks_act_and_a_platform_switch_has_no_target() -> None:
    loss = build_sample(
        risk.TradingStateChanged,
        old_state=risk.TradingState.ACTIVE,
        new_state=risk.TradingState.REDUCING,
        reason=risk.TradingStateReason.DAILY_LOSS_LIMIT,
        changed_by=None,
    )
    entry = entry_of("risk.events.v1", _wire(loss), _envelope(loss, "risk"))
    assert (entry.actor_kind, entry.actor) == ("service", "risk")
    assert (entry.target_kind, entry.target) == ("account_id", str(ACCOUNT))
    platform = build_sample(
        risk.TradingStateChanged,
        account_id=None,
        old_state=risk.TradingState.ACTIVE,
        new_state=risk.TradingState.HALTED,
        reason=risk.TradingStateReason.GLOBAL_KILL_SWITCH_ENGAGED,
        changed_by=ADMIN,
    )
    entry = entry_of("risk.events.v1", _wire(platform), _envelope(platform, "risk"))
    assert (entry.actor_kind, entry.actor) == ("user", str(ADMIN))
    assert (entry.target_kind, entry.target) == (None, None)


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


def test_the_unkeyed_canonical_form_and_hash_are_exactly_as_defined() -> None:
    # A hand-written row of the unkeyed prefix and its canonical bytes written out in full: any
    # change to the definition (field order, time format, JSON form) changes them and fails
    # here, and the rows of an upgraded log would no longer verify.
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


def test_the_keyed_canonical_form_and_link_are_exactly_as_defined() -> None:
    row = AuditRow(
        seq=7,
        event_id=EVENT_ID,
        topic="auth.events.v1",
        action="trademesh.auth.login_failed",
        actor_kind="service",
        actor="auth",
        target_kind=None,
        target=None,
        occurred_at=datetime(2026, 1, 5, 9, 30, tzinfo=UTC),
        recorded_at=datetime(2026, 1, 5, 9, 30, 1, tzinfo=UTC),
        trace_id=None,
        event={"type": "trademesh.auth.login_failed"},
        prev_hash=b"\x01" * 32,
        hash=b"",
        key_id=KEY.key_id,
    )
    expected = (
        '[2,"20260105-0a1b2c3d",7,"0190a1b2-0000-7000-8000-0000000000aa","auth.events.v1",'
        '"trademesh.auth.login_failed","service","auth",null,null,'
        '"2026-01-05T09:30:00.000000Z","2026-01-05T09:30:01.000000Z",null,'
        '{"type":"trademesh.auth.login_failed"}]'
    ).encode("ascii")
    assert canonical_content(row) == expected
    assert KEY.link(row.prev_hash, expected) == (
        hmac.new(bytes(range(32)), b"\x01" * 32 + expected, hashlib.sha256).digest()
    )


def test_genesis_is_32_zero_bytes_and_row_one_chains_from_it() -> None:
    assert bytes(32) == GENESIS_HASH
    row = _row()
    assert (row.prev_hash, row.key_id) == (GENESIS_HASH, KEY.key_id)
    assert row.hash == KEY.link(GENESIS_HASH, canonical_content(row))
    unkeyed = _row(key=None)
    assert unkeyed.hash == hashlib.sha256(GENESIS_HASH + canonical_content(unkeyed)).digest()


def test_a_chain_key_never_shows_its_secret_and_is_32_bytes() -> None:
    assert bytes(range(32)).hex() not in repr(KEY)
    assert repr(bytes(range(32))) not in repr(KEY)
    assert "20260105-0a1b2c3d" in repr(KEY)
    with pytest.raises(ValueError, match="32 bytes"):
        ChainKey("20260105-0a1b2c3d", b"short")


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
        ("key_id", "20260105-00000000"),
        ("key_id", None),
    ],
)
def test_every_field_but_the_links_is_covered(field: str, value: Any) -> None:
    row = _row()
    assert canonical_content(replace(row, **{field: value})) != canonical_content(row)


def test_the_same_instant_in_any_zone_is_one_canonical_time() -> None:
    paris = T0.astimezone(timezone(timedelta(hours=1)))
    assert canonical_time(paris) == canonical_time(T0) == "2026-01-05T09:30:00.000000Z"
    with pytest.raises(ValueError, match="timezone-aware"):
        canonical_time(datetime(2026, 1, 5, 9, 30))


@pytest.mark.parametrize("topic", LOGGED)
def test_an_event_stored_as_canonical_json_and_read_back_hashes_the_same(topic: str) -> None:
    # The store keeps canonical_json(event) and parses it again to verify: the round trip must
    # give the same bytes.
    spec = get_topic(topic)
    for cls in spec.events:
        document = _wire(build_sample(cls))
        text = canonical_json(document)
        assert canonical_json(json.loads(text)) == text


# ---- the chain walk -------------------------------------------------------------------------


def _walk(
    rows: list[AuditRow], head: tuple[int, bytes] | None = None, keyring: Keyring = KEYRING
) -> tuple[int, Break | None]:
    walker = ChainWalker(keyring)
    for row in rows:
        broken = walker.check(row)
        if broken is not None:
            return walker.rows, broken
    last = (rows[-1].seq, rows[-1].hash) if rows else (0, GENESIS_HASH)
    return walker.rows, walker.finish(*(head or last))


def _upgraded(keyed_from: int) -> Keyring:
    return replace(KEYRING, keyed_from=keyed_from)


def test_an_intact_chain_verifies() -> None:
    assert _walk(_chain(5)) == (5, None)
    assert _walk([]) == (0, None)


def test_an_edited_row_is_the_first_broken_and_its_keyed_link_is_not_given_out() -> None:
    rows = _chain(5)
    edited = replace(rows[2], actor="someone-else")
    rows[2] = edited
    intact, broken = _walk(rows)
    assert intact == 2
    assert broken is not None
    assert (broken.seq, broken.event_id, broken.stored_hash, broken.reason) == (
        3,
        edited.event_id,
        edited.hash,
        "chain",
    )
    # The link the edited row would need is never disclosed: verify is no signing oracle.
    assert broken.expected_hash is None


def test_a_deleted_row_breaks_the_chain_at_the_next_row() -> None:
    rows = _chain(5)
    del rows[2]
    intact, broken = _walk(rows)
    assert intact == 2
    assert broken is not None
    assert (broken.seq, broken.event_id, broken.stored_hash) == (4, rows[2].event_id, rows[2].hash)


@pytest.mark.parametrize("keep_key_id", [True, False], ids=["key-id-kept", "key-id-dropped"])
def test_a_row_rewritten_and_every_later_link_recomputed_without_the_key_breaks_at_the_row(
    keep_key_id: bool,
) -> None:
    rows = _chain(5)
    rows[1] = replace(rows[1], actor="mallory")
    forged = _relink_unkeyed(rows, 1, keep_key_id=keep_key_id)
    # Self-consistent by the unkeyed formula: what verify checked before the chain was keyed.
    for prev, row in pairwise(forged):
        assert row.prev_hash == prev.hash
        assert row.hash == chain_hash(row.prev_hash, canonical_content(row))
    intact, broken = _walk(forged)
    assert intact == 1
    assert broken is not None
    assert (broken.seq, broken.reason) == (2, "chain" if keep_key_id else "key")
    assert broken.expected_hash is None


def test_a_rewrite_relinked_with_a_key_of_ones_own_is_refused() -> None:
    rows = _chain(3)
    forged = [rows[0]]
    for row in rows[1:]:
        edited = replace(row, actor="mallory", prev_hash=forged[-1].hash, key_id=FORGER.key_id)
        forged.append(
            replace(edited, hash=FORGER.link(edited.prev_hash, canonical_content(edited)))
        )
    intact, broken = _walk(forged)
    assert intact == 1
    assert broken is not None
    assert (broken.seq, broken.reason) == (2, "key")
    assert FORGER.key_id in broken.detail


def test_an_upgraded_log_verifies_with_its_unkeyed_prefix() -> None:
    rows = _chain(6, keyed_from=4)
    assert [row.key_id is None for row in rows] == [True] * 3 + [False] * 3
    assert _walk(rows, keyring=_upgraded(4)) == (6, None)


def test_an_unkeyed_row_after_keyed_from_is_a_break() -> None:
    # Someone moves the boundary down by relinking a keyed row without its key id.
    rows = _chain(6, keyed_from=4)
    forged = _relink_unkeyed(rows, 3, keep_key_id=False)
    intact, broken = _walk(forged, keyring=_upgraded(4))
    assert intact == 3
    assert broken is not None
    assert (broken.seq, broken.reason) == (4, "key")
    assert "unkeyed after row 4" in broken.detail


def test_a_keyed_row_before_keyed_from_is_a_break() -> None:
    rows = _chain(3)
    intact, broken = _walk(rows, keyring=_upgraded(3))
    assert (intact, broken and broken.seq, broken and broken.reason) == (0, 1, "key")


def test_a_rewritten_unkeyed_prefix_breaks_at_the_first_keyed_row() -> None:
    # The unkeyed rows can be relinked by anyone, but the first keyed row's link covers the
    # last unkeyed link, and that one cannot be redone without the key.
    rows = _chain(6, keyed_from=4)
    rows[0] = replace(rows[0], actor="mallory")
    forged = _relink_unkeyed(rows[:3], 0, keep_key_id=False) + rows[3:]
    forged[3] = replace(forged[3], prev_hash=forged[2].hash)
    intact, broken = _walk(forged, keyring=_upgraded(4))
    assert intact == 3
    assert broken is not None
    assert (broken.seq, broken.reason) == (4, "chain")


def test_an_unkeyed_break_gives_the_expected_link_anyone_could_compute() -> None:
    rows = _chain(3, keyed_from=10)
    edited = replace(rows[1], actor="someone-else")
    rows[1] = edited
    _, broken = _walk(rows, keyring=_upgraded(10))
    assert broken is not None
    assert broken.expected_hash == chain_hash(rows[0].hash, canonical_content(edited))


def test_rows_of_a_rotated_key_verify_with_the_old_and_the_new_key() -> None:
    new = ChainKey("20260106-0a1b2c3e", b"\x42" * 32)
    rotated = Keyring(keys={KEY.key_id: KEY, new.key_id: new}, current=new.key_id, keyed_from=1)
    rows = _chain(2)
    rows.append(_row(3, rows[-1].hash, new))
    assert _walk(rows, keyring=rotated) == (3, None)
    # Without the old key, its rows are reported.
    only_new = Keyring(keys={new.key_id: new}, current=new.key_id, keyed_from=1)
    _, broken = _walk(rows, keyring=only_new)
    assert (broken and broken.seq, broken and broken.reason) == (1, "key")


def test_a_prev_hash_that_does_not_link_is_a_break_even_with_a_matching_hash() -> None:
    rows = _chain(2)
    # Row 2 linked over a wrong previous link, and claiming it: self-consistent, not linked.
    rows[1] = _row(2, b"\x07" * 32)
    intact, broken = _walk(rows)
    assert (intact, broken and broken.seq) == (1, 2)


def test_rows_missing_at_the_end_break_against_the_chain_head() -> None:
    rows = _chain(4)
    intact, broken = _walk(rows[:3], head=(4, rows[3].hash))
    assert intact == 3
    assert broken is not None
    assert (broken.seq, broken.event_id, broken.expected_hash, broken.stored_hash) == (
        4,
        None,
        rows[3].hash,
        rows[2].hash,
    )
    assert broken.reason == "head"
    _, empty = _walk([], head=(4, rows[3].hash))
    assert empty is not None
    assert (empty.seq, empty.stored_hash, empty.reason) == (4, None, "head")


def test_one_rows_link_holds_alone_only_with_its_key_on_its_side_of_keyed_from() -> None:
    rows = _chain(3, keyed_from=2)
    upgraded = _upgraded(2)
    assert all(link_holds(row, upgraded) for row in rows)
    assert not link_holds(replace(rows[2], actor="mallory"), upgraded)
    assert not link_holds(rows[2], replace(upgraded, keyed_from=4))
    assert not link_holds(rows[0], replace(upgraded, keyed_from=1))
    stranger = Keyring(keys={FORGER.key_id: FORGER}, current=FORGER.key_id, keyed_from=2)
    assert not link_holds(rows[2], stranger)


def test_chain_hash_refuses_a_previous_hash_of_the_wrong_size() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        chain_hash(b"short", b"content")
    with pytest.raises(ValueError, match="32 bytes"):
        KEY.link(b"short", b"content")


# ---- checkpoints ----------------------------------------------------------------------------


def test_a_checkpoint_pins_a_link_and_verifies_against_the_log() -> None:
    rows = _chain(3)
    made = checkpoint("audit", 3, rows[2].hash, KEY, T0)
    assert (made.chain, made.seq, made.link, made.key_id) == (
        "audit",
        3,
        rows[2].hash.hex(),
        KEY.key_id,
    )
    assert check_checkpoint(made, KEYRING, rows[2].hash) is None
    # It travels as an event and comes back the same.
    spec = get_topic(CHECKPOINTS)
    assert check_checkpoint(spec.decode(spec.encode(made)), KEYRING, rows[2].hash) is None


def test_a_checkpoint_is_not_a_link() -> None:
    # The signature is made under a subkey: no checkpoint can be replayed as a row's link.
    rows = _chain(1)
    message = checkpoint_message("audit", 1, rows[0].hash, KEY.key_id, T0)
    assert KEY.sign(message) != hmac.new(KEY.secret, message, hashlib.sha256).digest()


def test_a_checkpoint_finds_a_rewritten_chain_that_verifies_on_its_own() -> None:
    # The whole chain rewritten unkeyed and the keys replaced: the walk alone passes (every row
    # is before the new keyed_from), the checkpoint of the old chain does not.
    rows = _chain(4)
    made = checkpoint("audit", 3, rows[2].hash, KEY, T0)
    forged = _relink_unkeyed([replace(rows[0], actor="mallory"), *rows[1:]], 0, keep_key_id=False)
    fresh = ChainKey("20260107-00000001", b"\x11" * 32)
    recreated = Keyring(keys={fresh.key_id: fresh}, current=fresh.key_id, keyed_from=5)
    assert _walk(forged, keyring=recreated) == (4, None)
    broken = check_checkpoint(made, recreated, forged[2].hash)
    assert broken is not None
    assert (broken.seq, broken.reason, broken.expected_hash) == (3, "checkpoint", rows[2].hash)
    assert KEY.key_id in broken.detail
    # ...and with the old key still there (a rewrite made with the key itself), the link differs.
    both = Keyring(keys={KEY.key_id: KEY, fresh.key_id: fresh}, current=fresh.key_id, keyed_from=1)
    mismatch = check_checkpoint(made, both, forged[2].hash)
    assert mismatch is not None
    assert (mismatch.stored_hash, mismatch.reason) == (forged[2].hash, "checkpoint")


def test_a_checkpoint_of_a_missing_row_is_a_break() -> None:
    rows = _chain(3)
    made = checkpoint("audit", 3, rows[2].hash, KEY, T0)
    broken = check_checkpoint(made, KEYRING, None)
    assert broken is not None
    assert (broken.seq, broken.stored_hash) == (3, None)
    assert "missing" in broken.detail


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("chain", "other"),
        ("seq", 2),
        ("link", "00" * 32),
        ("ts", T0 + timedelta(microseconds=1)),
        ("signature", "00" * 32),
    ],
)
def test_a_checkpoint_changed_in_any_field_no_longer_verifies(field: str, value: Any) -> None:
    rows = _chain(3)
    made = checkpoint("audit", 3, rows[2].hash, KEY, T0)
    changed = made.model_copy(update={field: value})
    broken = check_checkpoint(changed, KEYRING, rows[2].hash)
    assert broken is not None
    assert "signature" in broken.detail


def test_the_lowest_checkpoint_that_fails_is_reported() -> None:
    rows = _chain(5)
    good = checkpoint("audit", 2, rows[1].hash, KEY, T0)
    bad_low = checkpoint("audit", 3, b"\x01" * 32, KEY, T0)
    bad_high = checkpoint("audit", 5, b"\x02" * 32, KEY, T0)
    stored = {row.seq: row.hash for row in rows}
    assert check_checkpoints([good], KEYRING, stored) is None
    broken = check_checkpoints([bad_high, good, bad_low], KEYRING, stored)
    assert broken is not None
    assert broken.seq == 3


# ---- the contract -----------------------------------------------------------------------------


def test_the_declared_contract_is_every_logged_topic_and_the_checkpoints() -> None:
    declared = ServiceManifest.from_folder(Path(__file__).parents[2])
    assert not any(name.startswith("md.") for name in declared.consumes)  # engine.py's docstring
    # Checkpoints go out and come back; they are never logged (no feedback loop).
    assert declared.produces == (CHECKPOINTS,) and CHECKPOINTS not in LOGGED
    assert declared.consumes == (*LOGGED, CHECKPOINTS)
