"""The service's `backtests` and `backtest_grids` tables: submissions, results, and the
workers' claims; and what every table of queued jobs shares (JobTable, JobRecord), which the
optimisations' table is built on too."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Generic, TypeVar
from uuid import UUID, uuid4

import asyncpg
from trademesh_db import Database
from trademesh_events.ids import UserId

from trademesh_strategy.backtests.grid import GridEntry, rank
from trademesh_strategy.backtests.jobs import RETRY_BASE_S, STALE_AFTER_S, BacktestStatus
from trademesh_strategy.backtests.requests import BacktestRequest, GridRequest, RankBy
from trademesh_strategy.backtests.results import EncodedResult

JOB_COLUMNS = (
    "user_id, request, status, error, attempts, heartbeat_at, created_at, started_at, finished_at"
)
"""The columns every table of queued jobs has: what JobRecord holds."""


@dataclass(frozen=True, kw_only=True)
class JobRecord:
    """What every queued job's row says: whose it is, what was asked, where it stands."""

    user_id: UserId
    request: dict[str, Any]
    status: BacktestStatus
    error: str | None
    attempts: int
    heartbeat_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


def job_fields(row: asyncpg.Record) -> dict[str, Any]:
    """JobRecord's fields of a row that has JOB_COLUMNS, for a record built on it."""
    return {
        "user_id": row["user_id"],
        "request": json.loads(row["request"]),
        "status": BacktestStatus(row["status"]),
        "error": row["error"],
        "attempts": row["attempts"],
        "heartbeat_at": row["heartbeat_at"],
        "created_at": row["created_at"],
        "started_at": row["started_at"],
        "finished_at": row["finished_at"],
    }


RecordT = TypeVar("RecordT", bound=JobRecord)


class JobTable(ABC, Generic[RecordT]):
    """A table of queued jobs (backtests, optimisations) and its claims. A worker claims a row
    under a new attempt (`attempts`), and every later write names that attempt: a worker whose
    row was taken over writes nothing (jobs.py has the rules' figures).

    A table names itself, its id column and the columns its records read; the table and column
    names are constants of the code, never input."""

    table: ClassVar[str]
    key: ClassVar[str]
    columns: ClassVar[str]

    def __init__(self, db: Database) -> None:
        self.db = db

    @abstractmethod
    def _record(self, row: asyncpg.Record) -> RecordT:
        """The table's record of a row with `columns`."""

    async def get(self, job_id: UUID) -> RecordT | None:
        row = await self.db.pool.fetchrow(
            f"SELECT {self.columns} FROM {self.table} WHERE {self.key} = $1",  # noqa: S608 - constant names
            job_id,
        )
        return None if row is None else self._record(row)

    async def _claim(self, stale_after_s: float) -> tuple[UUID, dict[str, Any], int] | None:
        """Take the oldest runnable row, if any, and mark it RUNNING under a new attempt: its
        id, request and attempt.

        Runnable: QUEUED (a put-back one once its retry delay has passed), or RUNNING with a
        heartbeat older than `stale_after_s` (its worker is gone). SKIP LOCKED: concurrent
        claims (other slots, other replicas) take different rows and never wait on each other."""
        row = await self.db.pool.fetchrow(
            f"UPDATE {self.table} SET status = 'RUNNING', attempts = attempts + 1, "  # noqa: S608 - constant names
            "heartbeat_at = now(), started_at = now() "
            f"WHERE {self.key} = ("
            f"  SELECT {self.key} FROM {self.table}"
            "  WHERE (status = 'QUEUED' AND (heartbeat_at IS NULL OR heartbeat_at <= now() - "
            "    make_interval(secs => least($2 * power(2, greatest(attempts - 1, 0)), 300))))"
            "  OR (status = 'RUNNING' AND heartbeat_at < now() - make_interval(secs => $1))"
            f"  ORDER BY created_at, {self.key} LIMIT 1 FOR UPDATE SKIP LOCKED"
            f") RETURNING {self.key}, request, attempts",
            stale_after_s,
            RETRY_BASE_S,
        )
        if row is None:
            return None
        return row[self.key], json.loads(row["request"]), row["attempts"]

    async def _owned(self, job_id: UUID, attempt: int, changes: str, *values: Any) -> bool:
        """Apply `changes` (a SET list whose values are $3 onwards) to the row while the claim
        `attempt` still owns it; False when it no longer does."""
        outcome = await self.db.pool.execute(
            f"UPDATE {self.table} SET {changes} "  # noqa: S608 - constant names and changes
            f"WHERE {self.key} = $1 AND status = 'RUNNING' AND attempts = $2",
            job_id,
            attempt,
            *values,
        )
        return bool(outcome == "UPDATE 1")

    async def requeue(self, job_id: UUID, attempt: int, error: str) -> bool:
        """Back to QUEUED after a transient failure, to be claimed again after the retry delay
        (counted from heartbeat_at, the end of this attempt); `error` says why, meanwhile."""
        return await self._owned(
            job_id, attempt, "status = 'QUEUED', error = $3, heartbeat_at = now()", error
        )


