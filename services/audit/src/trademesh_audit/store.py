"""The audit log in the service's Postgres schema: appends in chain order, search, verification.

The service's connections act as WRITER_ROLE (the migrations create it), which may read and
append to the log and its chain keys but has no UPDATE, DELETE or TRUNCATE privilege on them;
their triggers refuse those statements from anyone else.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from trademesh_db import Database
from trademesh_events.audit import ChainCheckpointed

from trademesh_audit.engine import (
    AuditRow,
    Break,
    ChainWalker,
    Entry,
    Keyring,
    canonical_json,
    check_checkpoints,
    link,
)

WRITER_ROLE = "trademesh_audit_writer"

_COLUMNS = (
    "seq, event_id, topic, action, actor_kind, actor, target_kind, target, occurred_at, "
    "recorded_at, trace_id, event, prev_hash, hash, key_id"
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
    keyed_from: int = 1  # the first keyed row; the rows before it have unkeyed links
    checkpoints: int = 0  # checkpoints checked
    last_checkpoint: int | None = None  # the highest seq a checkpoint pins


class AuditStore:
    """The log's rows and its chain head (the pool's search_path points at the schema).

    `keyring` gives the chain keys as they are now (ChainKeys.keyring): appends link with its
    current key."""

    def __init__(self, db: Database, keyring: Callable[[], Keyring]) -> None:
        self.db = db
        self.keyring = keyring

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
            entry,
            seq=head["seq"] + 1,
            recorded_at=state["now"],
            prev_hash=bytes(head["hash"]),
            key=self.keyring().current_key,
        )
        await conn.execute(
            f"INSERT INTO audit_log ({_COLUMNS}) "  # noqa: S608 - a constant column list
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
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
            row.key_id,
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

    async def row(self, seq: int) -> AuditRow | None:
        """The row at `seq`, if the log has it."""
        record = await self.db.pool.fetchrow(
            f"SELECT {_COLUMNS} FROM audit_log WHERE seq = $1",  # noqa: S608 - constant columns
            seq,
        )
        return _row(record) if record is not None else None

    async def verify(
        self, checkpoints: Sequence[ChainCheckpointed] = (), batch: int = 1000
    ) -> Verification:
        """Walk the whole chain in seq order, `batch` rows per query, up to the chain head as it
        was when the walk began, and stop at the first break; then check `checkpoints` (taken
        before this call) against the log. The first break by seq is reported.

        The head is read first: rows up to its seq were committed with it or before it, so rows
        appended during the walk neither hide a break nor look like one; and every checkpoint
        taken before was made of a head at or below it.
        """
        keyring = self.keyring()
        head = await self.db.pool.fetchrow("SELECT seq, hash FROM chain_head")
        if head is None:
            raise RuntimeError("the audit chain head is missing: migrations not applied?")
        walker = ChainWalker(keyring)
        walked = await self._walk(walker, head["seq"], batch)
        if walked is None:
            walked = walker.finish(head["seq"], bytes(head["hash"]))
        stored = {
            record["seq"]: bytes(record["hash"])
            for record in await self.db.pool.fetch(
                "SELECT seq, hash FROM audit_log WHERE seq = ANY($1::bigint[])",
                sorted({c.seq for c in checkpoints}),
            )
        }
        pinned = check_checkpoints(checkpoints, keyring, stored)
        rows = walker.rows
        first = walked
        if pinned is not None and (first is None or pinned.seq < first.seq):
            first, rows = pinned, min(rows, pinned.seq - 1)
        return Verification(
            ok=first is None,
            rows=rows,
            first_broken=first,
            keyed_from=keyring.keyed_from,
            checkpoints=len(checkpoints),
            last_checkpoint=max((c.seq for c in checkpoints), default=None),
        )

    async def _walk(self, walker: ChainWalker, up_to: int, batch: int) -> Break | None:
        after = 0
        while True:
            records = await self.db.pool.fetch(
                f"SELECT {_COLUMNS} FROM audit_log WHERE seq > $1 AND seq <= $2 "  # noqa: S608
                "ORDER BY seq LIMIT $3",
                after,
                up_to,
                batch,
            )
            for record in records:
                broken = walker.check(_row(record))
                if broken is not None:
                    return broken
            if len(records) < batch:
                return None
            after = records[-1]["seq"]
