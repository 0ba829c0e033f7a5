"""The bars of a backtest's range, fetched once and shared by the backtests of the same range."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import datetime

from trademesh_events.marketdata import Bar

BARS_CACHE_TTL_S = 300.0
"""How long fetched bars are reused for backtests of the same instrument, timeframe and range."""
BARS_CACHE_ENTRIES = 8


BarsKey = tuple[str, str, datetime, datetime]


class BarsUnavailable(Exception):
    """The bars of a range could not be had; `retry`: a later attempt may have them (market-data
    did not answer), or not (it holds nothing of the instrument)."""

    def __init__(self, reason: str, *, retry: bool) -> None:
        super().__init__(reason)
        self.retry = retry


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
