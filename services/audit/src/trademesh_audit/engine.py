"""The audit domain logic: pure, no I/O and no wall clock, testable without a broker.

The audit log records who did what to which thing, when, for every event on the order, bot,
auth and risk topics, and chains the records so that an edited, inserted or deleted row is found by
walking the chain again (`ChainWalker`), and a rewritten chain by the checkpoints kept outside
the database (`check_checkpoints`).

The chain is keyed: each link is an HMAC-SHA256 under a chain key, 32 random bytes kept sealed
by the keystore's master key in the service's schema (keys.py), so whoever can write the
database but does not hold the master key cannot make a link that verifies, and cannot redo the
links after an edit. Rows appended before the log was keyed (a deployment that upgraded) keep
their plain SHA-256 links: `keyed_from`, bound to every chain key when it is sealed, is the
first keyed row, and the walk refuses an unkeyed row from there on.

Market data (`md.ticks.v1`, `md.bars.v1`) is deliberately not consumed: ticks and bars are
nobody's action, and since every append is serialised on the chain head, recording them would
hold the whole log to market-data rates.

What a row is, exactly (the link covers all of it but the two links themselves):

- `seq`: 1, 2, 3, ... with no gap: the row's place in the chain;
- `event_id`: the envelope's `ce_id` (unique: an event is recorded once);
- `topic`, `action` (the envelope's `ce_type`, e.g. `trademesh.order.intent`);
- `actor_kind`/`actor`: who did it (see `actor_of`);
- `target_kind`/`target`: the thing acted on (see `target_of`), or both None;
- `occurred_at`: the envelope's `ce_time`; `recorded_at`: when the log appended the row;
- `trace_id`: the 32 hex digits of the W3C `traceparent` the event travelled with, or None;
- `event`: the event's JSON (as the validated event serialises on the wire);
- `key_id`: the chain key of the row's link; None for a row of the unkeyed prefix;
- `prev_hash`: the previous row's link (`GENESIS_HASH` for row 1);
- `hash`, the row's link: HMAC-SHA256(key, `prev_hash` (32 raw bytes) || `canonical_content(row)`)
  for a keyed row; SHA-256(`prev_hash` || `canonical_content(row)`) for an unkeyed one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

from trademesh_events.audit import ChainCheckpointed
from trademesh_events.envelope import Envelope

# The topics whose events the log records.
LOGGED: tuple[str, ...] = (
    "orders.intents.v1",
    "orders.approved.v1",
    "orders.denied.v1",
    "orders.events.v1",
    "orders.discrepancies.v1",
    "bots.events.v1",
    "auth.events.v1",
    "risk.events.v1",
)
# Where the chain's checkpoints go, and come back from (they are read, never logged).
CHECKPOINTS = "audit.checkpoints.v1"

# What row 1 chains from: 32 zero bytes (the migration seeds the chain head with the same).
GENESIS_HASH = bytes(32)
# The first element of the canonical form: a change of the form is a new version, and rows keep
# the version they were linked with. 1: the unkeyed rows of before; 2: keyed rows, whose form
# names their key.
UNKEYED_VERSION = 1
KEYED_VERSION = 2
KEY_SIZE = 32
# The checkpoints are signed under a key derived from the chain key, so that no signature can
# ever stand for a link, whatever bytes it covers.
_CHECKPOINT_KEY_LABEL = b"trademesh-audit checkpoint signing key v1"
_CHECKPOINT_FORM = "trademesh.audit.chain_checkpointed"

ActorKind = Literal["user", "service"]
TargetKind = Literal["client_order_id", "bot_id", "account_id", "user_id"]
# Why the chain does not hold: a link or sequence (`chain`), a key that is unknown or a row
# keyed on the wrong side of `keyed_from` (`key`), rows missing after the last one (`head`), a
# checkpoint the log no longer matches (`checkpoint`).
BreakReason = Literal["chain", "key", "head", "checkpoint"]

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
    """One row of the log: an entry at its place in the chain, with its links."""

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
    key_id: str | None = None  # None: a row of the unkeyed prefix


@dataclass(frozen=True)
class ChainKey:
    """A chain key: its id and its 32 secret bytes (never in a repr, a log or an answer)."""

    key_id: str
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.secret) != KEY_SIZE:
            raise ValueError(f"a chain key is {KEY_SIZE} bytes")

    def link(self, prev_hash: bytes, content: bytes) -> bytes:
        """HMAC-SHA256 over the previous link (32 bytes) followed by a row's content."""
        if len(prev_hash) != 32:
            raise ValueError("a previous hash is 32 bytes")
        return hmac.digest(self.secret, prev_hash + content, "sha256")

    def sign(self, message: bytes) -> bytes:
        """A checkpoint's signature: HMAC-SHA256 under the key's checkpoint subkey."""
        subkey = hmac.digest(self.secret, _CHECKPOINT_KEY_LABEL, "sha256")
        return hmac.digest(subkey, message, "sha256")


