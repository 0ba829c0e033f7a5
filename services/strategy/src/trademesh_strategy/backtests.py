"""Backtests as a service: requests, their store, the function a worker process runs, the workers.

A submitted backtest is a row of `backtests` (QUEUED). The service's BacktestWorker claims rows
(`FOR UPDATE SKIP LOCKED`, so replicas share the queue), fetches the bars once from market-data's
history API and runs trademesh_trading's Backtester in a process of its pool (a backtest is CPU
work: in the service's event loop it would stall the bots). A grid search is N rows with one
grid_id, inserted together; the worker runs up to `backtest_workers` rows at a time, so a grid's
combinations run in parallel across the processes.

Who owns a running row: each claim increments `attempts`, and every later write (heartbeat,
result, retry) names the attempt it belongs to; a worker whose row was taken over (its heartbeat
went stale) writes nothing. A row RUNNING with a heartbeat older than STALE_AFTER_S has lost its
worker (crash, kill, or an interrupted shutdown) and is claimed again. After MAX_ATTEMPTS claims
a backtest is FAILED rather than tried forever.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import multiprocessing
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from multiprocessing.process import BaseProcess
from typing import Any, Literal, Self
from uuid import UUID, uuid4

import asyncpg
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from trademesh_db import Database
from trademesh_events.ids import InstrumentId
from trademesh_events.marketdata import Bar
from trademesh_events.money import Amount, MoneyAmount
from trademesh_observability import metrics
from trademesh_observability.logging import get_logger
from trademesh_trading.backtest import Backtester, BacktestResult, Sizing
from trademesh_trading.buying_power import AccountTerms, MarginMode
from trademesh_trading.currencies import money_in, quote_currency
from trademesh_trading.fills import FillModel
from trademesh_trading.registry import StrategyRegistry, UnknownStrategy
from trademesh_trading.results import json_number, stats_data, trade_data
from trademesh_trading.strategy import Strategy
from trademesh_trading.timeframes import Timeframe

from trademesh_strategy.config import Settings
from trademesh_strategy.history import MarketData, MarketDataUnavailable, NoMarketData

log = get_logger("trademesh_strategy.backtests")

HEARTBEAT_INTERVAL_S = 10.0
"""How often a worker marks a running backtest as alive."""
STALE_AFTER_S = 60.0
"""A RUNNING backtest whose heartbeat is older than this has lost its worker: it is claimed again."""
MAX_ATTEMPTS = 5
"""Claims of one backtest before it is FAILED (market data unavailable, worker lost)."""
RETRY_BASE_S = 5.0
"""A backtest put back after an attempt waits RETRY_BASE_S * 2**(attempts-1) s (at most 5 min)."""
BARS_CACHE_TTL_S = 300.0
"""How long fetched bars are reused for backtests of the same instrument, timeframe and range."""
BARS_CACHE_ENTRIES = 8


class BacktestStatus(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


RankBy = Literal[
    "total_return",
    "annual_return",
    "sharpe",
    "sortino",
    "max_drawdown",
    "win_rate",
    "profit_factor",
]
ASCENDING: frozenset[str] = frozenset({"max_drawdown"})
"""Statistics where smaller is better; the others rank descending."""


# ---- requests ---------------------------------------------------------------------------------


class BacktestRequest(BaseModel):
    """One backtest: a strategy with its parameters over stored bars of one instrument.

    Its owner is the caller (never the body: unknown fields are refused). Naive datetimes are
    UTC. Money is Decimal; slippage and fees are basis points of the traded notional."""

    model_config = ConfigDict(extra="forbid")

    strategy: str = Field(min_length=1, max_length=100, description="See GET /strategies.")
    params: dict[str, Any] = Field(
        default_factory=dict, description="The strategy's parameters (its JSON Schema)."
    )
    instrument_id: InstrumentId
    timeframe: str = Field(description="Bar length, e.g. 1m, 1h, 1d.")
    start: datetime = Field(description="First bar opening at or after this (UTC if naive).")
    end: datetime = Field(description="Bars opening before this (UTC if naive); after start.")
    cash: MoneyAmount = Field(
        Decimal(10_000), gt=0, max_digits=20, decimal_places=8, description="Starting cash."
    )
    sizing: Sizing = Field(
        default_factory=Sizing,
        description="How much one entry buys: quantity, notional, or equity_pct (default: all "
        "the equity), rounded down to `step` (default 1: whole units; 0.0001 for fractions of "
        "a crypto asset).",
    )
    slippage_bps: Amount = Field(
        Decimal(0), ge=0, le=10_000, description="Market and stop fills move this much against."
    )
    fee_bps: Amount = Field(Decimal(0), ge=0, le=10_000, description="Fee on filled notional.")
    margin_mode: MarginMode = Field(
        MarginMode.CASH,
        description="The account's buying power: `cash` borrows nothing, `margin` reaches "
        "max_leverage x equity. Orders and fills over it are refused and counted.",
    )
    max_leverage: Amount = Field(Decimal(1), ge=1, le=100, description="Margin accounts only.")
    allow_short: bool = Field(False, description="Whether sells may go below zero (shorts).")

    @field_validator("timeframe")
    @classmethod
    def _timeframe(cls, value: str) -> str:
        return Timeframe.parse(value).label

    @field_validator("start", "end")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @model_validator(mode="after")
    def _range(self) -> Self:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if self.margin_mode is MarginMode.CASH and self.max_leverage != 1:
            raise ValueError("a cash account borrows nothing: its max_leverage is 1")
        return self


class GridRequest(BacktestRequest):
    """A grid search: the backtest of every combination of the `grid` values, each on top of
    `params`, ranked by one statistic once they have run."""

    grid: dict[str, list[Any]] = Field(
        min_length=1,
        description="Parameter name -> the values to try (at least one each); the cartesian "
        "product of these lists, on top of `params`, is the set of backtests.",
    )
    rank_by: RankBy = Field(
        "sharpe",
        description="The statistic that ranks the results: max_drawdown ascending, the others "
        "descending; NaN or infinite values rank last.",
    )

    @field_validator("grid")
    @classmethod
    def _values(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for name, values in grid.items():
            if not name:
                raise ValueError("a grid parameter needs a name")
            if not values:
                raise ValueError(f"grid parameter {name!r} has no values")
        return grid

    def base(self) -> BacktestRequest:
        """The backtest this grid varies (its `params` are the base of every combination)."""
        return BacktestRequest.model_validate(self.model_dump(exclude={"grid", "rank_by"}))


class GridTooLarge(ValueError):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"the grid has {size} combinations; at most {limit} are allowed")
        self.size = size
        self.limit = limit


def grid_size(grid: Mapping[str, Sequence[Any]]) -> int:
    """The number of combinations, without making them."""
    return math.prod(len(values) for values in grid.values())


def expand_grid(
    base: Mapping[str, Any], grid: Mapping[str, Sequence[Any]], *, limit: int
) -> list[dict[str, Any]]:
    """Every combination of the grid's values over `base`, the first parameter varying slowest.
    Raises GridTooLarge before making anything when there are more than `limit`."""
    size = grid_size(grid)
    if size > limit:
        raise GridTooLarge(size, limit)
    names = list(grid)
    return [
        {**base, **dict(zip(names, values, strict=True))}
        for values in itertools.product(*(grid[name] for name in names))
    ]


# ---- the worker process's function ------------------------------------------------------------


def run_backtest(
    request: Mapping[str, Any],
    bars: Sequence[Bar],
    strategy: type[Strategy[Any]] | None = None,
) -> dict[str, Any]:
    """Run one backtest and return its result as plain data: the worker pool's job.

    Pure (no I/O, no clock) and picklable in and out, so that it runs in a spawned process.
    `request` is a BacktestRequest as JSON data; the strategy is built through a
    StrategyRegistry: of `strategy` (the class the service's registry resolved, so a strategy
    known to the service is the one that runs) or, without it, of the installed strategies.
    A strategy's exception propagates (the worker records it as the backtest's error)."""
    spec = BacktestRequest.model_validate(request)
    registry = StrategyRegistry(load_entry_points=strategy is None)
    if strategy is not None:
        registry.register(strategy)
    instance = registry.create(spec.strategy, spec.params)
    backtester = Backtester(
        instance,
        instrument_id=spec.instrument_id,
        timeframe=spec.timeframe,
        cash=spec.cash,
        fill_model=FillModel(slippage_bps=spec.slippage_bps, fee_bps=spec.fee_bps),
        sizing=spec.sizing,
        terms=AccountTerms(spec.margin_mode, spec.max_leverage, spec.allow_short),
    )
    return result_data(backtester.run(bars), bars, quote_currency(spec.instrument_id))


def result_data(
    result: BacktestResult, bars: Sequence[Bar], currency: str | None
) -> dict[str, Any]:
    """A BacktestResult of `bars` as plain data (trademesh_trading.results): statistics as floats
    (the duration in seconds, the final equity a decimal string), trades and the equity curve
    with decimal strings and ISO times, and the bars it covered (their number, the open times of
    the first and the last). Money (equity, PnL, fees) is at the places of `currency`, the
    instrument's quote currency (trademesh_trading.currencies: USD 2, a crypto asset 8)."""
    return {
        "stats": stats_data(result.stats, currency),
        "trades": [trade_data(trade, currency) for trade in result.trades],
        "equity": [
            [moment.isoformat(), money_in(value, currency)] for moment, value in result.equity
        ],
        "bars": len(bars),
        "first_bar_at": bars[0].open_time.isoformat(),
        "last_bar_at": bars[-1].open_time.isoformat(),
    }