@dataclass(frozen=True, kw_only=True)
class BacktestRecord(JobRecord):
    """A backtest's row without its trades and equity curve (those are read on their own)."""

    backtest_id: UUID
    grid_id: UUID | None
    stats: dict[str, Any] | None
    bars: int | None
    first_bar_at: datetime | None  # the open times of the first and last bar it ran over
    last_bar_at: datetime | None


@dataclass(frozen=True)
class GridRecord:
    grid_id: UUID
    user_id: UserId
    request: dict[str, Any]
    rank_by: RankBy
    created_at: datetime


@dataclass(frozen=True)
class GridSummary:
    """Where a grid stands: its backtests counted by status, and the results so far."""

    grid: GridRecord
    counts: dict[BacktestStatus, int]
    ranking: list[GridEntry]  # SUCCEEDED, best first
    failed: list[GridEntry]  # in the grid's order

    @property
    def combinations(self) -> int:
        return sum(self.counts.values())

    @property
    def done(self) -> bool:
        return self.counts[BacktestStatus.QUEUED] + self.counts[BacktestStatus.RUNNING] == 0


@dataclass(frozen=True)
class ClaimedBacktest:
    """A backtest a worker has claimed; `attempts` (this claim's number) is its ownership."""

    backtest_id: UUID
    request: dict[str, Any]
    attempts: int


