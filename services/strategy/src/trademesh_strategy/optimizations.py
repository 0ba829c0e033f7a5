"""Optimisations as a service: the request, its store, and the worker.

A submitted optimisation is a row of `optimizations` (QUEUED), claimed like a backtest (`FOR
UPDATE SKIP LOCKED`, a heartbeat, reclaimed once stale, FAILED after MAX_ATTEMPTS claims). The
worker fetches the bars once (the backtest workers' cache) and runs trademesh_trading's
walk-forward Optuna studies in a thread, their trials in the backtest workers' process pool, up
to `backtest_workers` at a time. The studies are kept in Optuna's journal storage on
`optimization_journal` (journal.py), so that a claim after a restart replays them and resumes:
trials told stay told, only the missing ones run (docs/decisions/0121-optimisation-walk-forward.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import CancelledError as FutureCancelled
from concurrent.futures import Executor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID, uuid4

import asyncpg
import optuna
import psycopg
from optuna.storages import JournalStorage
from pydantic import Field, ValidationError
from trademesh_events.ids import UserId
from trademesh_events.marketdata import Bar
from trademesh_observability.logging import get_logger
from trademesh_trading.buying_power import AccountTerms
from trademesh_trading.currencies import quote_currency
from trademesh_trading.optimize.space import SearchRange, SpaceError, search_space
from trademesh_trading.optimize.study import (
    Interrupted,
    Objective,
    OptimizationResult,
    Plan,
    run_study,
)
from trademesh_trading.optimize.trials import BacktestSpec
from trademesh_trading.optimize.walkforward import WalkForward, WindowsTooShort
from trademesh_trading.registry import StrategyRegistry, UnknownStrategy
from trademesh_trading.results import json_number

from trademesh_strategy.backtests.bars import BarsUnavailable
from trademesh_strategy.backtests.jobs import (
    HEARTBEAT_INTERVAL_S,
    MAX_ATTEMPTS,
    STALE_AFTER_S,
    describe_error,
    first_of,
)
from trademesh_strategy.backtests.requests import BacktestRequest
from trademesh_strategy.backtests.store import JOB_COLUMNS, JobRecord, JobTable, job_fields
from trademesh_strategy.backtests.worker import BacktestWorker
from trademesh_strategy.config import Settings
from trademesh_strategy.journal import OptimizationJournal

log = get_logger("trademesh_strategy.optimizations")


class OptimizationRequest(BacktestRequest):
    """An optimisation: a search of the strategy's parameters (those not fixed in `params`) on
    the in-sample windows of a walk-forward split, each fold's best validated on its
    out-of-sample window."""

    space: dict[str, SearchRange] = Field(
        default_factory=dict,
        description="Parameter name -> its search (low/high/step/log, or choices). By default "
        "every integer and number parameter is searched over its schema's bounds; booleans and "
        "enumerations only when named here.",
    )
    objective: Objective = Field(
        "sharpe",
        description="What the search optimises: max_drawdown is minimised, the others maximised.",
    )
    trials: int = Field(
        50, ge=1, le=10_000, description="Trials per fold (with `grid`, at most the grid's size)."
    )
    sampler: Literal["tpe", "grid"] = Field(
        "tpe", description="tpe: Optuna's TPE; grid: the grid's points, in a random order."
    )
    walk_forward: WalkForward = Field(default_factory=WalkForward)
    seed: int | None = Field(None, ge=0, le=2**32 - 1, description="For a repeatable search.")


def plan_of(request: OptimizationRequest, registry: StrategyRegistry) -> Plan:
    """The library's plan for `request`: UnknownStrategy or SpaceError when it has none."""
    strategy = registry.get(request.strategy)
    space = search_space(registry.schema(request.strategy), request.params, request.space)
    return Plan(
        strategy=strategy,
        space=space,
        spec=BacktestSpec(
            instrument_id=request.instrument_id,
            timeframe=request.timeframe,
            currency=quote_currency(request.instrument_id),
            cash=request.cash,
            slippage_bps=request.slippage_bps,
            fee_bps=request.fee_bps,
            sizing=request.sizing,
            terms=AccountTerms(request.margin_mode, request.max_leverage, request.allow_short),
        ),
        fixed=request.params,
        objective=request.objective,
        trials=request.trials,
        sampler=request.sampler,
        seed=request.seed,
        walk_forward=request.walk_forward,
    )