@dataclass(frozen=True)
class EncodedResult:
    """A result as the JSON texts stored: made in the worker process, so that the service's
    event loop neither serialises nor unpickles an equity curve of millions of points."""

    stats: str
    trades: str
    equity: str
    bars: int
    first_bar_at: datetime
    last_bar_at: datetime


def encode_result(data: Mapping[str, Any]) -> EncodedResult:
    """`run_backtest`'s plain data as the JSON stored: jsonb has no NaN or Infinity, so
    non-finite statistics are the strings float() and pydantic read back (json_number)."""
    stats = {name: json_number(value) for name, value in data["stats"].items()}
    return EncodedResult(
        stats=json.dumps(stats, allow_nan=False),
        trades=json.dumps(data["trades"], allow_nan=False),
        equity=json.dumps(data["equity"], allow_nan=False),
        bars=int(data["bars"]),
        first_bar_at=datetime.fromisoformat(data["first_bar_at"]),
        last_bar_at=datetime.fromisoformat(data["last_bar_at"]),
    )


def run_backtest_encoded(
    request: Mapping[str, Any],
    bars: Sequence[Bar],
    strategy: type[Strategy[Any]] | None = None,
) -> EncodedResult:
    """The worker pool's job: `run_backtest`, its result encoded in the worker process."""
    return encode_result(run_backtest(request, bars, strategy))


