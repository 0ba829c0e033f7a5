"""The QuestDB tick store: ticks and bars in by ILP over HTTP, history out by SQL over PG wire."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
from questdb import Sender

# questdb 6 re-exports Buffer only from the deprecated `questdb.ingress`; this is where the class
# lives. Building our own buffer lets the ILP payload be made, and tested, without a server.
from questdb._client import Buffer
from trademesh_events.marketdata import Bar, Tick
from trademesh_trading.timeframes import Timeframe

from trademesh_market_data.tickstore import Ohlcv, bar_window, base_timeframe

# Prices, sizes and bar values are DOUBLE columns. The client can send DECIMAL (ILP protocol 3),
# but only QuestDB 9.2+ takes it, and a DECIMAL column has one scale for every instrument (the
# one ILP creates by itself is DECIMAL(18, 3): a size of 0.0001 would not fit). A double holds 15
# significant digits exactly: an amount written with at most 15 comes back as written, because
# Decimal(str(x)) is the shortest text naming the same double; digits past that are rounded on the
# way in. A sum of doubles is only good to 15 digits, so sums are rounded there on the way out
# (a volume reads 0.3, not 0.30000000000000004).
#
# Both tables are created here rather than by ILP's auto-creation, which would name the designated
# timestamp `timestamp`. WAL tables: rows become visible to SQL shortly after a flush returns.
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS ticks ("
    "instrument_id SYMBOL, price DOUBLE, size DOUBLE, side SYMBOL, trade_id VARCHAR, ts TIMESTAMP"
    ") TIMESTAMP(ts) PARTITION BY DAY WAL",
    # Deduplication on the bar's identity: a bar written again (a replay run twice) replaces the
    # stored one, as the Postgres store's upsert does.
    "CREATE TABLE IF NOT EXISTS bars ("
    "instrument_id SYMBOL, timeframe SYMBOL, open DOUBLE, high DOUBLE, low DOUBLE, close DOUBLE, "
    "volume DOUBLE, trades LONG, open_time TIMESTAMP"
    ") TIMESTAMP(open_time) PARTITION BY MONTH WAL "
    "DEDUP UPSERT KEYS(open_time, instrument_id, timeframe)",
)

# Weekly bars start on Monday 1970-01-05 plus a whole number of bars, as in the engine. QuestDB
# floors weeks from Monday 1969-12-29 instead, which differs for bars of an even number of weeks,
# so weekly samples name their origin with FROM. Other units are floored to multiples of the
# interval from the epoch by ALIGN TO CALENDAR, as the engine does.
_WEEK_ORIGIN = "1970-01-05T00:00:00.000000Z"


def ilp_ticks(ticks: Sequence[Tick], *, protocol_version: int) -> Buffer:
    """ILP rows for the `ticks` table, encoded for the given ILP protocol version."""
    buffer = Buffer(protocol_version=protocol_version)
    for tick in ticks:
        buffer.row(
            "ticks",
            # None leaves the cell out: the row stores NULL.
            symbols={"instrument_id": tick.instrument_id, "side": tick.side},
            columns={
                "price": float(tick.price),
                "size": float(tick.size),
                "trade_id": tick.trade_id,
            },
            at=tick.ts,
        )
    return buffer


def ilp_bars(bars: Sequence[Bar], *, protocol_version: int) -> Buffer:
    """ILP rows for the `bars` table: final bars only (an in-progress update is not history)."""
    buffer = Buffer(protocol_version=protocol_version)
    for bar in bars:
        if not bar.final:
            continue
        buffer.row(
            "bars",
            symbols={"instrument_id": bar.instrument_id, "timeframe": bar.timeframe},
            columns={
                "open": float(bar.open),
                "high": float(bar.high),
                "low": float(bar.low),
                "close": float(bar.close),
                "volume": float(bar.volume),
                "trades": bar.trades,
            },
            at=bar.open_time,
        )
    return buffer


def sample_interval(timeframe: Timeframe) -> str:
    """`timeframe` as a SAMPLE BY interval, e.g. `5m`.

    The interval is the one piece of text formatted into SQL (QuestDB takes no bind variable
    there), so it comes only from a label that parses as a Timeframe: digits, then one of
    s, m, h, d, w, which are QuestDB's units too (lowercase m is minutes; months are M).
    """
    checked = Timeframe.parse(timeframe.label)
    if checked.seconds != timeframe.seconds:
        raise ValueError(f"timeframe {timeframe.label!r} does not match {timeframe.seconds}s")
    return checked.label


class _QuestDbConnection(asyncpg.Connection):  # type: ignore[misc]
    """A connection that asks nothing of QuestDB when it goes back to the pool.

    asyncpg's default reset (advisory unlock, CLOSE ALL, UNLISTEN, RESET ALL) undoes Postgres
    session state that a QuestDB session never has, and QuestDB need not understand it.
    """

    def get_reset_query(self) -> str:
        return ""


def _to_questdb(ts: datetime) -> datetime:
    # QuestDB's TIMESTAMP travels as Postgres `timestamp` (no zone), whose asyncpg codec refuses
    # an aware datetime: send the same instant as naive UTC.
    return ts.astimezone(UTC).replace(tzinfo=None) if ts.tzinfo is not None else ts


def _from_questdb(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _stored(value: float) -> Decimal:
    # A value as stored (first, last, min, max): its shortest text is the amount that was written.
    return Decimal(str(value))


def _summed(value: float) -> Decimal:
    return Decimal(f"{value:.15g}")


class QuestDbTickStore:
    """The TickStore on QuestDB: ILP over HTTP in (the `questdb` client), SQL over PG wire out.

    `ilp_conf` is a client configuration string such as `http::addr=questdb:9000;`; `pg_dsn`
    a Postgres DSN for QuestDB's PG wire port, e.g. `postgresql://admin:quest@questdb:8812/qdb`.
    `connect()` opens the pool and creates the tables; `close()` releases both sides.
    """

    def __init__(
        self,
        ilp_conf: str,
        pg_dsn: str,
        *,
        pool_min_size: int = 1,
        pool_max_size: int = 4,
        command_timeout: float = 30.0,
    ) -> None:
        self.ilp_conf = ilp_conf
        self.pg_dsn = pg_dsn
        self.pool_min_size = pool_min_size
        self.pool_max_size = pool_max_size
        self.command_timeout = command_timeout
        self._pool: asyncpg.Pool | None = None
        self._sender: Sender | None = None
        # A sender is used by one thread at a time. A threading lock rather than an asyncio one:
        # a cancelled write leaves its worker thread running, and the next must still wait.
        self._sender_lock = threading.Lock()

    async def connect(self) -> None:
        if self._pool is None:
            self._pool = await asyncpg.create_pool(
                dsn=self.pg_dsn,
                min_size=self.pool_min_size,
                max_size=self.pool_max_size,
                command_timeout=self.command_timeout,
                connection_class=_QuestDbConnection,
            )
        await self.ensure_schema()

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()
        await asyncio.to_thread(self._close_sender)

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("QuestDbTickStore.connect() has not been awaited")
        return self._pool

    async def ensure_schema(self) -> None:
        async with self.pool.acquire() as conn:
            for ddl in _SCHEMA:
                await conn.execute(ddl)

    async def check_ready(self, timeout: float = 2.0) -> None:
        """Readiness: a fresh round trip over PG wire (raises when QuestDB is unreachable).

        A new connection rather than a pooled one: a pooled connection can look healthy while
        the server is gone until it is used; this answers for the server, now.
        """
        conn = await asyncio.wait_for(
            asyncpg.connect(self.pg_dsn, timeout=timeout, connection_class=_QuestDbConnection),
            timeout,
        )
        try:
            await asyncio.wait_for(conn.fetchval("SELECT 1"), timeout)
        finally:
            await conn.close(timeout=timeout)

    async def write_ticks(self, ticks: Sequence[Tick]) -> None:
        if ticks:
            await self._send(lambda version: ilp_ticks(ticks, protocol_version=version))

    async def write_bars(self, bars: Sequence[Bar]) -> None:
        """Final bars; a bar written again replaces the stored one (the table deduplicates)."""
        if any(bar.final for bar in bars):
            await self._send(lambda version: ilp_bars(bars, protocol_version=version))

    async def _send(self, build: Callable[[int], Buffer]) -> None:
        # The client blocks on HTTP (with its own retries); keep it off the event loop.
        await asyncio.to_thread(self._flush, build)

    def _flush(self, build: Callable[[int], Buffer]) -> None:
        with self._sender_lock:
            # Not `self._sender or ...`: a Sender's truth is its count of unsent bytes.
            sender = self._sender if self._sender is not None else self._open_sender()
            # Built after the sender is open: the payload's encoding depends on the protocol
            # version the sender agreed with the server (doubles are binary from version 2).
            buffer = build(sender.protocol_version)
            try:
                # Each buffer holds one table's rows, so it commits all or nothing: a batch the
                # server refuses leaves no part of itself behind for the writer's retry to double.
                sender.flush(buffer, transactional=True)
            except Exception:
                # Start afresh next time (the server may have restarted, even been upgraded).
                self._close_sender_locked()
                raise

    def _open_sender(self) -> Sender:
        sender = Sender.from_conf(self.ilp_conf)
        try:
            # Over HTTP this asks the server which ILP protocol versions it speaks.
            sender.establish()  # type: ignore[no-untyped-call]
        except Exception:
            sender.close(flush=False)
            raise
        self._sender = sender
        return sender

    def _close_sender(self) -> None:
        with self._sender_lock:
            self._close_sender_locked()

    def _close_sender_locked(self) -> None:
        sender, self._sender = self._sender, None
        if sender is not None:
            sender.close(flush=False)

    async def ohlcv(
        self, instrument: str, timeframe: Timeframe, start: datetime, end: datetime, limit: int
    ) -> list[Ohlcv]:
        """Bars of `timeframe` opening in [start, end), oldest first, at most `limit`.

        From the stored bars whose timeframe divides the one asked for (the coarsest such),
        else from the ticks, as the Postgres store does.
        """
        # The only text formatted into the queries below (hence the noqa): an interval rebuilt
        # from a validated Timeframe and a constant origin. Every value is a bound parameter.
        interval = sample_interval(timeframe)
        origin = f" FROM '{_WEEK_ORIGIN}'" if timeframe.weekly else ""
        sample = f"SAMPLE BY {interval}{origin} ALIGN TO CALENDAR"
        stored = await self.pool.fetch(
            "SELECT DISTINCT timeframe FROM bars WHERE instrument_id = $1", instrument
        )
        base = base_timeframe(timeframe, [row["timeframe"] for row in stored])
        start, end = bar_window(timeframe, start, end)
        if base is not None:
            # first/last follow the designated timestamp, so they are the earliest bar's open
            # and the latest bar's close.
            rows = await self.pool.fetch(
                "SELECT open_time AS bucket, first(open) AS open, max(high) AS high, "  # noqa: S608
                "min(low) AS low, last(close) AS close, sum(volume) AS volume, "
                "sum(trades) AS trades "
                "FROM bars WHERE instrument_id = $1 AND timeframe = $2 "
                f"AND open_time >= $3 AND open_time < $4 {sample} LIMIT $5",
                instrument,
                base.label,
                _to_questdb(start),
                _to_questdb(end),
                limit,
            )
        else:
            rows = await self.pool.fetch(
                "SELECT ts AS bucket, first(price) AS open, max(price) AS high, "  # noqa: S608
                "min(price) AS low, last(price) AS close, sum(size) AS volume, "
                "count() AS trades "
                "FROM ticks WHERE instrument_id = $1 "
                f"AND ts >= $2 AND ts < $3 {sample} LIMIT $4",
                instrument,
                _to_questdb(start),
                _to_questdb(end),
                limit,
            )
        result = []
        for row in rows:
            bucket = _from_questdb(row["bucket"])
            result.append(
                Ohlcv(
                    open_time=bucket,
                    close_time=bucket + timeframe.delta,
                    open=_stored(row["open"]),
                    high=_stored(row["high"]),
                    low=_stored(row["low"]),
                    close=_stored(row["close"]),
                    volume=_summed(row["volume"]),
                    trades=int(row["trades"]),
                )
            )
        return result

    async def last_price(self, instrument: str) -> tuple[datetime, Decimal] | None:
        """The latest tick's price, else the latest bar's close (at its close time)."""
        row = await self.pool.fetchrow(
            "SELECT ts, price FROM ticks WHERE instrument_id = $1 "
            "LATEST ON ts PARTITION BY instrument_id",
            instrument,
        )
        if row is not None:
            return _from_questdb(row["ts"]), _stored(row["price"])
        # The latest bar of each timeframe; the one closing last wins (a day bar opened before
        # a minute bar may close after it).
        rows = await self.pool.fetch(
            "SELECT timeframe, open_time, close FROM bars WHERE instrument_id = $1 "
            "LATEST ON open_time PARTITION BY timeframe",
            instrument,
        )
        closes = [
            (
                _from_questdb(r["open_time"]) + Timeframe.parse(r["timeframe"]).delta,
                _stored(r["close"]),
            )
            for r in rows
        ]
        return max(closes, key=lambda close: close[0]) if closes else None
