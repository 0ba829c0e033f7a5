"""Where the notify service keeps its state: channels, subscriptions and deliveries, in its own
Postgres schema (its pool's search_path points there)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

import asyncpg
from trademesh_db import Database

from trademesh_notify.engine import ChannelKind, EventKind, Notice


@dataclass(frozen=True)
class Channel:
    """A user's channel, without its secret."""

    id: UUID
    owner_id: UUID
    kind: ChannelKind
    url: str | None  # a webhook's; None for the other kinds
    events: tuple[EventKind, ...]
    created_at: datetime
    disabled_at: datetime | None
    config: Mapping[str, Any] = field(default_factory=dict)  # non-secret, per kind


@dataclass(frozen=True)
class Due:
    """A delivery due now, with what sending it needs (the sealed secret stays sealed here)."""

    event_id: UUID
    channel_id: UUID
    kind: ChannelKind
    url: str | None
    config: Mapping[str, Any]
    sealed_secret: bytes
    event_type: str
    body: bytes
    attempts: int
    event_kind: str = ""
    event_time: datetime | None = None


class DeliveryStatus(StrEnum):
    """Where a delivery is: pending (due at its next attempt), held (its channel is disabled),
    sent, or dead (its last attempt failed; its owner may retry it)."""

    PENDING = "pending"
    HELD = "held"
    SENT = "sent"
    DEAD = "dead"


@dataclass(frozen=True)
class DeliveryRow:
    """A delivery as its owner sees it in a channel's list (never its body)."""

    event_id: UUID
    event_kind: str
    event_type: str
    status: DeliveryStatus
    attempts: int
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime
    sent_at: datetime | None


def wake_channel(schema: str) -> str:
    """The Postgres NOTIFY channel on which committed deliveries of `schema` wake the delivery
    loops (every replica's); a channel name is at most 63 bytes."""
    return f"trademesh_deliveries_{schema}"[:63]


_CHANNEL = (
    "SELECT c.id, c.owner_id, c.kind, c.url, c.config, c.created_at, c.disabled_at, "
    "coalesce(array_agg(s.event_kind ORDER BY s.event_kind) "
    "FILTER (WHERE s.event_kind IS NOT NULL), '{}') AS events "
    "FROM channels c LEFT JOIN subscriptions s ON s.channel_id = c.id "
)


def _channel(row: asyncpg.Record) -> Channel:
    return Channel(
        id=row["id"],
        owner_id=row["owner_id"],
        kind=ChannelKind(row["kind"]),
        url=row["url"],
        events=tuple(EventKind(e) for e in row["events"]),
        created_at=row["created_at"],
        disabled_at=row["disabled_at"],
        config=json.loads(row["config"]),
    )


