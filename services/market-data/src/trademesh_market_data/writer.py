"""A bounded buffer in front of the tick store: batched writes that survive a store outage.

Feeds never wait for the store: rows go into a bounded queue and one task writes them in
batches. When a write fails the batch stays at the head of the queue and is retried with
exponential backoff; while the store is away the queue fills, and past its capacity the
*oldest* rows are dropped (the newest prices matter most to a live system) and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from trademesh_observability import metrics as m

log = logging.getLogger("trademesh.market_data.writer")
Row = TypeVar("Row")


class BufferedWriter(Generic[Row]):
    def __init__(
        self,
        write: Callable[[Sequence[Row]], Awaitable[None]],
        *,
        service: str,
        table: str,
        capacity: int = 1_000_000,
        batch_size: int = 10_000,
        flush_interval: float = 0.2,
        max_backoff: float = 5.0,
    ) -> None:
        self._write = write
        self.service = service
        self.table = table
        self.capacity = capacity
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self._queue: deque[Row] = deque()
        self._wake = asyncio.Event()
        self.max_backoff = max_backoff
        self.dropped = 0
        self.written = 0

    @property
    def pending(self) -> int:
        return len(self._queue)

    def offer(self, rows: Sequence[Row]) -> None:
        """Queue rows for writing; never blocks. Drops the oldest rows beyond capacity."""
        self._queue.extend(rows)
        overflow = len(self._queue) - self.capacity
        if overflow > 0:
            for _ in range(overflow):
                self._queue.popleft()
            self.dropped += overflow
            m.MD_STORE_DROPPED.labels(service=self.service, table=self.table).inc(overflow)
        m.MD_STORE_PENDING.labels(service=self.service, table=self.table).set(len(self._queue))
        if len(self._queue) >= self.batch_size:
            self._wake.set()

    async def write_once(self) -> int:
        """Write one batch from the head of the queue; on failure the rows stay queued."""
        if not self._queue:
            return 0
        count = min(self.batch_size, len(self._queue))
        batch = [self._queue[i] for i in range(count)]
        started = time.perf_counter()
        await self._write(batch)
        m.MD_STORE_WRITE_SECONDS.labels(service=self.service, table=self.table).observe(
            time.perf_counter() - started
        )
        m.MD_STORE_BATCH_ROWS.labels(service=self.service, table=self.table).observe(count)
        for _ in range(count):
            self._queue.popleft()
        self.written += count
        m.MD_STORE_PENDING.labels(service=self.service, table=self.table).set(len(self._queue))
        return count

    async def run(self, stop: asyncio.Event) -> None:
        """Write until `stop` is set, then flush what is left (as far as the store lets us)."""
        failures = 0
        while not stop.is_set():
            try:
                while await self.write_once() == self.batch_size and not stop.is_set():
                    pass
                failures = 0
            except Exception as exc:
                failures += 1
                m.MD_STORE_ERRORS.labels(service=self.service, table=self.table).inc()
                log.warning(
                    "tick store write failed; rows kept for retry",
                    extra={
                        "table": self.table,
                        "pending": self.pending,
                        "error": type(exc).__name__,
                    },
                )
            delay = self.flush_interval if failures == 0 else self._delay(failures)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_either(self._wake, stop), delay)
        await self.flush()

    async def flush(self, attempts: int = 3) -> None:
        """Write everything queued; gives up (rows kept in memory) after `attempts` failures."""
        failures = 0
        while self._queue and failures < attempts:
            try:
                await self.write_once()
            except Exception:
                failures += 1
                m.MD_STORE_ERRORS.labels(service=self.service, table=self.table).inc()
                await asyncio.sleep(self._delay(failures))

    def _delay(self, failures: int) -> float:
        # Exponential backoff with jitter, computed here rather than by a tenacity retry loop:
        # the loop must keep serving new rows between attempts, not block on one call.
        base = min(self.max_backoff, 0.05 * 2 ** min(failures - 1, 16))
        return float(base) + random.uniform(0, 0.05)  # noqa: S311 - jitter, not cryptography


async def _either(first: asyncio.Event, second: asyncio.Event) -> None:
    waiters = [asyncio.create_task(first.wait()), asyncio.create_task(second.wait())]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
