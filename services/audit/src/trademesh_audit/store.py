"""The audit log in the service's Postgres schema: appends in chain order, search, verification.

The service's connections act as WRITER_ROLE (the migration creates it), which may read and
append to the log but has no UPDATE, DELETE or TRUNCATE privilege on it; the log's triggers
refuse those statements from anyone else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from trademesh_db import Database

from trademesh_audit.engine import AuditRow, Break, ChainWalker, Entry, canonical_json, link

WRITER_ROLE = "trademesh_audit_writer"

_COLUMNS = (
    "seq, event_id, topic, action, actor_kind, actor, target_kind, target, occurred_at, "
    "recorded_at, trace_id, event, prev_hash, hash"
)


def _row(record: asyncpg.Record) -> AuditRow:
    values = dict(record)
    values["event"] = json.loads(values["event"])  # asyncpg hands json columns over as text
    values["prev_hash"] = bytes(values["prev_hash"])
    values["hash"] = bytes(values["hash"])
    return AuditRow(**values)


@dataclass(frozen=True)
class Search:
    """Filters of a search (None: any); rows come newest first, below `before_seq` if given."""

    actor: str | None = None
    action: str | None = None
    target: str | None = None
    since: datetime | None = None  # occurred_at >= since
    until: datetime | None = None  # occurred_at < until
    before_seq: int | None = None
    limit: int = 100


@dataclass(frozen=True)
class Verification:
    ok: bool
    rows: int  # rows found intact, from row 1
    first_broken: Break | None


class AuditStore:
    """The log's rows and its chain head (the pool's search_path points at the schema)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def append(self, entry: Entry, conn: asyncpg.Connection) -> AuditRow | None:
        """Append `entry` as the chain's next row, in the caller's transaction (the handler's,
        with the inbox entry). None when its event id is in the log already.

        The chain head's row lock is held until that transaction ends, so concurrent appends
        (other partitions, other replicas) take their turns, each chaining from the row before
        it. The duplicate check runs under the same lock, so two deliveries of one event cannot
        both pass it, whichever consumer group or replica they come through.
        """
        head = await conn.fetchrow("SELECT seq, hash FROM chain_head FOR UPDATE")
        # The database's clock, read once the lock is held: recorded_at never goes backwards
        # along the chain, whatever the replicas' clocks say.
        state = await conn.fetchrow(
            "SELECT clock_timestamp() AS now, "
            "EXISTS (SELECT 1 FROM audit_log WHERE event_id = $1) AS known",
            entry.event_id,
        )
        if head is None or state is None:
            raise RuntimeError("the audit chain head is missing: migrations not applied?")
        if state["known"]:
            return None
        row = link(
            entry, seq=head["seq"] + 1, recorded_at=state["now"], prev_hash=bytes(head["hash"])
        )
        await conn.execute(
            f"INSERT INTO audit_log ({_COLUMNS}) "  # noqa: S608 - a constant column list
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            row.seq,
            row.event_id,
            row.topic,
            row.action,
            row.actor_kind,
            row.actor,
            row.target_kind,
            row.target,
            row.occurred_at,
            row.recorded_at,
            row.trace_id,
            canonical_json(dict(row.event)),
            row.prev_hash,
            row.hash,
        )
        await conn.execute("UPDATE chain_head SET seq = $1, hash = $2", row.seq, row.hash)
        return row

    async def search(self, query: Search) -> list[AuditRow]:
        """Rows matching every given filter, newest (highest seq) first, up to `limit`."""
        conditions: list[str] = []
        args: list[Any] = []
        for column, op, value in (
            ("actor", "=", query.actor),
            ("action", "=", query.action),
            ("target", "=", query.target),
            ("occurred_at", ">=", query.since),
            ("occurred_at", "<", query.until),
            ("seq", "<", query.before_seq),
        ):
            if value is not None:
                args.append(value)
                conditions.append(f"{column} {op} ${len(args)}")
        where = f"WHERE {' AND '.join(conditions)} " if conditions else ""
        args.append(query.limit)
        # Only fixed column names and $n placeholders are interpolated; values go as arguments.
        sql = f"SELECT {_COLUMNS} FROM audit_log {where}ORDER BY seq DESC LIMIT ${len(args)}"  # noqa: S608
        records = await self.db.pool.fetch(sql, *args)
        return [_row(record) for record in records]

    async def verify(self, batch: int = 1000) -> Verification:
        """Walk the whole chain in seq order, `batch` rows per query, up to the chain head as it
        was when the walk began; stop at the first break.

        The head is read first: rows up to its seq were committed with it or before it, so rows
        appended during the walk neither hide a break nor look like one.
        """
        head = await self.db.pool.fetchrow("SELECT seq, hash FROM chain_head")
        if head is None:
            raise RuntimeError("the audit chain head is missing: migrations not applied?")
        walker = ChainWalker()
        after = 0
        while True:
            records = await self.db.pool.fetch(
                f"SELECT {_COLUMNS} FROM audit_log WHERE seq > $1 AND seq <= $2 "  # noqa: S608
                "ORDER BY seq LIMIT $3",
                after,
                head["seq"],
                batch,
            )
            for record in records:
                broken = walker.check(_row(record))
                if broken is not None:
                    return Verification(ok=False, rows=walker.rows, first_broken=broken)
            if len(records) < batch:
                break
            after = records[-1]["seq"]
        broken = walker.finish(head["seq"], bytes(head["hash"]))
        return Verification(ok=broken is None, rows=walker.rows, first_broken=broken)