class ChannelStore:
    """Users' channels and their subscriptions."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(
        self,
        channel_id: UUID,
        owner_id: UUID,
        kind: ChannelKind,
        url: str | None,
        sealed_secret: bytes,
        events: Iterable[EventKind],
        now: datetime,
        config: Mapping[str, Any] | None = None,
    ) -> Channel:
        async with self.db.transaction() as tx:
            await tx.execute(
                "INSERT INTO channels (id, owner_id, kind, url, sealed_secret, created_at, config) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)",
                channel_id,
                owner_id,
                kind.value,
                url,
                sealed_secret,
                now,
                json.dumps(dict(config or {})),
            )
            await tx.executemany(
                "INSERT INTO subscriptions (channel_id, event_kind) VALUES ($1, $2)",
                [(channel_id, event.value) for event in sorted(set(events))],
            )
            row = await tx.fetchrow(_CHANNEL + "WHERE c.id = $1 GROUP BY c.id", channel_id)
        assert row is not None
        return _channel(row)

    async def of_owner(self, owner_id: UUID) -> list[Channel]:
        rows = await self.db.pool.fetch(
            _CHANNEL + "WHERE c.owner_id = $1 GROUP BY c.id ORDER BY c.created_at, c.id",
            owner_id,
        )
        return [_channel(row) for row in rows]

    async def delete(self, channel_id: UUID, owner_id: UUID) -> bool:
        """Delete the owner's channel (its pending deliveries go with it); False when the owner
        has no such channel (another user's is not theirs to know of)."""
        status = await self.db.pool.execute(
            "DELETE FROM channels WHERE id = $1 AND owner_id = $2", channel_id, owner_id
        )
        return bool(status == "DELETE 1")

    async def disable(self, channel_id: UUID, owner_id: UUID, now: datetime) -> Channel | None:
        """Disable the owner's channel: no new deliveries, and its pending ones are held (kept,
        not sent) until it is enabled again. None when the owner has no such channel."""
        async with self.db.transaction() as tx:
            updated = await tx.execute(
                "UPDATE channels SET disabled_at = coalesce(disabled_at, $3) "
                "WHERE id = $1 AND owner_id = $2",
                channel_id,
                owner_id,
                now,
            )
            if updated != "UPDATE 1":
                return None
            await tx.execute(
                "UPDATE deliveries SET status = 'held' WHERE channel_id = $1 AND status = 'pending'",
                channel_id,
            )
            row = await tx.fetchrow(_CHANNEL + "WHERE c.id = $1 GROUP BY c.id", channel_id)
        assert row is not None
        return _channel(row)

    async def enable(self, channel_id: UUID, owner_id: UUID, now: datetime) -> Channel | None:
        """Enable the owner's channel again: its held deliveries are pending and due now (a
        retry's back-off starts again from here), and the delivery loops are woken at commit.
        None when the owner has no such channel."""
        async with self.db.transaction() as tx:
            updated = await tx.execute(
                "UPDATE channels SET disabled_at = NULL WHERE id = $1 AND owner_id = $2",
                channel_id,
                owner_id,
            )
            if updated != "UPDATE 1":
                return None
            await tx.execute(
                "UPDATE deliveries SET status = 'pending', next_attempt_at = $2 "
                "WHERE channel_id = $1 AND status = 'held'",
                channel_id,
                now,
            )
            await tx.execute("SELECT pg_notify($1, '')", wake_channel(self.db.schema))
            row = await tx.fetchrow(_CHANNEL + "WHERE c.id = $1 GROUP BY c.id", channel_id)
        assert row is not None
        return _channel(row)


class DeliveryStore:
    """Deliveries: one per event and channel, from the consumer's transaction to sent or dead."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @property
    def wake_channel(self) -> str:
        return wake_channel(self.db.schema)

    async def enqueue(self, conn: asyncpg.Connection, notice: Notice, now: datetime) -> int:
        """A pending delivery of `notice` to each of its owner's enabled channels subscribed to
        its kind (to every user's, for a notice to everyone), in the caller's transaction (the
        consumer's, with its inbox entry); the (event, channel) key makes a second enqueue of
        the same event write nothing. A channel gets no event older than itself: a consumer
        reading history (a new group) sends nothing its owner did not subscribe to when it
        happened. The number of deliveries written.

        When it writes any, the same statement NOTIFYs the delivery loops: Postgres delivers a
        notification only when its transaction commits, so a loop woken by it finds the rows;
        repeats in one transaction fold into one."""
        if notice.owner is None and not notice.everyone:
            raise ValueError("an account's notice is enqueued once its owner is known")
        row = await conn.fetchrow(
            "WITH written AS (INSERT INTO deliveries (event_id, channel_id, owner_id, event_kind, "
            "event_type, body, next_attempt_at, created_at, event_time) "
            "SELECT $1, c.id, c.owner_id, $3, $4, $5, $6, $6, $7 FROM channels c "
            "JOIN subscriptions s ON s.channel_id = c.id AND s.event_kind = $3 "
            "WHERE (c.owner_id = $2 OR ($2::uuid IS NULL AND $8)) AND c.disabled_at IS NULL "
            "AND c.created_at <= $7 "
            "ON CONFLICT (event_id, channel_id) DO NOTHING RETURNING 1), "
            "counted AS (SELECT count(*) AS n FROM written) "
            "SELECT counted.n FROM counted "
            "LEFT JOIN LATERAL (SELECT pg_notify($9, '') WHERE counted.n > 0) woke ON true",
            notice.event_id,
            notice.owner,
            notice.kind.value,
            notice.event_type,
            notice.body,
            now,
            notice.time,
            notice.everyone,
            self.wake_channel,
        )
        assert row is not None
        return int(row["n"])

    async def owner_of(self, conn: asyncpg.Connection, account_id: UUID) -> UUID | None:
        """The account's owner as AccountChanged said, or None: not learnt (yet). Holds the
        account's lock to the end of the transaction (`_lock_account`)."""
        await _lock_account(conn, account_id)
        owner: UUID | None = await conn.fetchval(
            "SELECT owner_id FROM account_owners WHERE account_id = $1", account_id
        )
        return owner

    async def learn_owner(
        self, conn: asyncpg.Connection, account_id: UUID, owner_id: UUID, now: datetime
    ) -> UUID:
        """Keep `owner_id` as the account's owner unless one is known already; the owner kept
        (the first learnt: an account never changes hands). Holds the account's lock to the end
        of the transaction, and writes nothing for an owner already kept."""
        await _lock_account(conn, account_id)
        kept: UUID = await conn.fetchval(
            "WITH learnt AS (INSERT INTO account_owners (account_id, owner_id, learnt_at) "
            "VALUES ($1, $2, $3) ON CONFLICT (account_id) DO NOTHING RETURNING owner_id) "
            "SELECT owner_id FROM learnt UNION ALL "
            "SELECT owner_id FROM account_owners WHERE account_id = $1 LIMIT 1",
            account_id,
            owner_id,
            now,
        )
        return kept

    async def hold(self, conn: asyncpg.Connection, notice: Notice, now: datetime) -> None:
        """Keep an account's notice, sent to no one, until its owner is learnt."""
        assert notice.account_id is not None and notice.owner is None
        await conn.execute(
            "INSERT INTO unowned_notices (event_id, account_id, event_kind, event_type, body, "
            "event_time, held_at) VALUES ($1, $2, $3, $4, $5, $6, $7) "
            "ON CONFLICT (event_id) DO NOTHING",
            notice.event_id,
            notice.account_id,
            notice.kind.value,
            notice.event_type,
            notice.body,
            notice.time,
            now,
        )

    async def release_held(self, conn: asyncpg.Connection, account_id: UUID) -> list[Notice]:
        """The account's held notices, oldest first, taken out of the hold (the caller enqueues
        them for the owner in the same transaction)."""
        rows = await conn.fetch(
            "DELETE FROM unowned_notices WHERE account_id = $1 "
            "RETURNING event_id, event_kind, event_type, body, event_time",
            account_id,
        )
        return [
            Notice(
                row["event_id"],
                None,
                EventKind(row["event_kind"]),
                row["event_type"],
                row["body"],
                row["event_time"],
                account_id=account_id,
            )
            for row in sorted(rows, key=lambda r: (r["event_time"], r["event_id"]))
        ]

    async def claim_due(self, now: datetime, lease_until: datetime, limit: int) -> list[Due]:
        """Up to `limit` pending deliveries due at `now`, leased until `lease_until` (their next
        attempt moves there), so that another replica's loop skips them meanwhile; a loop that
        dies mid-send leaves them to be tried again when the lease ends (at least once)."""
        rows = await self.db.pool.fetch(
            "WITH due AS (SELECT event_id, channel_id FROM deliveries "
            "WHERE status = 'pending' AND next_attempt_at <= $1 AND "
            # Enqueued while its channel was being disabled: it waits, as a held one does.
            "NOT EXISTS (SELECT FROM channels c WHERE c.id = deliveries.channel_id "
            "AND c.disabled_at IS NOT NULL) "
            "ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED), "
            "leased AS (UPDATE deliveries d SET next_attempt_at = $2 FROM due "
            "WHERE d.event_id = due.event_id AND d.channel_id = due.channel_id "
            "RETURNING d.event_id, d.channel_id, d.event_type, d.body, d.attempts, d.event_kind, "
            "d.event_time) "
            "SELECT l.event_id, l.channel_id, c.kind, c.url, c.config, c.sealed_secret, "
            "l.event_type, l.body, l.attempts, l.event_kind, l.event_time "
            "FROM leased l JOIN channels c ON c.id = l.channel_id",
            now,
            lease_until,
            limit,
        )
        return [
            Due(
                **{
                    **dict(row),
                    "kind": ChannelKind(row["kind"]),
                    "config": json.loads(row["config"]),
                }
            )
            for row in rows
        ]

    async def sent(self, due: Due, now: datetime) -> None:
        await self.db.pool.execute(
            "UPDATE deliveries SET status = 'sent', attempts = attempts + 1, sent_at = $3, "
            "last_error = NULL WHERE event_id = $1 AND channel_id = $2 "
            "AND status IN ('pending', 'held')",  # held: its channel was disabled mid-send
            due.event_id,
            due.channel_id,
            now,
        )

    async def failed(self, due: Due, error: str, retry_at: datetime | None) -> None:
        """Count a failed attempt: pending again at `retry_at`, or dead when None."""
        await self.db.pool.execute(
            "UPDATE deliveries SET attempts = attempts + 1, last_error = $3, "
            "status = CASE WHEN $4::timestamptz IS NULL THEN 'dead' ELSE status END, "
            "next_attempt_at = coalesce($4, next_attempt_at) "
            "WHERE event_id = $1 AND channel_id = $2 AND status IN ('pending', 'held')",
            due.event_id,
            due.channel_id,
            error[:500],
            retry_at,
        )

    async def defer(self, due: Due, until: datetime) -> None:
        """Put a delivery off until `until` (its channel's rate limit): not an attempt."""
        await self.db.pool.execute(
            "UPDATE deliveries SET next_attempt_at = $3 "
            "WHERE event_id = $1 AND channel_id = $2 AND status = 'pending'",
            due.event_id,
            due.channel_id,
            until,
        )

    async def next_due(self) -> datetime | None:
        """When the earliest pending delivery is due (None: none is pending)."""
        value = await self.db.pool.fetchval(
            "SELECT min(next_attempt_at) FROM deliveries WHERE status = 'pending' AND "
            "NOT EXISTS (SELECT FROM channels c WHERE c.id = deliveries.channel_id "
            "AND c.disabled_at IS NOT NULL)"
        )
        return value if isinstance(value, datetime) else None

    async def of_channel(self, channel_id: UUID) -> list[asyncpg.Record]:
        """Every delivery to a channel, oldest first (for tests)."""
        return list(
            await self.db.pool.fetch(
                "SELECT event_id, status, attempts, last_error FROM deliveries "
                "WHERE channel_id = $1 ORDER BY created_at, event_id",
                channel_id,
            )
        )

    async def page_of_channel(
        self,
        channel_id: UUID,
        owner_id: UUID,
        status: DeliveryStatus | None,
        after: tuple[datetime, UUID] | None,
        limit: int,
    ) -> list[DeliveryRow] | None:
        """Up to `limit` deliveries of the owner's channel, newest first, after the (created_at,
        event_id) key `after`, of `status` only when given; None when the owner has no such
        channel."""
        async with self.db.transaction() as tx:
            if not await tx.fetchval(
                "SELECT true FROM channels WHERE id = $1 AND owner_id = $2", channel_id, owner_id
            ):
                return None
            rows = await tx.fetch(
                "SELECT event_id, event_kind, event_type, status, attempts, last_error, "
                "created_at, next_attempt_at, sent_at FROM deliveries "
                "WHERE channel_id = $1 AND ($2::text IS NULL OR status = $2) "
                "AND ($3::timestamptz IS NULL OR (created_at, event_id) < ($3, $4)) "
                "ORDER BY created_at DESC, event_id DESC LIMIT $5",
                channel_id,
                None if status is None else status.value,
                None if after is None else after[0],
                None if after is None else after[1],
                limit,
            )
        return [_delivery(row) for row in rows]

    async def retry(
        self, channel_id: UUID, owner_id: UUID, event_id: UUID, now: datetime
    ) -> DeliveryRow | DeliveryStatus | None:
        """A dead delivery of the owner's enabled channel made pending again, due now, with
        every attempt of a fresh delivery (the loops are woken at commit). None when the owner
        has no such delivery; its status when it is not dead, or HELD when its channel is
        disabled (enable the channel first)."""
        async with self.db.transaction() as tx:
            found = await tx.fetchrow(
                "SELECT d.status, c.disabled_at FROM deliveries d "
                "JOIN channels c ON c.id = d.channel_id "
                "WHERE d.channel_id = $1 AND c.owner_id = $2 AND d.event_id = $3 "
                "FOR UPDATE OF d",
                channel_id,
                owner_id,
                event_id,
            )
            if found is None:
                return None
            if found["status"] != DeliveryStatus.DEAD:
                return DeliveryStatus(found["status"])
            if found["disabled_at"] is not None:
                return DeliveryStatus.HELD
            row = await tx.fetchrow(
                "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = $3 "
                "WHERE channel_id = $1 AND event_id = $2 RETURNING event_id, event_kind, "
                "event_type, status, attempts, last_error, created_at, next_attempt_at, sent_at",
                channel_id,
                event_id,
                now,
            )
            await tx.execute("SELECT pg_notify($1, '')", self.wake_channel)
        assert row is not None
        return _delivery(row)


def _delivery(row: asyncpg.Record) -> DeliveryRow:
    return DeliveryRow(**{**dict(row), "status": DeliveryStatus(row["status"])})


async def _lock_account(conn: asyncpg.Connection, account_id: UUID) -> None:
    """Serialise, across replicas, what concerns an account's owner until the transaction ends:
    without it, one replica could hold an account's event (no owner yet) while another learns
    the owner and releases the held events without seeing it, and the event would wait for the
    next AccountChanged. A deadlock between two batches is a transient error the bus retries."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('notify.account.' || $1::uuid::text, 0))",
        account_id,
    )