def describe_error(exc: BaseException) -> str:
    """`Type: message`, the error text of a backtest whose strategy raised."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# ---- ranking ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GridEntry:
    """One backtest of a grid, without its trades and equity curve."""

    backtest_id: UUID
    params: dict[str, Any]
    status: BacktestStatus
    stats: dict[str, Any] | None
    error: str | None


def stat_value(stats: Mapping[str, Any], name: str) -> float:
    """A statistic as a float; stored non-finite values are the strings NaN/Infinity."""
    value = stats.get(name)
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def rank(entries: Sequence[GridEntry], rank_by: RankBy) -> list[GridEntry]:
    """The SUCCEEDED entries, best first: `max_drawdown` ascending, the others descending. A
    NaN or infinite value cannot be compared with the others (a profit factor without a losing
    trade is infinite) and ranks last; ties keep the grid's order."""
    done = [e for e in entries if e.status is BacktestStatus.SUCCEEDED and e.stats is not None]
    sign = 1.0 if rank_by in ASCENDING else -1.0

    def key(entry: GridEntry) -> tuple[bool, float]:
        assert entry.stats is not None
        value = stat_value(entry.stats, rank_by)
        finite = math.isfinite(value)
        return (not finite, sign * value if finite else 0.0)

    return sorted(done, key=key)  # sorted is stable: ties stay in the grid's order


# ---- the store ----------------------------------------------------------------------------------


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


# ---- the workers --------------------------------------------------------------------------------

BarsKey = tuple[str, str, datetime, datetime]