class BacktestStore(JobTable[BacktestRecord]):
    """The service's `backtests` and `backtest_grids` tables."""

    table = "backtests"
    key = "backtest_id"
    columns = f"backtest_id, grid_id, stats, bars, first_bar_at, last_bar_at, {JOB_COLUMNS}"

    def _record(self, row: asyncpg.Record) -> BacktestRecord:
        return BacktestRecord(
            backtest_id=row["backtest_id"],
            grid_id=row["grid_id"],
            stats=None if row["stats"] is None else json.loads(row["stats"]),
            bars=row["bars"],
            first_bar_at=row["first_bar_at"],
            last_bar_at=row["last_bar_at"],
            **job_fields(row),
        )

    async def insert(self, user_id: UserId, request: BacktestRequest) -> BacktestRecord:
        """A new QUEUED backtest of `user_id`."""
        row = await self.db.pool.fetchrow(
            "INSERT INTO backtests (backtest_id, user_id, request, status) "  # noqa: S608 - constant columns
            f"VALUES ($1, $2, $3::jsonb, 'QUEUED') RETURNING {self.columns}",
            uuid4(),
            user_id,
            request.model_dump_json(),
        )
        assert row is not None
        return self._record(row)

    async def insert_grid(
        self, user_id: UserId, grid: GridRequest, backtests: Sequence[BacktestRequest]
    ) -> UUID:
        """The grid and its QUEUED backtests, in one transaction: all of them or nothing. Their
        created_at follow the combinations' order (a microsecond apart), so workers take them
        in that order and pages list them in it."""
        grid_id = uuid4()
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO backtest_grids (grid_id, user_id, request, rank_by) "
                "VALUES ($1, $2, $3::jsonb, $4)",
                grid_id,
                user_id,
                grid.model_dump_json(),
                grid.rank_by,
            )
            await conn.execute(
                "INSERT INTO backtests (backtest_id, user_id, grid_id, request, status, created_at) "
                "SELECT id, $2, $3, body::jsonb, 'QUEUED', "
                "now() + (ord - 1) * interval '1 microsecond' "
                "FROM unnest($1::uuid[], $4::text[]) WITH ORDINALITY AS t (id, body, ord)",
                [uuid4() for _ in backtests],
                user_id,
                grid_id,
                [b.model_dump_json() for b in backtests],
            )
        return grid_id

    async def page(
        self, user_id: UserId, before: tuple[datetime, UUID] | None, limit: int
    ) -> list[BacktestRecord]:
        """A user's backtests, newest first, after the keyset position `before`."""
        if before is None:
            rows = await self.db.pool.fetch(
                f"SELECT {self.columns} FROM backtests "  # noqa: S608 - constant columns
                "WHERE user_id = $1 ORDER BY created_at DESC, backtest_id DESC LIMIT $2",
                user_id,
                limit,
            )
        else:
            rows = await self.db.pool.fetch(
                f"SELECT {self.columns} FROM backtests "  # noqa: S608 - constant columns
                "WHERE user_id = $1 AND (created_at, backtest_id) < ($2, $3) "
                "ORDER BY created_at DESC, backtest_id DESC LIMIT $4",
                user_id,
                before[0],
                before[1],
                limit,
            )
        return [self._record(row) for row in rows]

    async def trades_json(self, backtest_id: UUID) -> str | None:
        """A finished backtest's trades as JSON text, as stored (None before it has them)."""
        text = await self.db.pool.fetchval(
            "SELECT trades::text FROM backtests WHERE backtest_id = $1", backtest_id
        )
        return None if text is None else str(text)

    async def equity_json(self, backtest_id: UUID) -> str | None:
        """A finished backtest's equity curve as JSON text ([[time, equity], ...])."""
        text = await self.db.pool.fetchval(
            "SELECT equity::text FROM backtests WHERE backtest_id = $1", backtest_id
        )
        return None if text is None else str(text)

    async def get_grid(self, grid_id: UUID) -> GridRecord | None:
        row = await self.db.pool.fetchrow(
            "SELECT grid_id, user_id, request, rank_by, created_at FROM backtest_grids "
            "WHERE grid_id = $1",
            grid_id,
        )
        if row is None:
            return None
        return GridRecord(
            grid_id=row["grid_id"],
            user_id=row["user_id"],
            request=json.loads(row["request"]),
            rank_by=row["rank_by"],
            created_at=row["created_at"],
        )

    async def grid_summary(self, grid: GridRecord) -> GridSummary:
        """The grid's backtests counted by status (one snapshot), the SUCCEEDED ones ranked by
        the grid's statistic and the FAILED ones with their errors."""
        rows = await self.db.pool.fetch(
            "SELECT backtest_id, request -> 'params' AS params, status, stats, error "
            "FROM backtests WHERE grid_id = $1 ORDER BY created_at, backtest_id",
            grid.grid_id,
        )
        entries = [
            GridEntry(
                backtest_id=row["backtest_id"],
                params=json.loads(row["params"]),
                status=BacktestStatus(row["status"]),
                stats=None if row["stats"] is None else json.loads(row["stats"]),
                error=row["error"],
            )
            for row in rows
        ]
        counts = dict.fromkeys(BacktestStatus, 0)
        for entry in entries:
            counts[entry.status] += 1
        return GridSummary(
            grid=grid,
            counts=counts,
            ranking=rank(entries, grid.rank_by),
            failed=[e for e in entries if e.status is BacktestStatus.FAILED],
        )

    # ---- the workers' side -------------------------------------------------------------------

    async def claim(self, stale_after_s: float = STALE_AFTER_S) -> ClaimedBacktest | None:
        """Take the oldest runnable backtest, if any, under a new attempt (JobTable._claim)."""
        claimed = await self._claim(stale_after_s)
        return None if claimed is None else ClaimedBacktest(*claimed)

    async def heartbeat(self, backtest_id: UUID, attempt: int) -> bool:
        """Mark the claim `attempt` alive; False when it is no longer this attempt's."""
        return await self._owned(backtest_id, attempt, "heartbeat_at = now()")

    async def succeed(self, backtest_id: UUID, attempt: int, result: EncodedResult) -> bool:
        """Store a backtest's result (SUCCEEDED); False when the claim was lost."""
        return await self._owned(
            backtest_id,
            attempt,
            "status = 'SUCCEEDED', error = NULL, stats = $3::jsonb, trades = $4::jsonb, "
            "equity = $5::jsonb, bars = $6, first_bar_at = $7, last_bar_at = $8, "
            "finished_at = now(), heartbeat_at = now()",
            result.stats,
            result.trades,
            result.equity,
            result.bars,
            result.first_bar_at,
            result.last_bar_at,
        )

    async def fail(
        self, backtest_id: UUID, attempt: int, error: str, *, bars: int | None = None
    ) -> bool:
        """FAILED with `error`; False when the claim was lost."""
        return await self._owned(
            backtest_id,
            attempt,
            "status = 'FAILED', error = $3, bars = $4, finished_at = now(), heartbeat_at = now()",
            error,
            bars,
        )
