"""The replay feed: an OHLCV or trades file (CSV or Parquet) played at a chosen speed.

Rows are read in file order and published with the file's own timestamps. Speed None is as
fast as possible; a number N sleeps (row gap / N) on the injected clock between rows, so 1 is
real time and a manual clock makes a replay deterministic. A row that does not parse or
validate is reported with its number and skipped; the rest of the file still plays.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError
from trademesh_events.marketdata import Bar, Tick
from trademesh_trading.files import (
    BadRow,
    bar_from_row,
    is_csv,
    read_rows,
    tick_from_row,
    validation_errors,
)
from trademesh_trading.timeframes import Timeframe

from trademesh_market_data.clock import Clock
from trademesh_market_data.feeds.base import FeedOutput


@dataclass
class ReplayFeed:
    """Replays `path` for `instrument_id`: OHLCV rows as final bars of `timeframe`, or trades."""

    path: Path
    instrument_id: str
    clock: Clock
    data: Literal["ohlcv", "trades"] = "ohlcv"
    timeframe: str = "1d"
    speed: float | None = None
    batch_size: int = 500
    kind: str = "replay"
    live: bool = False

    def _bar(self, row: dict[str, Any], tf: Timeframe) -> Bar:
        return bar_from_row(row, self.instrument_id, tf.label, tf.delta)

    def _tick(self, row: dict[str, Any]) -> Tick:
        return tick_from_row(row, self.instrument_id)

    async def run(self, out: FeedOutput, stop: asyncio.Event) -> None:
        tf = Timeframe.parse(self.timeframe)
        batch: list[Any] = []
        previous: datetime | None = None
        out.connected(True)
        try:
            for number, row in enumerate(read_rows(self.path), start=2 if is_csv(self.path) else 1):
                if stop.is_set():
                    return
                try:
                    item = self._bar(row, tf) if self.data == "ohlcv" else self._tick(row)
                except ValidationError as exc:
                    out.rejected(
                        "bad_row", f"{self.path.name} row {number}: {validation_errors(exc)}"
                    )
                    continue
                except (BadRow, ValueError, ArithmeticError) as exc:
                    out.rejected("bad_row", f"{self.path.name} row {number}: {exc}")
                    continue
                moment = item.open_time if isinstance(item, Bar) else item.ts
                if self.speed is not None and previous is not None:
                    await self._flush(out, batch)
                    await self.clock.sleep((moment - previous).total_seconds() / self.speed)
                previous = moment
                batch.append(item)
                if len(batch) >= self.batch_size:
                    await self._flush(out, batch)
            await self._flush(out, batch)
        finally:
            out.connected(False)

    async def _flush(self, out: FeedOutput, batch: list[Any]) -> None:
        if not batch:
            return
        items, batch[:] = list(batch), []
        if self.data == "ohlcv":
            await out.bars(items)
        else:
            await out.ticks(items)
        await asyncio.sleep(0)  # let the rest of the service run between batches