class BarsCache:
    """Bars fetched for a backtest, reused by the others of the same instrument, timeframe and
    range (a grid's combinations): one fetch, shared by concurrent askers too.

    Bounded: at most `max_entries` ranges and `max_bars` bars in all (the most recently used
    range always stays), each for at most `ttl_s` seconds (a range that reaches into the
    present gains bars)."""

    def __init__(
        self,
        *,
        max_bars: int,
        max_entries: int = BARS_CACHE_ENTRIES,
        ttl_s: float = BARS_CACHE_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_bars = max_bars
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self._clock = clock
        self._entries: OrderedDict[BarsKey, tuple[float, asyncio.Task[list[Bar]]]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: BarsKey, fetch: Callable[[], Awaitable[list[Bar]]]) -> list[Bar]:
        self.prune()
        entry = self._entries.get(key)
        if entry is None:
            entry = (self._clock(), asyncio.ensure_future(fetch()))
            self._entries[key] = entry
        self._entries.move_to_end(key)
        task = entry[1]
        try:
            # Shielded: one asker cancelled (its worker stopping) leaves the fetch to the others.
            bars = await asyncio.shield(task)
        except BaseException:
            if task.done() and self._entries.get(key) is entry:
                del self._entries[key]  # a failed fetch is not kept: the next asker retries
            raise
        self.prune()
        return bars

    def prune(self) -> None:
        """Drop expired ranges, then the least recently used ones beyond the bounds."""
        now = self._clock()
        for key, (fetched, task) in list(self._entries.items()):
            if task.done() and now - fetched > self.ttl_s:
                del self._entries[key]
        while len(self._entries) > 1:
            held = sum(
                len(task.result())
                for _, task in self._entries.values()
                if task.done() and not task.cancelled() and task.exception() is None
            )
            if len(self._entries) <= self.max_entries and held <= self.max_bars:
                return
            oldest = next(iter(self._entries))
            fetched, task = self._entries.pop(oldest)
            if not task.done():  # still wanted by someone awaiting it: keep it, drop no more
                self._entries[oldest] = (fetched, task)
                self._entries.move_to_end(oldest, last=False)
                return

    def clear(self) -> None:
        for _, task in self._entries.values():
            task.cancel()
        self._entries.clear()


class BacktestWorker:
    """Runs queued backtests: up to `settings.backtest_workers` at a time, each in a process of
    a spawn pool of that size (spawned, not forked: the service process has threads).

    For each claimed backtest: its bars are fetched once (BarsCache), the backtest runs in the
    pool while the row's heartbeat is kept fresh, and the result or the error is stored. Market
    data unavailable, or a worker process that died, puts it back QUEUED (FAILED after
    MAX_ATTEMPTS claims); anything the strategy raises FAILs it with `Type: message`.

    Shutdown (`stop` set): nothing new is claimed, the pool is shut down and its processes
    stopped. A backtest interrupted that way stays RUNNING; as its heartbeat stops, it goes
    stale after STALE_AFTER_S and the next worker (this service restarted, or another replica)
    claims and runs it again from the start."""

    def __init__(
        self,
        *,
        db: Database,
        store: BacktestStore,
        market: MarketData,
        registry: StrategyRegistry,
        settings: Settings,
        service: str,
    ) -> None:
        self.db = db  # the store's database; the worker's SQL goes through the store
        self.store = store
        self.market = market
        self.registry = registry
        self.service = service
        self.slots = settings.backtest_workers
        self.max_bars = settings.backtest_max_bars
        self.poll_interval_s = settings.backtest_poll_interval_s
        self.bars = BarsCache(max_bars=settings.backtest_max_bars)
        self._pool: ProcessPoolExecutor | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and run backtests until `stop` is set; poll every backtest_poll_interval_s while
        there is nothing to do (a finished backtest frees its slot for a claim at once)."""
        active: set[asyncio.Task[None]] = set()
        freed = asyncio.Event()

        def finished(task: asyncio.Task[None]) -> None:
            active.discard(task)
            freed.set()

        log.info("backtest workers started", workers=self.slots)
        try:
            while not stop.is_set():
                freed.clear()
                job = await self._claim() if len(active) < self.slots else None
                if job is not None:
                    task = asyncio.create_task(
                        self._process(job), name=f"backtest-{job.backtest_id}"
                    )
                    active.add(task)
                    task.add_done_callback(finished)
                    continue  # there may be more waiting: fill the free slots first
                self.bars.prune()
                await _first_of(stop, freed, timeout=self.poll_interval_s)
        finally:
            interrupted = list(active)
            for task in interrupted:
                task.cancel()
            await asyncio.gather(*interrupted, return_exceptions=True)
            self.bars.clear()
            await self._stop_pool()
            log.info("backtest workers stopped", interrupted=len(interrupted))

    async def _claim(self) -> ClaimedBacktest | None:
        try:
            return await self.store.claim()
        except Exception:  # Postgres away: the loop polls again rather than dying
            log.warning("claiming a backtest failed", exc_info=True)
            return None

    async def _process(self, job: ClaimedBacktest) -> None:
        beat = asyncio.create_task(self._heartbeat(job))
        try:
            await self._execute(job)
        except Exception:
            # A storage error: the row stays RUNNING and is claimed again once stale.
            log.exception("backtest could not be recorded", backtest_id=str(job.backtest_id))
        finally:
            beat.cancel()
            await asyncio.gather(beat, return_exceptions=True)

    async def _heartbeat(self, job: ClaimedBacktest) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_INTERVAL_S)
            try:
                if not await self.store.heartbeat(job.backtest_id, job.attempts):
                    log.warning("backtest taken over", backtest_id=str(job.backtest_id))
                    return
            except Exception:
                log.warning("backtest heartbeat failed", exc_info=True)

    async def _execute(self, job: ClaimedBacktest) -> None:
        if job.attempts > MAX_ATTEMPTS:
            await self._fail(job, f"gave up after {MAX_ATTEMPTS} attempts: its worker was lost")
            return
        try:
            spec = BacktestRequest.model_validate(job.request)
        except ValidationError as exc:
            await self._fail(job, f"invalid request: {exc.error_count()} errors")
            return
        key: BarsKey = (spec.instrument_id, spec.timeframe, spec.start, spec.end)
        try:
            bars = await self.bars.get(
                key,
                lambda: self.market.bars(spec.instrument_id, spec.timeframe, spec.start, spec.end),
            )
        except MarketDataUnavailable as exc:
            await self._retry(job, f"market data unavailable: {exc}")
            return
        except NoMarketData as exc:
            await self._fail(job, f"no market data: {exc}")
            return
        except Exception as exc:  # an answer market-data should not give: try again later
            await self._retry(job, f"fetching the bars failed: {describe_error(exc)}")
            return
        if not bars:
            await self._fail(job, "no bars in the range", bars=0)
            return
        if len(bars) > self.max_bars:
            await self._fail(
                job, f"{len(bars)} bars in the range, more than {self.max_bars}", bars=len(bars)
            )
            return
        try:
            strategy = self.registry.get(spec.strategy)
        except UnknownStrategy as exc:
            await self._fail(job, describe_error(exc), bars=len(bars))
            return
        started = time.perf_counter()
        try:
            result = await asyncio.wrap_future(
                self._executor().submit(run_backtest_encoded, job.request, bars, strategy)
            )
        except BrokenProcessPool as exc:
            self._replace_broken_pool()
            await self._retry(job, f"its worker process died: {exc}")
            return
        except Exception as exc:
            self._observe(started)
            log.info("backtest strategy failed", backtest_id=str(job.backtest_id), exc_info=True)
            await self._fail(job, describe_error(exc), bars=len(bars))
            return
        seconds = self._observe(started)
        if await self.store.succeed(job.backtest_id, job.attempts, result):
            metrics.STRATEGY_BACKTESTS.labels(service=self.service, status="SUCCEEDED").inc()
            log.info(
                "backtest succeeded",
                backtest_id=str(job.backtest_id),
                bars=len(bars),
                seconds=round(seconds, 3),
            )

    def _observe(self, started: float) -> float:
        seconds = time.perf_counter() - started
        metrics.STRATEGY_BACKTEST_SECONDS.labels(service=self.service).observe(seconds)
        return seconds

    async def _fail(self, job: ClaimedBacktest, error: str, *, bars: int | None = None) -> None:
        if await self.store.fail(job.backtest_id, job.attempts, error, bars=bars):
            metrics.STRATEGY_BACKTESTS.labels(service=self.service, status="FAILED").inc()
            log.info("backtest failed", backtest_id=str(job.backtest_id), error=error)

    async def _retry(self, job: ClaimedBacktest, error: str) -> None:
        if job.attempts >= MAX_ATTEMPTS:
            await self._fail(job, f"{error} (after {job.attempts} attempts)")
            return
        await self.store.requeue(job.backtest_id, job.attempts, error)
        log.warning("backtest put back", backtest_id=str(job.backtest_id), error=error)

    def pool(self) -> ProcessPoolExecutor:
        """The worker processes, for other CPU work of the service (an optimisation's trials):
        it queues behind and beside the backtests."""
        return self._executor()

    def replace_broken_pool(self) -> None:
        """After a BrokenProcessPool seen by other work than the backtests."""
        self._replace_broken_pool()

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.slots, mp_context=multiprocessing.get_context("spawn")
            )
        return self._pool

    def _replace_broken_pool(self) -> None:
        """A process of the pool died (killed, out of memory): the pool refuses new work, so the
        next backtest gets a fresh one. Every backtest that was in it is put back."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    async def _stop_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        # Python 3.11 has no public way to stop busy workers (3.14 adds terminate_workers());
        # the processes are read before shutdown(), which forgets them.
        processes: list[BaseProcess] = list((pool._processes or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            if process.is_alive():
                process.terminate()
        await asyncio.to_thread(_join, processes, 10.0)


def _join(processes: Sequence[BaseProcess], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for process in processes:
        process.join(max(deadline - time.monotonic(), 0.0))
        if process.is_alive():
            process.kill()
            process.join(1.0)


async def _first_of(*events: asyncio.Event, timeout: float) -> None:
    """Wait until one of `events` is set, or `timeout` seconds."""
    waiters = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
