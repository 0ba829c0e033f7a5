"""Price files: OHLCV bars or trades from CSV or Parquet (with pyarrow installed), as events (the replay feed and the
backtest CLI read the same formats).

Columns are matched case-insensitively: a time column (`timestamp`, `ts`, `time`, `datetime`,
`date` or an unnamed first column), `open high low close volume` (or `o h l c v`) for bars,
`price` and `size`/`amount`/`quantity` (plus optional `side` and `trade_id`/`id`) for trades.
Times are ISO dates or datetimes (naive means UTC), or epoch seconds or milliseconds.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from trademesh_events.ids import InstrumentId
from trademesh_events.marketdata import Bar, Tick

TIME_KEYS = ("timestamp", "ts", "time", "datetime", "date", "")
SIZE_KEYS = ("size", "amount", "quantity", "qty", "volume")


class BadRow(ValueError):
    """A row that cannot become an event; the message says why (never the whole row)."""


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


def decimal_text(value: Any) -> str:
    """A cell as decimal text: a float (from Parquet) by its shortest repr, never its binary value."""
    if value is None or value == "":
        raise BadRow("empty number")
    return str(Decimal(repr(value) if isinstance(value, float) else str(value).strip()))


def pick(row: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if key in row:
            return row[key]
    raise BadRow(f"no column among {', '.join(k or '(unnamed)' for k in keys)}")


def validation_errors(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'row'}: {e['msg']}"
        for e in exc.errors(include_input=False, include_url=False)
    )


def bar_from_row(
    row: dict[str, Any], instrument_id: InstrumentId, timeframe: str, length: timedelta
) -> Bar:
    """A final bar of `timeframe` (`length` long) from an OHLCV row; BadRow or pydantic's
    ValidationError when the row is not a valid bar."""
    opened = parse_time(pick(row, TIME_KEYS))
    return Bar.model_validate(
        {
            "instrument_id": instrument_id,
            "timeframe": timeframe,
            "open_time": opened,
            "close_time": opened + length,
            "open": decimal_text(pick(row, ("open", "o"))),
            "high": decimal_text(pick(row, ("high", "h"))),
            "low": decimal_text(pick(row, ("low", "l"))),
            "close": decimal_text(pick(row, ("close", "c"))),
            "volume": decimal_text(pick(row, ("volume", "v"))),
            "trades": int(row.get("trades") or 0),
            "final": True,
        }
    )


def tick_from_row(row: dict[str, Any], instrument_id: InstrumentId) -> Tick:
    """A tick from a trades row; BadRow or ValidationError when it is not a valid tick."""
    side = row.get("side")
    trade_id = row.get("trade_id", row.get("id"))
    return Tick.model_validate(
        {
            "instrument_id": instrument_id,
            "ts": parse_time(pick(row, TIME_KEYS)),
            "price": decimal_text(pick(row, ("price", "p"))),
            "size": decimal_text(pick(row, SIZE_KEYS)),
            "side": side.strip().lower() if isinstance(side, str) and side.strip() else None,
            "trade_id": str(trade_id) if trade_id not in (None, "") else None,
        }
    )


def is_csv(path: Path) -> bool:
    return path.suffix.lower() not in {".parquet", ".pq"}


def bar_times(path: Path) -> list[datetime]:
    """The time of every row of a price file that has a readable one (the others are left to
    load_bars to refuse): what the timeframe of a file is inferred from."""
    times: list[datetime] = []
    for row in read_rows(path):
        try:
            times.append(parse_time(pick(row, TIME_KEYS)))
        except (BadRow, ValueError, OverflowError, OSError):
            continue
    return times


def load_bars(
    path: Path, instrument_id: InstrumentId, timeframe: str, length: timedelta
) -> tuple[list[Bar], list[str]]:
    """Every valid bar of an OHLCV file, and one line per row refused (with its row number)."""
    bars: list[Bar] = []
    refused: list[str] = []
    for number, row in enumerate(read_rows(path), start=2 if is_csv(path) else 1):
        try:
            bars.append(bar_from_row(row, instrument_id, timeframe, length))
        except ValidationError as exc:
            refused.append(f"{path.name} row {number}: {validation_errors(exc)}")
        except (BadRow, ValueError, ArithmeticError) as exc:
            refused.append(f"{path.name} row {number}: {exc}")
    return bars, refused
