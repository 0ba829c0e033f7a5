"""Market data's domain logic, pure: timeframes, tick checks and tick-to-bar aggregation.

No I/O and no wall clock: time comes in with the ticks, and `BarAggregator.close_due(now)` is
called with the caller's clock.

Rules (also in the service's README):
- A bar covers [open_time, open_time + timeframe); buckets are aligned to the Unix epoch (weeks
  to Monday 00:00 UTC). An interval without a trade has no bar: a gap stays a gap.
- Within a bar, ticks may arrive out of order: open is the price of the earliest tick, close
  that of the latest (by time; equal times keep arrival order), high/low/volume take every tick.
- A bar is final once a tick of a later interval arrives or `close_due(now)` finds its end plus
  the lateness tolerance passed; a final bar is emitted once and never changed.
- A *late* tick, whose interval's bar is already final, is still a valid tick (published and
  stored) but is not applied to any bar; it is counted.
- A tick older than the instrument's latest tick by more than the tolerance is *out of order*:
  rejected, not published.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from trademesh_events.marketdata import Bar, Tick
from trademesh_trading.timeframes import Timeframe

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class TickRejected(ValueError):
    """A tick that must not be published; `reason` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


class TickGuard:
    """Per-instrument checks the event model cannot make: known instrument, time order."""

    def __init__(self, instruments: set[str], tolerance: timedelta) -> None:
        self.instruments = instruments
        self.tolerance = tolerance
        self._latest: dict[str, datetime] = {}

    def check(self, tick: Tick) -> None:
        """Raise TickRejected, or accept `tick` (it becomes the latest if it is newer)."""
        if tick.instrument_id not in self.instruments:
            raise TickRejected("unknown_instrument", tick.instrument_id)
        latest = self._latest.get(tick.instrument_id)
        if latest is not None and tick.ts < latest - self.tolerance:
            raise TickRejected(
                "out_of_order", f"{tick.ts.isoformat()} is before {latest.isoformat()} - tolerance"
            )
        if latest is None or tick.ts > latest:
            self._latest[tick.instrument_id] = tick.ts


@dataclass
class _Open:
    start: datetime
    end: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    trades: int
    first_ts: datetime
    last_ts: datetime

    def add(self, tick: Tick) -> None:
        self.high = max(self.high, tick.price)
        self.low = min(self.low, tick.price)
        self.volume += tick.size
        self.trades += 1
        if tick.ts < self.first_ts:
            self.first_ts, self.open = tick.ts, tick.price
        if tick.ts >= self.last_ts:
            self.last_ts, self.close = tick.ts, tick.price

    def bar(self, instrument: str, timeframe: Timeframe, *, final: bool) -> Bar:
        return Bar(
            instrument_id=instrument,
            timeframe=timeframe.label,
            open_time=self.start,
            close_time=self.end,
            open=self.open,
            high=self.high,
            low=self.low,
            close=self.close,
            volume=self.volume,
            trades=self.trades,
            final=final,
        )


@dataclass
class AggregateResult:
    bars: list[Bar] = field(default_factory=list)
    late: bool = False  # the tick's interval was already final for some timeframe


class BarAggregator:
    """Ticks of one instrument into bars of several timeframes (see the module's rules).

    With `partial_every`, an in-progress bar (final=False) is also emitted when at least that
    much tick time passed since its last update was emitted.
    """

    def __init__(
        self,
        instrument: str,
        timeframes: list[Timeframe],
        *,
        tolerance: timedelta = timedelta(0),
        partial_every: timedelta | None = None,
    ) -> None:
        if not timeframes:
            raise ValueError("at least one timeframe")
        self.instrument = instrument
        self.timeframes = sorted(set(timeframes))
        self.tolerance = tolerance
        self.partial_every = partial_every
        self._open: dict[Timeframe, _Open] = {}
        self._final_until: dict[Timeframe, datetime] = {}
        self._partial_at: dict[Timeframe, datetime] = {}

    def add(self, tick: Tick) -> AggregateResult:
        """Apply one tick; returns the bars it completed (and partial updates, when asked)."""
        if tick.instrument_id != self.instrument:
            raise ValueError(f"tick of {tick.instrument_id} given to {self.instrument}'s bars")
        result = AggregateResult()
        for tf in self.timeframes:
            current = self._open.get(tf)
            if current is not None and current.start <= tick.ts < current.end:
                current.add(tick)  # the common case, without computing the interval again
                self._partial(tf, current, tick, result)
                continue
            start = tf.floor(tick.ts)
            if start < self._final_until.get(tf, _EPOCH):
                result.late = True
                continue
            if current is not None and start > current.start:
                result.bars.append(self._finish(tf, current))
                current = None
            if current is None:
                price = tick.price
                current = _Open(
                    start,
                    start + tf.delta,
                    price,
                    price,
                    price,
                    price,
                    tick.size,
                    1,
                    tick.ts,
                    tick.ts,
                )
                self._open[tf] = current
            else:  # an interval before the open bar's: its bar can no longer be made
                result.late = True
                continue
            self._partial(tf, current, tick, result)
        return result

    def _partial(self, tf: Timeframe, current: _Open, tick: Tick, result: AggregateResult) -> None:
        if self.partial_every is not None:
            last = self._partial_at.get(tf)
            if last is None or tick.ts - last >= self.partial_every:
                self._partial_at[tf] = tick.ts
                result.bars.append(current.bar(self.instrument, tf, final=False))

    def close_due(self, now: datetime) -> list[Bar]:
        """Final bars whose interval ended (plus the tolerance) by `now`."""
        bars = []
        for tf in self.timeframes:
            current = self._open.get(tf)
            if current is not None and current.start + tf.delta + self.tolerance <= now:
                bars.append(self._finish(tf, current))
        return bars

    def close_all(self) -> list[Bar]:
        """Every open bar, final now (the source ended)."""
        return [self._finish(tf, current) for tf, current in list(self._open.items())]

    def _finish(self, tf: Timeframe, current: _Open) -> Bar:
        del self._open[tf]
        self._partial_at.pop(tf, None)
        self._final_until[tf] = current.start + tf.delta
        return current.bar(self.instrument, tf, final=True)
