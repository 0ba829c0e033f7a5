"""Starts, stops and supervises the configured feeds, one task each, one replica per feed.

Several replicas of the service may run: a feed runs where its Postgres advisory lock is held
(a session lock on a connection kept for the feed's lifetime), so it is never played twice;
another replica takes it over when that connection goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Literal
from uuid import UUID

import asyncpg
from trademesh_bus import Bus
from trademesh_db import Database
from trademesh_events.marketdata import Bar, Tick
from trademesh_trading.timeframes import Timeframe

from trademesh_market_data.catalog import (
    CcxtConfig,
    FeedRecord,
    ReplayConfig,
    SyntheticConfig,
)
from trademesh_market_data.clock import Clock
from trademesh_market_data.feeds.base import Feed
from trademesh_market_data.feeds.replay import ReplayFeed
from trademesh_market_data.feeds.synthetic import SyntheticFeed
from trademesh_market_data.usecases.runner import FeedRunner
from trademesh_market_data.writer import BufferedWriter

log = logging.getLogger("trademesh.market_data.manager")

State = Literal["starting", "running", "finished", "failed", "stopped", "standby"]


@dataclass
class FeedHandle:
    record: FeedRecord
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    runner: FeedRunner | None = None
    state: State = "starting"
    error: str | None = None


class FeedManager:
    def __init__(
        self,
        *,
        db: Database,
        bus: Bus,
        ticks_writer: BufferedWriter[Tick],
        bars_writer: BufferedWriter[Bar],
        clock: Clock,
        service: str,
        replay_dir: Path,
        tolerance: timedelta,
        close_interval: float = 1.0,
    ) -> None:
        self.db = db
        self.bus = bus
        self.ticks_writer = ticks_writer
        self.bars_writer = bars_writer
        self.clock = clock
        self.service = service
        self.replay_dir = replay_dir
        self.tolerance = tolerance
        self.close_interval = close_interval
        self.handles: dict[UUID, FeedHandle] = {}

    def replay_path(self, file: str) -> Path:
        """The file a replay feed plays: only a file directly in the replay folder."""
        path = (self.replay_dir / file).resolve()
        if path.parent != self.replay_dir.resolve() or not path.is_file():
            raise FileNotFoundError(f"no file {file!r} in the replay folder")
        return path

    def build(self, record: FeedRecord) -> Feed:
        """The feed object for a stored configuration."""
        config = record.config
        if isinstance(config, ReplayConfig):
            return ReplayFeed(
                path=self.replay_path(config.file),
                instrument_id=record.instrument_id,
                clock=self.clock,
                data=config.data,
                timeframe=config.timeframe,
                speed=config.speed,
            )
        if isinstance(config, SyntheticConfig):
            return SyntheticFeed(
                instrument_id=record.instrument_id,
                clock=self.clock,
                start=config.start or self.clock.now(),
                seed=config.seed,
                start_price=config.start_price,
                drift=config.drift,
                volatility=config.volatility,
                rate=config.rate,
                count=config.count,
                realtime=config.realtime,
            )
        assert isinstance(config, CcxtConfig)
        from trademesh_market_data.feeds.ccxt_feed import CcxtFeed

        return CcxtFeed.from_config(
            record.instrument_id, config, clock=self.clock, timeframe=record.timeframes[0]
        )

    def start(self, record: FeedRecord) -> FeedHandle:
        current = self.handles.get(record.feed_id)
        if current is not None and current.task is not None and not current.task.done():
            return current
        handle = FeedHandle(record)
        handle.task = asyncio.create_task(self._run(handle), name=f"feed-{record.feed_id}")
        self.handles[record.feed_id] = handle
        return handle

    async def stop(self, feed_id: UUID, timeout: float = 10.0) -> None:
        handle = self.handles.get(feed_id)
        if handle is None or handle.task is None:
            return
        handle.stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(handle.task), timeout)
        except TimeoutError:
            handle.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await handle.task
        if handle.state in ("running", "starting", "standby"):
            handle.state = "stopped"

    async def stop_all(self) -> None:
        await asyncio.gather(*(self.stop(feed_id) for feed_id in list(self.handles)))

    def state(self, feed_id: UUID) -> FeedHandle | None:
        return self.handles.get(feed_id)

    async def _run(self, handle: FeedHandle) -> None:
        record = handle.record
        name = str(record.feed_id)
        try:
            feed = self.build(record)
        except Exception as exc:
            handle.state, handle.error = "failed", f"{type(exc).__name__}: {exc}"
            log.error("feed cannot start", extra={"feed": name, "error": handle.error})
            return
        # An exchange's bars are authoritative (and backfilled after a gap): for a ccxt feed
        # the runner passes them on and builds none from the trades.
        runner = FeedRunner(
            feed=name,
            instrument=record.instrument_id,
            timeframes=(
                []
                if isinstance(record.config, CcxtConfig)
                else [Timeframe.parse(label) for label in record.timeframes]
            ),
            bus=self.bus,
            ticks_writer=self.ticks_writer,
            bars_writer=self.bars_writer,
            service=self.service,
            tolerance=self.tolerance,
            partial_every=(
                timedelta(seconds=record.partial_every_s) if record.partial_every_s else None
            ),
        )
        handle.runner = runner
        # A connection of its own, outside the pool: held for the feed's whole life, pooled
        # ones would run out with a dozen feeds and starve the API. Closing it releases the lock.
        try:
            lock_conn = await asyncpg.connect(self.db.url)
        except (OSError, asyncpg.PostgresError) as exc:
            handle.state, handle.error = "failed", f"no database for the feed's lock: {exc}"
            log.error("feed cannot start", extra={"feed": name, "error": handle.error})
            return
        try:
            while not await lock_conn.fetchval(
                "SELECT pg_try_advisory_lock(hashtextextended('marketdata.feed.' || $1, 0))", name
            ):
                handle.state = "standby"  # another replica plays it; wait to take over
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(handle.stop.wait(), 5.0)
                if handle.stop.is_set():
                    return
            handle.state = "running"
            # Live feeds close bars on the clock too; a replay's time is the file's, not ours.
            closer = asyncio.create_task(
                self._close_bars(runner, handle.stop) if feed.live else asyncio.sleep(0)
            )
            try:
                await feed.run(runner, handle.stop)
                if not handle.stop.is_set():
                    await runner.finish()
                    # A finished source is not played again when the service restarts (its
                    # events would reach consumers twice); starting it again is explicit.
                    await self.db.pool.execute(
                        "UPDATE feeds SET enabled = false, updated_at = now() WHERE feed_id = $1",
                        record.feed_id,
                    )
                    handle.state = "finished"
            except Exception as exc:
                handle.state, handle.error = "failed", f"{type(exc).__name__}: {exc}"
                log.exception("feed failed", extra={"feed": name})
            finally:
                closer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await closer
        finally:
            with contextlib.suppress(Exception):  # the server may be gone: the lock is too
                await lock_conn.close(timeout=5)

    async def _close_bars(self, runner: FeedRunner, stop: asyncio.Event) -> None:
        """Bars end with time, not only with the next tick: close them on the clock."""
        while not stop.is_set():
            await self.clock.sleep(self.close_interval)
            try:
                await runner.close_due(self.clock.now())
            except Exception:
                log.exception("closing bars failed", extra={"feed": runner.feed})
