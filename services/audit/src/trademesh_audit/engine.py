"""The audit domain logic: pure, no I/O and no wall clock, testable without a broker.

The audit log records who did what to which thing, when, for every event on the order, bot and
auth topics, and chains the records with SHA-256 so that an edited, inserted or deleted row is
found by walking the chain again (`ChainWalker`).

Market data (`md.ticks.v1`, `md.bars.v1`) is deliberately not consumed: ticks and bars are
nobody's action, and since every append is serialised on the chain head, recording them would
hold the whole log to market-data rates.

What a row is, exactly (the hash covers all of it but the two hashes themselves):

- `seq`: 1, 2, 3, ... with no gap: the row's place in the chain;
- `event_id`: the envelope's `ce_id` (unique: an event is recorded once);
- `topic`, `action` (the envelope's `ce_type`, e.g. `trademesh.order.intent`);
- `actor_kind`/`actor`: who did it (see `actor_of`);
- `target_kind`/`target`: the thing acted on (see `target_of`), or both None;
- `occurred_at`: the envelope's `ce_time`; `recorded_at`: when the log appended the row;
- `trace_id`: the 32 hex digits of the W3C `traceparent` the event travelled with, or None;
- `event`: the event's JSON (as the validated event serialises on the wire);
- `prev_hash`: the previous row's `hash` (`GENESIS_HASH` for row 1);
- `hash` = SHA-256(`prev_hash` (32 raw bytes) || `canonical_content(row)`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

from trademesh_events.envelope import Envelope

# The service's contract on the bus; [tool.trademesh.service] in pyproject.toml says the same
# (a unit test keeps them equal).
CONSUMES: tuple[str, ...] = (
    "orders.intents.v1",
    "orders.approved.v1",
    "orders.denied.v1",
    "orders.events.v1",
    "orders.discrepancies.v1",
    "bots.events.v1",
    "auth.events.v1",
)
PRODUCES: tuple[str, ...] = ()

# What row 1 chains from: 32 zero bytes (the migration seeds the chain head with the same).
GENESIS_HASH = bytes(32)
# The first element of the canonical form: a later change of the form is a new version, and
# rows keep the version they were hashed with.
CANONICAL_VERSION = 1

ActorKind = Literal["user", "service"]
TargetKind = Literal["client_order_id", "bot_id", "account_id", "user_id"]

# Fields naming the user who acted, first match wins. RoleChanged and UserDisabled name the
# admin who acted in `changed_by`/`disabled_by` and the user acted on in `user_id`: the admin is
# the actor there, not the demoted or disabled user.
ACTOR_FIELDS: tuple[str, ...] = ("changed_by", "disabled_by", "user_id")
# The thing acted on, most specific first.
TARGET_FIELDS: tuple[TargetKind, ...] = ("client_order_id", "bot_id", "account_id", "user_id")


@dataclass(frozen=True)
class Entry:
    """What one event says, before it has a place in the chain."""

    event_id: UUID
    topic: str
    action: str
    actor_kind: ActorKind
    actor: str
    target_kind: TargetKind | None
    target: str | None
    occurred_at: datetime
    trace_id: str | None
    event: Mapping[str, Any]


@dataclass(frozen=True)
class AuditRow:
    """One row of the log: an entry at its place in the chain, with its hashes."""

    seq: int
    event_id: UUID
    topic: str
    action: str
    actor_kind: ActorKind
    actor: str
    target_kind: TargetKind | None
    target: str | None
    occurred_at: datetime
    recorded_at: datetime
    trace_id: str | None
    event: Mapping[str, Any]
    prev_hash: bytes
    hash: bytes


@dataclass(frozen=True)
class Break:
    """Where the chain breaks first.

    For a row: its seq and event id, the hash it should have after the rows before it
    (`expected_hash`) and the one it has (`stored_hash`). For rows missing at the end (the chain
    head records a later row than the log has): the head's seq and hash as `expected_hash`,
    no event id, and the last row's hash (None when no row is left) as `stored_hash`.
    """

    seq: int
    event_id: UUID | None
    expected_hash: bytes
    stored_hash: bytes | None


def canonical_json(value: Any) -> str:
    """JSON with sorted keys, no whitespace, ASCII only (every other character escaped), and no
    NaN or infinity: the same value always gives the same text."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )


