"""Runs one feed: checks its ticks, builds bars, publishes both in batches, and queues them for the store."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import datetime, timedelta

from trademesh_bus import Bus
from trademesh_events.marketdata import Bar, Tick
from trademesh_events.topics import MD_BARS, MD_TICKS, get_topic
from trademesh_observability import metrics as m
from trademesh_trading.timeframes import Timeframe

from trademesh_market_data.engine import BarAggregator, TickGuard, TickRejected
from trademesh_market_data.writer import BufferedWriter

log = logging.getLogger("trademesh.market_data.feed")


class FeedRunner:
    """The FeedOutput of one feed (see feeds/base.py)."""

    def __init__(
        self,
        *,
        feed: str,
        instrument: str,
        timeframes: list[Timeframe],
        bus: Bus,
        ticks_writer: BufferedWriter[Tick],
        bars_writer: BufferedWriter[Bar],
        service: str,
        tolerance: timedelta,
        partial_every: timedelta | None = None,
    ) -> None:
        self.feed = feed
        self.instrument = instrument
        self.bus = bus
        self.ticks_writer = ticks_writer
        self.bars_writer = bars_writer
        self.service = service
        self.guard = TickGuard({instrument}, tolerance)
        self.aggregator = (
            BarAggregator(instrument, timeframes, tolerance=tolerance, partial_every=partial_every)
            if timeframes
            else None
        )
        self.published_ticks = 0
        self.published_bars = 0
        self.rejections = 0
        self.reconnects = 0
        self._connected = False
        self._ever_connected = False
        self._labels = {"service": service, "feed": feed}

    async def ticks(self, ticks: Sequence[Tick]) -> None:
        m.MD_TICKS_IN.labels(**self._labels).inc(len(ticks))
        accepted: list[Tick] = []
        bars: list[Bar] = []
        late = 0
        for tick in ticks:
            try:
                self.guard.check(tick)
            except TickRejected as exc:
                self.rejected(exc.reason, str(exc))
                continue
            accepted.append(tick)
            if self.aggregator is not None:
                result = self.aggregator.add(tick)
                bars += result.bars
                late += result.late
        if late:
            m.MD_LATE_TICKS.labels(**self._labels).inc(late)
        if accepted:
            await self._publish(MD_TICKS, accepted)
            m.MD_TICKS_OUT.labels(**self._labels).inc(len(accepted))
            self.published_ticks += len(accepted)
            self.ticks_writer.offer(accepted)
        await self.bars(bars)

    async def bars(self, bars: Sequence[Bar]) -> None:
        """Publish bars (built here, or read whole from a file or an exchange) and store the final ones."""
        if not bars:
            return
        await self._publish(MD_BARS, bars)
        for bar in bars:
            m.MD_BARS_OUT.labels(
                **self._labels, timeframe=bar.timeframe, final=str(bar.final)
            ).inc()
        self.published_bars += len(bars)
        self.bars_writer.offer([bar for bar in bars if bar.final])

    async def close_due(self, now: datetime) -> None:
        """Publish the bars whose interval ended by now (called on a timer for live feeds)."""
        if self.aggregator is not None:
            await self.bars(self.aggregator.close_due(now))

    async def finish(self) -> None:
        """The source ended: its last bars are complete."""
        if self.aggregator is not None:
            await self.bars(self.aggregator.close_all())

    def rejected(self, reason: str, detail: str) -> None:
        self.rejections += 1
        m.MD_REJECTED.labels(**self._labels, reason=reason).inc()
        log.warning("record refused", extra={"feed": self.feed, "reason": reason, "detail": detail})

    def connected(self, up: bool) -> None:
        m.MD_FEED_CONNECTED.labels(**self._labels).set(1 if up else 0)
        if up and not self._connected and self._ever_connected:
            m.MD_FEED_RECONNECTS.labels(**self._labels).inc()
            self.reconnects += 1
        self._ever_connected = self._ever_connected or up
        self._connected = up

    async def _publish(self, topic: str, events: Sequence[Tick | Bar]) -> None:
        started = time.perf_counter()
        # Order paths start here: each bar, and each batch of ticks, in a trace of its own
        # (linked to the feed's span), not in the trace of whatever started the feed.
        await self.bus.publish_many(
            events, topic=get_topic(topic), new_trace="each" if topic == MD_BARS else "batch"
        )
        m.MD_PUBLISH_SECONDS.labels(service=self.service, topic=topic).observe(
            time.perf_counter() - started
        )
