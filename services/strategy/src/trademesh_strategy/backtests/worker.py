"""The backtest workers: tasks that claim queued backtests and run them in a process pool."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.process import BaseProcess

from pydantic import ValidationError
from trademesh_db import Database
from trademesh_events.marketdata import Bar
from trademesh_observability import metrics
from trademesh_observability.logging import get_logger
from trademesh_trading.registry import StrategyRegistry, UnknownStrategy

from trademesh_strategy.backtests.bars import BarsCache, BarsKey, BarsUnavailable
from trademesh_strategy.backtests.jobs import (
    HEARTBEAT_INTERVAL_S,
    MAX_ATTEMPTS,
    describe_error,
    first_of,
)
from trademesh_strategy.backtests.requests import BacktestRequest
from trademesh_strategy.backtests.results import run_backtest_encoded
from trademesh_strategy.backtests.store import BacktestStore, ClaimedBacktest
from trademesh_strategy.config import Settings
from trademesh_strategy.history import MarketData, MarketDataUnavailable, NoMarketData

log = get_logger("trademesh_strategy.backtests")


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
                await first_of(stop, freed, timeout=self.poll_interval_s)
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
        try:
            bars = await self.fetch_bars(spec)
        except BarsUnavailable as exc:
            if exc.retry:
                await self._retry(job, str(exc))
            else:
                await self._fail(job, str(exc))
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

    async def fetch_bars(self, request: BacktestRequest) -> list[Bar]:
        """The bars of `request`'s range, fetched once for all the work on that range (the
        optimisations' too); BarsUnavailable says why not, and whether to try again later."""
        key: BarsKey = (request.instrument_id, request.timeframe, request.start, request.end)
        try:
            return await self.bars.get(
                key,
                lambda: self.market.bars(
                    request.instrument_id, request.timeframe, request.start, request.end
                ),
            )
        except MarketDataUnavailable as exc:
            raise BarsUnavailable(f"market data unavailable: {exc}", retry=True) from exc
        except NoMarketData as exc:
            raise BarsUnavailable(f"no market data: {exc}", retry=False) from exc
        except Exception as exc:  # an answer market-data should not give: try again later
            raise BarsUnavailable(
                f"fetching the bars failed: {describe_error(exc)}", retry=True
            ) from exc

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
