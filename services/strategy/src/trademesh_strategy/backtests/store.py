"""The service's `backtests` and `backtest_grids` tables: submissions, results, and the
workers' claims."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg
from trademesh_db import Database

from trademesh_strategy.backtests.grid import GridEntry, rank
from trademesh_strategy.backtests.jobs import RETRY_BASE_S, STALE_AFTER_S, BacktestStatus
from trademesh_strategy.backtests.requests import BacktestRequest, GridRequest, RankBy
from trademesh_strategy.backtests.results import EncodedResult


@dataclass(frozen=True)
class BacktestRecord:
    """A backtest's row without its trades and equity curve (those are read on their own)."""

    backtest_id: UUID
    user_id: UUID
    grid_id: UUID | None
    request: dict[str, Any]
    status: BacktestStatus
    error: str | None
    stats: dict[str, Any] | None
    bars: int | None
    first_bar_at: datetime | None  # the open times of the first and last bar it ran over
    last_bar_at: datetime | None
    attempts: int
    heartbeat_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


def _record(row: asyncpg.Record) -> BacktestRecord:
    return BacktestRecord(
        backtest_id=row["backtest_id"],
        user_id=row["user_id"],
        grid_id=row["grid_id"],
        request=json.loads(row["request"]),
        status=BacktestStatus(row["status"]),
        error=row["error"],
        stats=None if row["stats"] is None else json.loads(row["stats"]),
        bars=row["bars"],
        first_bar_at=row["first_bar_at"],
        last_bar_at=row["last_bar_at"],
        attempts=row["attempts"],
        heartbeat_at=row["heartbeat_at"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
    )


@dataclass(frozen=True)
class GridRecord:
    grid_id: UUID
    user_id: UUID
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


class BacktestStore:
    """The service's `backtests` and `backtest_grids` tables."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def insert(self, user_id: UUID, request: BacktestRequest) -> BacktestRecord:
        """A new QUEUED backtest of `user_id`."""
        row = await self.db.pool.fetchrow(
            "INSERT INTO backtests (backtest_id, user_id, request, status) "
            "VALUES ($1, $2, $3::jsonb, 'QUEUED') "
            "RETURNING backtest_id, user_id, grid_id, request, status, error, stats, bars, "
            "first_bar_at, last_bar_at, attempts, heartbeat_at, created_at, started_at, finished_at",
            uuid4(),
            user_id,
            request.model_dump_json(),
        )
        assert row is not None
        return _record(row)

    async def insert_grid(
        self, user_id: UUID, grid: GridRequest, backtests: Sequence[BacktestRequest]
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

    async def get(self, backtest_id: UUID) -> BacktestRecord | None:
        row = await self.db.pool.fetchrow(
            "SELECT backtest_id, user_id, grid_id, request, status, error, stats, bars, "
            "first_bar_at, last_bar_at, attempts, heartbeat_at, created_at, started_at, finished_at FROM backtests "
            "WHERE backtest_id = $1",
            backtest_id,
        )
        return None if row is None else _record(row)

    async def page(
        self, user_id: UUID, before: tuple[datetime, UUID] | None, limit: int
    ) -> list[BacktestRecord]:
        """A user's backtests, newest first, after the keyset position `before`."""
        if before is None:
            rows = await self.db.pool.fetch(
                "SELECT backtest_id, user_id, grid_id, request, status, error, stats, bars, "
                "first_bar_at, last_bar_at, attempts, heartbeat_at, created_at, started_at, "
                "finished_at FROM backtests "
                "WHERE user_id = $1 ORDER BY created_at DESC, backtest_id DESC LIMIT $2",
                user_id,
                limit,
            )
        else:
            rows = await self.db.pool.fetch(
                "SELECT backtest_id, user_id, grid_id, request, status, error, stats, bars, "
                "first_bar_at, last_bar_at, attempts, heartbeat_at, created_at, started_at, "
                "finished_at FROM backtests "
                "WHERE user_id = $1 AND (created_at, backtest_id) < ($2, $3) "
                "ORDER BY created_at DESC, backtest_id DESC LIMIT $4",
                user_id,
                before[0],
                before[1],
                limit,
            )
        return [_record(row) for row in rows]

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
        """Take the oldest runnable backtest, if any, and mark it RUNNING under a new attempt.

        Runnable: QUEUED (a put-back one once its retry delay has passed), or RUNNING with a
        heartbeat older than `stale_after_s` (its worker is gone). SKIP LOCKED: concurrent
        claims (other slots, other replicas) take different rows and never wait on each other."""
        row = await self.db.pool.fetchrow(
            "UPDATE backtests SET status = 'RUNNING', attempts = attempts + 1, "
            "heartbeat_at = now(), started_at = now() "
            "WHERE backtest_id = ("
            "  SELECT backtest_id FROM backtests"
            "  WHERE (status = 'QUEUED' AND (heartbeat_at IS NULL OR heartbeat_at <= now() - "
            "    make_interval(secs => least($2 * power(2, greatest(attempts - 1, 0)), 300))))"
            "  OR (status = 'RUNNING' AND heartbeat_at < now() - make_interval(secs => $1))"
            "  ORDER BY created_at, backtest_id LIMIT 1 FOR UPDATE SKIP LOCKED"
            ") RETURNING backtest_id, request, attempts",
            stale_after_s,
            RETRY_BASE_S,
        )
        if row is None:
            return None
        return ClaimedBacktest(row["backtest_id"], json.loads(row["request"]), row["attempts"])

    async def heartbeat(self, backtest_id: UUID, attempt: int) -> bool:
        """Mark the claim `attempt` alive; False when it is no longer this attempt's."""
        result = await self.db.pool.execute(
            "UPDATE backtests SET heartbeat_at = now() "
            "WHERE backtest_id = $1 AND status = 'RUNNING' AND attempts = $2",
            backtest_id,
            attempt,
        )
        return bool(result == "UPDATE 1")

    async def succeed(self, backtest_id: UUID, attempt: int, result: EncodedResult) -> bool:
        """Store a backtest's result (SUCCEEDED); False when the claim was lost."""
        outcome = await self.db.pool.execute(
            "UPDATE backtests SET status = 'SUCCEEDED', error = NULL, stats = $3::jsonb, "
            "trades = $4::jsonb, equity = $5::jsonb, bars = $6, first_bar_at = $7, "
            "last_bar_at = $8, finished_at = now(), heartbeat_at = now() "
            "WHERE backtest_id = $1 AND status = 'RUNNING' AND attempts = $2",
            backtest_id,
            attempt,
            result.stats,
            result.trades,
            result.equity,
            result.bars,
            result.first_bar_at,
            result.last_bar_at,
        )
        return bool(outcome == "UPDATE 1")

    async def fail(
        self, backtest_id: UUID, attempt: int, error: str, *, bars: int | None = None
    ) -> bool:
        """FAILED with `error`; False when the claim was lost."""
        outcome = await self.db.pool.execute(
            "UPDATE backtests SET status = 'FAILED', error = $3, bars = $4, "
            "finished_at = now(), heartbeat_at = now() "
            "WHERE backtest_id = $1 AND status = 'RUNNING' AND attempts = $2",
            backtest_id,
            attempt,
            error,
            bars,
        )
        return bool(outcome == "UPDATE 1")

    async def requeue(self, backtest_id: UUID, attempt: int, error: str) -> bool:
        """Back to QUEUED after a transient failure, to be claimed again after the retry delay
        (counted from heartbeat_at, the end of this attempt); `error` says why, meanwhile."""
        outcome = await self.db.pool.execute(
            "UPDATE backtests SET status = 'QUEUED', error = $3, heartbeat_at = now() "
            "WHERE backtest_id = $1 AND status = 'RUNNING' AND attempts = $2",
            backtest_id,
            attempt,
            error,
        )
        return bool(outcome == "UPDATE 1")