def _finite(value: Any) -> Any:
    """`value` with non-finite floats as the strings jsonb can hold (NaN, Infinity)."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return json_number(value)


def route_optuna_logs() -> None:
    """Optuna's records through the service's logging (its JSON lines), warnings and above: a
    study logs every trial told at INFO, and its own handler would write plain text."""
    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()
    optuna.logging.set_verbosity(optuna.logging.WARNING)


# ---- the store --------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class OptimizationRecord(JobRecord):
    optimization_id: UUID
    result: dict[str, Any] | None
    trials_done: int
    trials_total: int


@dataclass(frozen=True)
class ClaimedOptimization:
    optimization_id: UUID
    request: dict[str, Any]
    attempts: int

    @property
    def study_name(self) -> str:
        """The prefix of its studies' names in Optuna's tables (`<name>-fold-<n>`)."""
        return f"optimization-{self.optimization_id}"


class OptimizationStore(JobTable[OptimizationRecord]):
    """The service's `optimizations` table (the trials are in Optuna's tables), claimed as the
    backtests are (JobTable)."""

    table = "optimizations"
    key = "optimization_id"
    columns = f"optimization_id, result, trials_done, trials_total, {JOB_COLUMNS}"

    def _record(self, row: asyncpg.Record) -> OptimizationRecord:
        return OptimizationRecord(
            optimization_id=row["optimization_id"],
            result=None if row["result"] is None else json.loads(row["result"]),
            trials_done=row["trials_done"],
            trials_total=row["trials_total"],
            **job_fields(row),
        )

    async def insert(
        self, user_id: UserId, request: OptimizationRequest, trials_total: int
    ) -> OptimizationRecord:
        row = await self.db.pool.fetchrow(
            "INSERT INTO optimizations (optimization_id, user_id, request, status, trials_total) "  # noqa: S608 - constant columns
            f"VALUES ($1, $2, $3::jsonb, 'QUEUED', $4) RETURNING {self.columns}",
            uuid4(),
            user_id,
            request.model_dump_json(),
            trials_total,
        )
        assert row is not None
        return self._record(row)

    async def claim(self, stale_after_s: float = STALE_AFTER_S) -> ClaimedOptimization | None:
        """The oldest runnable optimisation, RUNNING under a new attempt (as backtests are)."""
        claimed = await self._claim(stale_after_s)
        return None if claimed is None else ClaimedOptimization(*claimed)

    async def heartbeat(self, optimization_id: UUID, attempt: int, trials_done: int) -> bool:
        """Mark the claim alive with its progress; False when it is no longer this attempt's."""
        return await self._owned(
            optimization_id, attempt, "heartbeat_at = now(), trials_done = $3", trials_done
        )

    async def succeed(self, optimization_id: UUID, attempt: int, result: Mapping[str, Any]) -> bool:
        return await self._owned(
            optimization_id,
            attempt,
            "status = 'SUCCEEDED', error = NULL, result = $3::jsonb, trials_done = trials_total, "
            "finished_at = now(), heartbeat_at = now()",
            json.dumps(_finite(result), allow_nan=False),
        )

    async def fail(self, optimization_id: UUID, attempt: int, error: str) -> bool:
        return await self._owned(
            optimization_id,
            attempt,
            "status = 'FAILED', error = $3, finished_at = now(), heartbeat_at = now()",
            error,
        )


# ---- the worker -------------------------------------------------------------------------------


