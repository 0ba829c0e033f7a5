"""The synthetic feed: seeded geometric Brownian motion ticks, for load tests and demos.

The same seed gives the same ticks. Tick times advance by 1/rate seconds from `start` (tick
time, not the wall clock); with `realtime` the feed also sleeps on the clock so that it emits
about `rate` ticks per second, otherwise it runs as fast as the consumer takes them.
"""

from __future__ import annotations

import asyncio
import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from trademesh_events.marketdata import Tick

from trademesh_market_data.clock import Clock
from trademesh_market_data.feeds.base import FeedOutput


@dataclass
class SyntheticFeed:
    instrument_id: str
    clock: Clock
    start: datetime
    seed: int = 1
    start_price: Decimal = Decimal("100")
    drift: float = 0.0  # per year
    volatility: float = 0.6  # per year
    rate: float = 1000.0  # ticks per second of tick time
    count: int | None = None  # None: until stopped
    price_step: Decimal = Decimal("0.01")
    size_step: Decimal = Decimal("0.0001")
    realtime: bool = False
    batch_size: int = 1000
    kind: str = "synthetic"

    @property
    def live(self) -> bool:
        return self.realtime

    def ticks(self) -> list[Tick]:
        """The first `count` ticks, for tests and benchmarks that want them without a runner."""
        if self.count is None:
            raise ValueError("ticks() needs a count")
        return [tick for batch in _Endless(self).take(self.count) for tick in batch]

    async def run(self, out: FeedOutput, stop: asyncio.Event) -> None:
        out.connected(True)
        try:
            batches = _Endless(self) if self.count is None else _Endless(self).take(self.count)
            for batch in batches:
                if stop.is_set():
                    return
                await out.ticks(batch)
                if self.realtime:
                    await self.clock.sleep(len(batch) / self.rate)
                else:
                    await asyncio.sleep(0)
        finally:
            out.connected(False)


class _Endless:
    """Batches of GBM ticks: price *= exp((mu - sigma^2/2) dt + sigma sqrt(dt) Z)."""

    def __init__(self, feed: SyntheticFeed) -> None:
        self.feed = feed
        self.rng = random.Random(feed.seed)  # noqa: S311 - a simulation, not cryptography
        self.price = float(feed.start_price)
        self.n = 0
        self.dt_years = 1 / (feed.rate * 365 * 24 * 3600)
        self.step = timedelta(seconds=1 / feed.rate)

    def __iter__(self) -> _Endless:
        return self

    def __next__(self) -> list[Tick]:
        return self._batch(self.size)

    @property
    def size(self) -> int:
        """Ticks per batch: in real time, a tenth of a second's worth, so pacing stays smooth
        and a stop is seen within that long."""
        if self.feed.realtime:
            return max(1, min(self.feed.batch_size, math.ceil(self.feed.rate / 10)))
        return self.feed.batch_size

    def take(self, count: int) -> list[list[Tick]]:
        batches = []
        while count > 0:
            size = min(count, self.size)
            batches.append(self._batch(size))
            count -= size
        return batches

    def _batch(self, size: int) -> list[Tick]:
        f = self.feed
        drift = (f.drift - f.volatility**2 / 2) * self.dt_years
        shock = f.volatility * math.sqrt(self.dt_years)
        ticks = []
        for _ in range(size):
            self.price *= math.exp(drift + shock * self.rng.gauss(0.0, 1.0))
            price = Decimal(repr(self.price)).quantize(f.price_step, ROUND_HALF_EVEN)
            size_ = Decimal(repr(self.rng.expovariate(20.0))).quantize(f.size_step, ROUND_HALF_EVEN)
            # Valid by construction (positive, quantised): skipping validation keeps the
            # generator well ahead of the publisher in load tests.
            ticks.append(
                Tick.model_construct(
                    instrument_id=f.instrument_id,
                    ts=f.start + self.n * self.step,
                    price=max(price, f.price_step),
                    size=max(size_, f.size_step),
                    side="buy" if self.rng.random() < 0.5 else "sell",
                    trade_id=f"syn-{f.seed}-{self.n}",
                )
            )
            self.n += 1
        return ticks