def canonical_time(at: datetime) -> str:
    """UTC with six fractional digits and a Z (`2026-01-05T09:30:00.000000Z`): Postgres keeps
    microseconds, so a time read back from the log gives the same text."""
    if at.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_content(row: AuditRow) -> bytes:
    """The bytes a row's hash covers: the canonical JSON (ASCII) of the array

    [CANONICAL_VERSION, seq, event_id, topic, action, actor_kind, actor, target_kind, target,
     occurred_at, recorded_at, trace_id, event]

    with the event id in its lowercase hyphenated form, times as `canonical_time`, absent
    values as null, and the event as a JSON object. An array rather than an object, so that the
    order is part of the definition and no field name has to be hashed."""
    return canonical_json(
        [
            CANONICAL_VERSION,
            row.seq,
            str(row.event_id),
            row.topic,
            row.action,
            row.actor_kind,
            row.actor,
            row.target_kind,
            row.target,
            canonical_time(row.occurred_at),
            canonical_time(row.recorded_at),
            row.trace_id,
            dict(row.event),
        ]
    ).encode("ascii")


def chain_hash(prev_hash: bytes, content: bytes) -> bytes:
    """SHA-256 over the previous row's hash (32 bytes) followed by this row's content."""
    if len(prev_hash) != 32:
        raise ValueError("a previous hash is 32 bytes")
    return hashlib.sha256(prev_hash + content).digest()


def trace_id_of(envelope: Envelope) -> str | None:
    """The trace id of the W3C `traceparent` (version-traceid-parentid-flags), which the
    envelope has already checked for format."""
    return envelope.traceparent.split("-")[1] if envelope.traceparent else None


def actor_of(event: Mapping[str, Any], source: str) -> tuple[ActorKind, str]:
    """Who did it: the user the event names as acting (`ACTOR_FIELDS`), else the service that
    published it (`ce_source`). Only top-level fields count: an approval carries the approved
    order (and its user) inside, but the approval is risk's act."""
    for name in ACTOR_FIELDS:
        value = event.get(name)
        if value is not None:
            return "user", str(value)
    return "service", source


def target_of(event: Mapping[str, Any]) -> tuple[TargetKind | None, str | None]:
    """The thing acted on: the first of `TARGET_FIELDS` the event has, looking at its own fields
    and then at the order it carries (OrderApproved has the order's client order id only there,
    and an approval acts on that order); (None, None) when it names none (a failed login of an
    unknown user)."""
    nested = event.get("order")
    for name in TARGET_FIELDS:
        for where in (event, nested if isinstance(nested, Mapping) else {}):
            value = where.get(name)
            if value is not None:
                return name, str(value)
    return None, None


def entry_of(topic: str, event: Mapping[str, Any], envelope: Envelope) -> Entry:
    """The entry for `event` (its JSON object) as delivered on `topic` in `envelope`."""
    actor_kind, actor = actor_of(event, envelope.source)
    target_kind, target = target_of(event)
    return Entry(
        event_id=envelope.id,
        topic=topic,
        action=envelope.type,
        actor_kind=actor_kind,
        actor=actor,
        target_kind=target_kind,
        target=target,
        occurred_at=envelope.time,
        trace_id=trace_id_of(envelope),
        event=event,
    )


def link(entry: Entry, *, seq: int, recorded_at: datetime, prev_hash: bytes) -> AuditRow:
    """`entry` as the row after the one whose seq is `seq - 1` and whose hash is `prev_hash`."""
    unhashed = AuditRow(
        seq=seq,
        event_id=entry.event_id,
        topic=entry.topic,
        action=entry.action,
        actor_kind=entry.actor_kind,
        actor=entry.actor,
        target_kind=entry.target_kind,
        target=entry.target,
        occurred_at=entry.occurred_at,
        recorded_at=recorded_at,
        trace_id=entry.trace_id,
        event=entry.event,
        prev_hash=prev_hash,
        hash=b"",
    )
    return AuditRow(
        **{**unhashed.__dict__, "hash": chain_hash(prev_hash, canonical_content(unhashed))}
    )


class ChainWalker:
    """Checks rows in seq order, from row 1, against the chain they should form.

    A row is intact when its seq follows the previous row's, its `prev_hash` is the previous
    row's hash (the genesis hash for row 1), and its `hash` is the recomputation over that and
    its content. So an edited row breaks at itself, and a deleted row at the row after it.
    """

    def __init__(self) -> None:
        self.seq = 0
        self.hash = GENESIS_HASH
        self.rows = 0  # rows found intact so far

    def check(self, row: AuditRow) -> Break | None:
        expected = chain_hash(self.hash, canonical_content(row))
        if row.seq != self.seq + 1 or row.prev_hash != self.hash or row.hash != expected:
            return Break(row.seq, row.event_id, expected, row.hash)
        self.seq, self.hash = row.seq, row.hash
        self.rows += 1
        return None

    def finish(self, head_seq: int, head_hash: bytes) -> Break | None:
        """After the last row: the chain head must record that row, else rows were removed
        from the end (which no later row would reveal)."""
        if (self.seq, self.hash) == (head_seq, head_hash):
            return None
        return Break(head_seq, None, head_hash, self.hash if self.rows else None)
