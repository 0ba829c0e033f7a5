"""The replay feed: an OHLCV or trades file (CSV or Parquet) played at a chosen speed.

Rows are read in file order and published with the file's own timestamps. Speed None is as
fast as possible; a number N sleeps (row gap / N) on the injected clock between rows, so 1 is
real time and a manual clock makes a replay deterministic. A row that does not parse or
validate is reported with its number and skipped; the rest of the file still plays.
"""

from __future__ import annotations

import asyncio
import csv
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError
from trademesh_events.marketdata import Bar, Tick

from trademesh_market_data.clock import Clock
from trademesh_market_data.engine import Timeframe
from trademesh_market_data.feeds.base import FeedOutput

_TIME_KEYS = ("timestamp", "ts", "time", "datetime", "date", "")
_SIZE_KEYS = ("size", "amount", "quantity", "qty", "volume")


class BadRow(ValueError):
    pass


def read_rows(path: Path) -> Iterator[dict[str, Any]]:
    """Rows as dicts with lower-case keys, from a CSV (header row) or a Parquet file."""
    if path.suffix.lower() in {".parquet", ".pq"}:
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=10_000):
            for row in batch.to_pylist():
                yield {str(k).strip().lower(): v for k, v in row.items()}
        return
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            yield {(k or "").strip().lower(): v for k, v in row.items()}


def parse_time(value: Any) -> datetime:
    """ISO date or datetime (naive means UTC), epoch seconds or milliseconds, or a datetime."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day, tzinfo=UTC)
    elif isinstance(value, int | float) or (isinstance(value, str) and _is_number(value)):
        number = float(value)
        moment = datetime.fromtimestamp(number / 1000 if number > 1e11 else number, UTC)
    elif isinstance(value, str) and value.strip():
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    else:
        raise BadRow(f"no time in {value!r}")
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _decimal_text(value: Any) -> str:
    """A cell as decimal text: a float (from Parquet) by its shortest repr, never its binary value."""
    if value is None or value == "":
        raise BadRow("empty number")
    return str(Decimal(repr(value) if isinstance(value, float) else str(value).strip()))


def _pick(row: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if key in row:
            return row[key]
    raise BadRow(f"no column among {', '.join(k or '(unnamed)' for k in keys)}")


def _errors(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'row'}: {e['msg']}"
        for e in exc.errors(include_input=False, include_url=False)
    )


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
        opened = parse_time(_pick(row, _TIME_KEYS))
        return Bar.model_validate(
            {
                "instrument_id": self.instrument_id,
                "timeframe": tf.label,
                "open_time": opened,
                "close_time": opened + tf.delta,
                "open": _decimal_text(_pick(row, ("open", "o"))),
                "high": _decimal_text(_pick(row, ("high", "h"))),
                "low": _decimal_text(_pick(row, ("low", "l"))),
                "close": _decimal_text(_pick(row, ("close", "c"))),
                "volume": _decimal_text(_pick(row, ("volume", "v"))),
                "trades": int(row.get("trades") or 0),
                "final": True,
            }
        )

    def _tick(self, row: dict[str, Any]) -> Tick:
        side = row.get("side")
        trade_id = row.get("trade_id", row.get("id"))
        return Tick.model_validate(
            {
                "instrument_id": self.instrument_id,
                "ts": parse_time(_pick(row, _TIME_KEYS)),
                "price": _decimal_text(_pick(row, ("price", "p"))),
                "size": _decimal_text(_pick(row, _SIZE_KEYS)),
                "side": side.strip().lower() if isinstance(side, str) and side.strip() else None,
                "trade_id": str(trade_id) if trade_id not in (None, "") else None,
            }
        )

    async def run(self, out: FeedOutput, stop: asyncio.Event) -> None:
        tf = Timeframe.parse(self.timeframe)
        batch: list[Any] = []
        previous: datetime | None = None
        out.connected(True)
        try:
            for number, row in enumerate(read_rows(self.path), start=2 if self._is_csv else 1):
                if stop.is_set():
                    return
                try:
                    item = self._bar(row, tf) if self.data == "ohlcv" else self._tick(row)
                except ValidationError as exc:
                    out.rejected("bad_row", f"{self.path.name} row {number}: {_errors(exc)}")
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

    @property
    def _is_csv(self) -> bool:
        return self.path.suffix.lower() not in {".parquet", ".pq"}

    async def _flush(self, out: FeedOutput, batch: list[Any]) -> None:
        if not batch:
            return
        items, batch[:] = list(batch), []
        if self.data == "ohlcv":
            await out.bars(items)
        else:
            await out.ticks(items)
        await asyncio.sleep(0)  # let the rest of the service run between batches