@dataclass(frozen=True)
class Keyring:
    """The chain keys a log has, the one new rows are linked with, and where keying began."""

    keys: Mapping[str, ChainKey]
    current: str
    keyed_from: int  # the first keyed row's seq; rows before it are the unkeyed prefix

    def __post_init__(self) -> None:
        if self.current not in self.keys:
            raise ValueError("the current chain key is not in the keyring")
        if self.keyed_from < 1:
            raise ValueError("keyed_from is a seq (1 or more)")

    @property
    def current_key(self) -> ChainKey:
        return self.keys[self.current]


@dataclass(frozen=True)
class Break:
    """Where the chain breaks first, and why (`reason`, and `detail` in words).

    For a row: its seq and event id, and the link it has (`stored_hash`). `expected_hash` is the
    link it should have after the rows before it only for an unkeyed row (anyone can compute
    that one): a keyed link is never given out, or verify would make links for whoever edited
    a row. For rows missing at the end (the chain head records a later row than the log has):
    the head's seq and hash as `expected_hash`, no event id, and the last row's hash (None when
    no row is left) as `stored_hash`. For a checkpoint: its seq, the link it pins as
    `expected_hash`, and the row's link there (None when there is no such row).
    """

    seq: int
    event_id: UUID | None
    expected_hash: bytes | None
    stored_hash: bytes | None
    reason: BreakReason = "chain"
    detail: str = ""


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
    """The bytes a row's link covers: the canonical JSON (ASCII) of the array

    [2, key_id, seq, event_id, topic, action, actor_kind, actor, target_kind, target,
     occurred_at, recorded_at, trace_id, event]

    for a keyed row, and of the same array without `key_id` and with 1 in front for an unkeyed
    one: the event id in its lowercase hyphenated form, times as `canonical_time`, absent values
    as null, and the event as a JSON object. An array rather than an object, so that the order
    is part of the definition and no field name has to be hashed. The key id is covered, so a
    row cannot be moved under another key or out of the keyed chain."""
    version = [UNKEYED_VERSION] if row.key_id is None else [KEYED_VERSION, row.key_id]
    return canonical_json(
        [
            *version,
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
    """The unkeyed link: SHA-256 over the previous link (32 bytes) followed by a row's content."""
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
    order (and its user) inside, but the approval is risk's act. An approval decision names
    who decided in `decided_by`, null when nobody did (it expired): the service acted then, not
    the owner the event names in `user_id`."""
    if "decided_by" in event:
        decider = event["decided_by"]
        return ("service", source) if decider is None else ("user", str(decider))
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


def link(
    entry: Entry, *, seq: int, recorded_at: datetime, prev_hash: bytes, key: ChainKey | None
) -> AuditRow:
    """`entry` as the row after the one whose seq is `seq - 1` and whose link is `prev_hash`,
    linked with `key` (None: the unkeyed link of the rows from before the log was keyed)."""
    unlinked = AuditRow(
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
        key_id=key.key_id if key is not None else None,
    )
    content = canonical_content(unlinked)
    made = key.link(prev_hash, content) if key is not None else chain_hash(prev_hash, content)
    return replace(unlinked, hash=made)


def link_holds(row: AuditRow, keyring: Keyring) -> bool:
    """Whether `row`'s link is the one its key (SHA-256 for an unkeyed row) makes over its own
    `prev_hash` and content, on its side of `keyed_from`: a check of the row alone, not of its
    place in the chain (`ChainWalker` does that)."""
    content = canonical_content(row)
    if row.key_id is None:
        expected = chain_hash(row.prev_hash, content)
        return row.seq < keyring.keyed_from and hmac.compare_digest(row.hash, expected)
    key = keyring.keys.get(row.key_id)
    if key is None or row.seq < keyring.keyed_from:
        return False
    return hmac.compare_digest(row.hash, key.link(row.prev_hash, content))


class ChainWalker:
    """Checks rows in seq order, from row 1, against the chain they should form.

    A row is intact when its seq follows the previous row's, its `prev_hash` is the previous
    row's link (the genesis hash for row 1), it is keyed exactly when its seq is `keyed_from` or
    later, with a key of the keyring, and its link is the recomputation over that and its
    content. So an edited row breaks at itself, a deleted row at the row after it, and a row
    whose link was recomputed without the key at itself.
    """

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring
        self.seq = 0
        self.hash = GENESIS_HASH
        self.rows = 0  # rows found intact so far

    def check(self, row: AuditRow) -> Break | None:
        if row.seq != self.seq + 1 or row.prev_hash != self.hash:
            expected = self._disclosable(row)
            return Break(
                row.seq,
                row.event_id,
                expected,
                row.hash,
                "chain",
                f"row {row.seq} does not follow row {self.seq} (a row was removed or inserted)",
            )
        keyed_from = self.keyring.keyed_from
        if (row.key_id is not None) != (row.seq >= keyed_from):
            where = "unkeyed after" if row.key_id is None else "keyed before"
            return Break(
                row.seq,
                row.event_id,
                None,
                row.hash,
                "key",
                f"row {row.seq} is {where} row {keyed_from}, where the keyed chain begins",
            )
        if row.key_id is None:
            expected = chain_hash(self.hash, canonical_content(row))
            disclosed: bytes | None = expected
        else:
            key = self.keyring.keys.get(row.key_id)
            if key is None:
                return Break(
                    row.seq,
                    row.event_id,
                    None,
                    row.hash,
                    "key",
                    f"row {row.seq} is linked with chain key {row.key_id!r}, which this log "
                    "does not have (or cannot open)",
                )
            expected = key.link(self.hash, canonical_content(row))
            disclosed = None  # see Break: a keyed link is never given out
        if not hmac.compare_digest(row.hash, expected):
            return Break(
                row.seq,
                row.event_id,
                disclosed,
                row.hash,
                "chain",
                f"row {row.seq}'s link is not the one its content and the link before it give",
            )
        self.seq, self.hash = row.seq, row.hash
        self.rows += 1
        return None

    def _disclosable(self, row: AuditRow) -> bytes | None:
        """The unkeyed recomputation of `row` after the last intact row, None for a keyed row."""
        if row.key_id is not None:
            return None
        return chain_hash(self.hash, canonical_content(row))

    def finish(self, head_seq: int, head_hash: bytes) -> Break | None:
        """After the last row: the chain head must record that row, else rows were removed
        from the end (which no later row would reveal)."""
        if (self.seq, self.hash) == (head_seq, head_hash):
            return None
        return Break(
            head_seq,
            None,
            head_hash,
            self.hash if self.rows else None,
            "head",
            f"the chain head records row {head_seq}; the log ends at row {self.seq}",
        )


# ---- checkpoints --------------------------------------------------------------------------


def checkpoint_message(chain: str, seq: int, link_: bytes, key_id: str, at: datetime) -> bytes:
    """The bytes a checkpoint's signature covers: the canonical JSON (ASCII) of
    ["trademesh.audit.chain_checkpointed", 1, chain, seq, link (hex), key_id, at]."""
    return canonical_json(
        [_CHECKPOINT_FORM, 1, chain, seq, link_.hex(), key_id, canonical_time(at)]
    ).encode("ascii")


def checkpoint(
    chain: str, seq: int, link_: bytes, key: ChainKey, at: datetime
) -> ChainCheckpointed:
    """The signed checkpoint of `chain`'s link `link_` at row `seq`, made at `at`."""
    signature = key.sign(checkpoint_message(chain, seq, link_, key.key_id, at))
    return ChainCheckpointed(
        chain=chain, seq=seq, link=link_.hex(), key_id=key.key_id, signature=signature.hex(), ts=at
    )


def check_checkpoint(
    found: ChainCheckpointed, keyring: Keyring, stored: bytes | None
) -> Break | None:
    """Whether checkpoint `found` holds: signed by a chain key of the keyring, and pinning the
    link the log has at its seq (`stored`, None when the log has no such row)."""
    pinned = bytes.fromhex(found.link)

    def broken(detail: str) -> Break:
        return Break(found.seq, None, pinned, stored, "checkpoint", detail)

    key = keyring.keys.get(found.key_id)
    if key is None:
        return broken(
            f"the checkpoint of row {found.seq} is signed with chain key {found.key_id!r}, "
            "which this log does not have (or cannot open)"
        )
    message = checkpoint_message(found.chain, found.seq, pinned, found.key_id, found.ts)
    if not hmac.compare_digest(key.sign(message), bytes.fromhex(found.signature)):
        return broken(f"the checkpoint of row {found.seq} has a signature that does not verify")
    if stored is None:
        return broken(f"row {found.seq}, which a checkpoint pins, is missing")
    if not hmac.compare_digest(stored, pinned):
        return broken(f"row {found.seq}'s link is not the one its checkpoint pins")
    return None


def check_checkpoints(
    found: Iterable[ChainCheckpointed], keyring: Keyring, stored: Mapping[int, bytes]
) -> Break | None:
    """The lowest checkpoint that does not hold (see `check_checkpoint`), given the log's links
    at the checkpoints' seqs (`stored`: seq -> link, rows the log lacks left out)."""
    for one in sorted(found, key=lambda c: (c.seq, c.ts)):
        broken = check_checkpoint(one, keyring, stored.get(one.seq))
        if broken is not None:
            return broken
    return None
