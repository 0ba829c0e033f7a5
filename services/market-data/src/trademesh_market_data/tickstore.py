"""The tick store: one interface, Postgres here (embedded mode); QuestDB for compose and Kubernetes.

History is resampled by the database: from the stored bars whose timeframe divides the one
asked for (the coarsest such), else from the ticks themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from trademesh_db import Database
from trademesh_events.marketdata import Bar, Tick
from trademesh_events.money import Amount
from trademesh_trading.timeframes import Timeframe

_EPOCH = "1970-01-01T00:00:00Z"
_MONDAY = "1970-01-05T00:00:00Z"


@dataclass(frozen=True)
class Ohlcv:
    open_time: datetime
    close_time: datetime
    open: Amount  # Amount: a plain decimal string in the API's JSON
    high: Amount
    low: Amount
    close: Amount
    volume: Amount
    trades: int


def base_timeframe(target: Timeframe, stored: list[str]) -> Timeframe | None:
    """The coarsest stored bar timeframe that adds up to `target`, or None (use the ticks)."""
    usable = [base for base in map(Timeframe.parse, stored) if target.built_from(base)]
    return max(usable) if usable else None


def bar_window(target: Timeframe, start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The source rows that make the bars opening in [start, end), each one whole: from the
    first interval start at or after `start` to the first at or after `end`."""
    return target.ceil(start), target.ceil(end)


class TickStore(Protocol):
    async def write_ticks(self, ticks: Sequence[Tick]) -> None: ...

    async def write_bars(self, bars: Sequence[Bar]) -> None: ...

    async def ohlcv(
        self, instrument: str, timeframe: Timeframe, start: datetime, end: datetime, limit: int
    ) -> list[Ohlcv]: ...

    async def last_price(self, instrument: str) -> tuple[datetime, Decimal] | None: ...


class PostgresTickStore:
    """Ticks by COPY, bars by upsert, history with date_bin in SQL."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def write_ticks(self, ticks: Sequence[Tick]) -> None:
        if not ticks:
            return
        records = [(t.instrument_id, t.ts, t.price, t.size, t.side, t.trade_id) for t in ticks]
        async with self.db.pool.acquire() as conn:
            await conn.copy_records_to_table(
                "ticks",
                records=records,
                columns=("instrument_id", "ts", "price", "size", "side", "trade_id"),
            )

    async def write_bars(self, bars: Sequence[Bar]) -> None:
        """Final bars; a bar written again (a replay run twice) replaces the stored one."""
        rows = [
            (
                b.instrument_id,
                b.timeframe,
                b.open_time,
                b.close_time,
                b.open,
                b.high,
                b.low,
                b.close,
                b.volume,
                b.trades,
            )
            for b in bars
            if b.final
        ]
        if not rows:
            return
        async with self.db.transaction() as conn:
            await conn.executemany(
                "INSERT INTO bars (instrument_id, timeframe, open_time, close_time, open, high, "
                "low, close, volume, trades) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
                "ON CONFLICT (instrument_id, timeframe, open_time) DO UPDATE SET "
                "close_time = EXCLUDED.close_time, open = EXCLUDED.open, high = EXCLUDED.high, "
                "low = EXCLUDED.low, close = EXCLUDED.close, volume = EXCLUDED.volume, "
                "trades = EXCLUDED.trades",
                rows,
            )

    async def ohlcv(
        self, instrument: str, timeframe: Timeframe, start: datetime, end: datetime, limit: int
    ) -> list[Ohlcv]:
        """Bars of `timeframe` opening in [start, end), oldest first, at most `limit`."""
        stored = await self.db.pool.fetch(
            "SELECT DISTINCT timeframe FROM bars WHERE instrument_id = $1", instrument
        )
        base = base_timeframe(timeframe, [row["timeframe"] for row in stored])
        start, end = bar_window(timeframe, start, end)
        origin = _MONDAY if timeframe.weekly else _EPOCH
        interval = timeframe.delta
        if base is not None:
            rows = await self.db.pool.fetch(
                "SELECT date_bin($1::interval, open_time, $2::timestamptz) AS bucket, "
                "(array_agg(open ORDER BY open_time))[1] AS open, max(high) AS high, "
                "min(low) AS low, (array_agg(close ORDER BY open_time DESC))[1] AS close, "
                "sum(volume) AS volume, sum(trades)::int AS trades "
                "FROM bars WHERE instrument_id = $3 AND timeframe = $4 "
                "AND open_time >= $5 AND open_time < $6 "
                "GROUP BY bucket ORDER BY bucket LIMIT $7",
                interval,
                datetime.fromisoformat(origin),
                instrument,
                base.label,
                start,
                end,
                limit,
            )
        else:
            rows = await self.db.pool.fetch(
                "SELECT date_bin($1::interval, ts, $2::timestamptz) AS bucket, "
                "(array_agg(price ORDER BY ts))[1] AS open, max(price) AS high, "
                "min(price) AS low, (array_agg(price ORDER BY ts DESC))[1] AS close, "
                "sum(size) AS volume, count(*)::int AS trades "
                "FROM ticks WHERE instrument_id = $3 AND ts >= $4 AND ts < $5 "
                "GROUP BY bucket ORDER BY bucket LIMIT $6",
                interval,
                datetime.fromisoformat(origin),
                instrument,
                start,
                end,
                limit,
            )
        return [
            Ohlcv(
                open_time=row["bucket"],
                close_time=row["bucket"] + interval,
                open=row["open"],
                high=row["high"],
                low=row["low"],
                close=row["close"],
                volume=row["volume"],
                trades=row["trades"],
            )
            for row in rows
        ]

    async def last_price(self, instrument: str) -> tuple[datetime, Decimal] | None:
        """The latest tick's price, else the latest bar's close."""
        row = await self.db.pool.fetchrow(
            "SELECT ts, price FROM ticks WHERE instrument_id = $1 ORDER BY ts DESC LIMIT 1",
            instrument,
        )
        if row is None:
            row = await self.db.pool.fetchrow(
                "SELECT close_time AS ts, close AS price FROM bars WHERE instrument_id = $1 "
                "ORDER BY close_time DESC LIMIT 1",
                instrument,
            )
        return (row["ts"], row["price"]) if row is not None else None