class OptimizationWorker:
    """Runs queued optimisations, one at a time per service process; the trials of each run
    in the backtest workers' process pool, `backtest_workers` at a time.

    Market data unavailable, a worker process that died, or the journal's writes failing put the
    optimisation back QUEUED (FAILED after MAX_ATTEMPTS claims); a request that no longer makes
    a plan (its strategy gone) FAILs it. Shutdown stops the studies between trials and leaves
    the row RUNNING: its heartbeat stops, and the next claim resumes the studies."""

    def __init__(
        self,
        *,
        store: OptimizationStore,
        backtests: BacktestWorker,
        registry: StrategyRegistry,
        settings: Settings,
    ) -> None:
        self.store = store
        self.backtests = backtests
        self.registry = registry
        self.parallel = settings.backtest_workers
        self.poll_interval_s = settings.backtest_poll_interval_s
        self._url = settings.database_url.get_secret_value()
        self._schema = settings.database_schema

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            job = await self._claim()
            if job is not None:
                await self._process(job, stop)
                continue
            await first_of(stop, timeout=self.poll_interval_s)

    async def _claim(self) -> ClaimedOptimization | None:
        try:
            return await self.store.claim()
        except Exception:  # Postgres away: poll again rather than die
            log.warning("claiming an optimization failed", exc_info=True)
            return None

    async def _process(self, job: ClaimedOptimization, stop: asyncio.Event) -> None:
        halt = threading.Event()  # tells the studies' thread to stop between trials
        told = [0]
        beat = asyncio.create_task(self._heartbeat(job, told, halt))
        try:
            await self._execute(job, stop, halt, told)
        except Exception:
            # A storage error: the row stays RUNNING and is claimed again once stale.
            log.exception(
                "optimization could not be recorded", optimization_id=str(job.optimization_id)
            )
        finally:
            halt.set()
            beat.cancel()
            await asyncio.gather(beat, return_exceptions=True)

    async def _heartbeat(
        self, job: ClaimedOptimization, told: list[int], halt: threading.Event
    ) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_INTERVAL_S)
            try:
                if not await self.store.heartbeat(job.optimization_id, job.attempts, told[0]):
                    log.warning("optimization taken over", optimization_id=str(job.optimization_id))
                    halt.set()
                    return
            except Exception:
                log.warning("optimization heartbeat failed", exc_info=True)

    async def _execute(
        self,
        job: ClaimedOptimization,
        stop: asyncio.Event,
        halt: threading.Event,
        told: list[int],
    ) -> None:
        if job.attempts > MAX_ATTEMPTS:
            await self._fail(job, f"gave up after {MAX_ATTEMPTS} attempts: its worker was lost")
            return
        try:
            request = OptimizationRequest.model_validate(job.request)
            plan = plan_of(request, self.registry)
        except ValidationError as exc:
            await self._fail(job, f"invalid request: {exc.error_count()} errors")
            return
        except (UnknownStrategy, SpaceError) as exc:
            await self._fail(job, describe_error(exc))
            return
        try:
            bars = await self.backtests.fetch_bars(request)
        except BarsUnavailable as exc:
            if exc.retry:
                await self._retry(job, str(exc))
            else:
                await self._fail(job, str(exc))
            return

        def progress(done: int, _total: int) -> None:
            told[0] = done

        log.info(
            "optimization started",
            optimization_id=str(job.optimization_id),
            bars=len(bars),
            attempt=job.attempts,
        )
        try:
            pool = self.backtests.pool()
            work = asyncio.ensure_future(
                asyncio.to_thread(self._study, job, plan, bars, pool, halt, progress)
            )
            stopping = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait({work, stopping}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopping.cancel()
                if not work.done():
                    halt.set()  # the thread stops between trials; wait for it to let go
                with contextlib.suppress(BaseException):
                    await asyncio.shield(work)
            result = work.result()
        except WindowsTooShort as exc:
            await self._fail(job, str(exc))
            return
        except (Interrupted, FutureCancelled):
            log.info("optimization interrupted", optimization_id=str(job.optimization_id))
            return  # RUNNING until stale; the next claim resumes its studies
        except BrokenProcessPool as exc:
            if not stop.is_set():  # (stopping, the backtest workers stop the pool themselves)
                self.backtests.replace_broken_pool()
                await self._retry(job, f"a worker process died: {exc}")
            return
        except Exception as exc:  # the journal (Postgres) failing: try again later
            if not stop.is_set():
                await self._retry(job, f"the study failed: {describe_error(exc)}")
            return
        if await self.store.succeed(job.optimization_id, job.attempts, result.to_data()):
            log.info(
                "optimization succeeded",
                optimization_id=str(job.optimization_id),
                warning=result.warning,
            )

    def _study(
        self,
        job: ClaimedOptimization,
        plan: Plan,
        bars: Sequence[Bar],
        pool: Executor,
        halt: threading.Event,
        progress: Callable[[int, int], None],
    ) -> OptimizationResult:
        """The studies of `job` on its journal, resumed from what it holds (blocking: a thread's
        work). What they told is written when they end, stopped or not."""
        with psycopg.connect(
            self._url,
            autocommit=True,
            connect_timeout=10,
            options=f"-c search_path={self._schema}",
            application_name=f"trademesh-{self._schema}-optimizer",
        ) as conn:
            journal = OptimizationJournal(conn, job.optimization_id)
            try:
                return run_study(
                    plan,
                    bars,
                    storage=JournalStorage(journal),
                    name=job.study_name,
                    executor=pool,
                    parallel=self.parallel,
                    stop=halt,
                    progress=progress,
                )
            finally:
                journal.flush()

    async def _fail(self, job: ClaimedOptimization, error: str) -> None:
        if await self.store.fail(job.optimization_id, job.attempts, error):
            log.info("optimization failed", optimization_id=str(job.optimization_id), error=error)

    async def _retry(self, job: ClaimedOptimization, error: str) -> None:
        if job.attempts >= MAX_ATTEMPTS:
            await self._fail(job, f"{error} (after {job.attempts} attempts)")
            return
        await self.store.requeue(job.optimization_id, job.attempts, error)
        log.warning("optimization put back", optimization_id=str(job.optimization_id), error=error)


def trials_total(plan: Plan) -> int:
    return plan.trials_per_fold() * plan.walk_forward.folds
