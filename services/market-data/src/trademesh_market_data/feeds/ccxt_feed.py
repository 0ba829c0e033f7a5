"""The ccxt feed: live trades and final OHLCV bars of one symbol from any ccxt exchange."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import ccxt
from pydantic import TypeAdapter, ValidationError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception
from tenacity.wait import wait_exponential, wait_random
from trademesh_events.ids import InstrumentId
from trademesh_events.marketdata import Bar, Tick
from trademesh_exchange.errors import Classified, Failure, classify
from trademesh_exchange.exchanges import exchange_class
from trademesh_exchange.guards import (
    Parser,
    PlaceholderCandle,
    guard,
    install,
    is_placeholder,
    placeholder,
    placeholder_candle,
)
from trademesh_exchange.parsing import (
    BadValue,
    millis_of,
    parse_decimal,
    parse_millis,
    time_of_millis,
)
from trademesh_trading.timeframes import Timeframe

from trademesh_market_data.clock import Clock
from trademesh_market_data.feeds.base import FeedOutput

if TYPE_CHECKING:
    from trademesh_market_data.catalog import CcxtConfig

log = logging.getLogger("trademesh.market_data.ccxt")

T = TypeVar("T")

# What the feed takes for a failed connection rather than an answer (see `is_network_error`).
_NETWORK = frozenset(
    {
        Failure.TIMED_OUT,
        Failure.UNREACHABLE,
        Failure.BAD_RESPONSE,
        Failure.TRY_AGAIN,
        Failure.TRANSPORT,
    }
)


def _network(found: Classified) -> bool:
    # ccxt reports a body cut off mid-transfer as an ExchangeError caused by aiohttp's error.
    refused = found.failure in (Failure.CONFIGURATION, Failure.REFUSED)
    return found.failure in _NETWORK or (refused and found.transport is not None)


def is_network_error(exc: BaseException) -> bool:
    """The connection failed rather than the exchange answering (so: reconnect): ccxt's
    OperationFailed (NetworkError and its subclasses, the exchange's own "try again" answers such
    as Binance's -1001 on a 503, and answers ccxt cannot read), an OSError or a timeout, or an
    exchange error that a transport failure caused (`trademesh_exchange.errors`)."""
    return _network(classify(exc))


def _retryable(exc: BaseException) -> bool:
    # A configuration error (credentials, unknown symbol, unsupported feature) is the exchange
    # telling us the request can never work: retrying cannot help.
    found = classify(exc)
    if found.failure is Failure.CONFIGURATION:
        return False
    return _network(found) or found.from_ccxt


def _unreadable(exc: Exception) -> str:
    return f"unreadable ({type(exc).__name__}: {exc})"


def _errors(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'record'}: {e['msg']}"
        for e in exc.errors(include_input=False, include_url=False)
    )


class _Bounded:
    """The last `size` keys seen: a set with first-in-first-out eviction, for deduplication."""

    def __init__(self, size: int) -> None:
        self._order: deque[Hashable] = deque()
        self._keys: set[Hashable] = set()
        self._size = size

    def __contains__(self, key: Hashable) -> bool:
        return key in self._keys

    def add(self, key: Hashable) -> None:
        if key in self._keys:
            return
        self._order.append(key)
        self._keys.add(key)
        while len(self._order) > self._size:
            self._keys.discard(self._order.popleft())


@dataclass
class CcxtFeed:
    """Trades (as Ticks) and final bars of `timeframe` for `symbol` on ccxt's `exchange_id`.

    Each stream (trades, bars) uses the exchange's WebSocket (`watch_trades` / `watch_ohlcv`, from
    ccxt.pro) when `use_websocket` is on and the exchange has it, and otherwise polls REST
    (`fetch_trades` / `fetch_ohlcv`) every `poll_interval` seconds of the injected clock.

    Failures: network errors (ccxt.NetworkError and its subclasses ExchangeNotAvailable and
    RequestTimeout, ccxt.OperationFailed, OSError, timeouts) are retried with exponential backoff
    plus jitter (tenacity, sleeping on the clock); the first failure reports `connected(False)`,
    the next data `connected(True)`, and a return after a drop counts in `reconnects` (and calls
    `on_reconnect`). Other exchange errors are reported as rejections and retried the same way;
    configuration errors (unknown symbol, unsupported timeframe, credentials) end `run`.

    Trades start from the exchange's latest ones (no trade history is replayed); after a drop the
    trades since the last one published are fetched before live ones resume, and trades are
    deduplicated by id (or by time, price, size and side) over the last `dedup_size`.

    Bars: a bar is emitted once, when final: its close time is at or before the open time of a
    later candle the exchange has sent, or the clock's now. The feed keeps the open time of the
    last bar it emitted, and on start (from `since`, default the current interval) and after every
    drop it first fetches the bars from there on over REST, page by page, so none is missing.

    Exchange data is untrusted: a trade or candle with a missing, non-numeric, NaN, infinite or
    negative value, or a timestamp that does not parse, is reported with `rejected` (once per
    distinct record) and skipped; ccxt's parsers are guarded too, so one bad record never costs
    the rest of its response.
    """

    instrument_id: str
    exchange_id: str
    symbol: str
    clock: Clock
    timeframe: str = "1m"
    poll_interval: float = 2.0
    use_websocket: bool = True
    with_trades: bool = True
    with_bars: bool = True
    # First bar to emit (floored to the timeframe); None: the interval in progress at start.
    since: datetime | None = None
    exchange_options: dict[str, Any] | None = None
    # A ready ccxt exchange object (tests); the feed owns it from `run` on and closes it.
    exchange: Any = None
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    # Records dated later than now + this are refused: one far-future candle would otherwise
    # finalise every pending bar and then block all later ones as "already emitted".
    max_clock_skew: float = 300.0
    dedup_size: int = 10_000
    on_reconnect: Callable[[], None] | None = None
    kind: str = "ccxt"
    live: bool = True
    reconnects: int = field(default=0, init=False)
    """Times data flowed again after the connection had dropped (also `on_reconnect` calls)."""
    connection_errors: int = field(default=0, init=False)
    """Failed exchange calls that were network errors (each one retried after a backoff)."""

    def __post_init__(self) -> None:
        TypeAdapter(InstrumentId).validate_python(self.instrument_id)
        Timeframe.parse(self.timeframe)
        if self.since is not None and self.since.utcoffset() is None:
            raise ValueError("since must be timezone-aware")
        if self.poll_interval <= 0 or self.backoff_initial <= 0 or self.backoff_max <= 0:
            raise ValueError("poll_interval and the backoff settings must be positive")
        if not (self.with_trades or self.with_bars):
            raise ValueError("a ccxt feed needs trades, bars or both")

    @classmethod
    def for_instrument(cls, instrument_id: str, clock: Clock, **options: Any) -> CcxtFeed:
        """A feed for `exchange:SYMBOL`, e.g. `binance:BTC/USDT`."""
        exchange_id, _, symbol = instrument_id.partition(":")
        return cls(instrument_id, exchange_id, symbol, clock, **options)

    @classmethod
    def from_config(
        cls, instrument_id: str, config: CcxtConfig, *, clock: Clock, **options: Any
    ) -> CcxtFeed:
        """A feed for a stored CcxtConfig (exchange, symbol, use_websocket, poll_interval_s)."""
        return cls(
            instrument_id,
            config.exchange,
            config.symbol,
            clock,
            use_websocket=config.use_websocket,
            poll_interval=config.poll_interval_s,
            **options,
        )

    # -- running ---------------------------------------------------------------------------

    async def run(self, out: FeedOutput, stop: asyncio.Event) -> None:
        exchange = self.exchange if self.exchange is not None else self._build_exchange()
        exchange.enableRateLimit = True  # also on a ready-made exchange: the venue's limits hold
        session = _Session(self, exchange, out)
        body = asyncio.create_task(session.produce(), name=f"ccxt-{self.instrument_id}")
        stopped = asyncio.create_task(stop.wait())
        try:
            # A stop must not wait for a long poll, a watch or a backoff to end: cancel them,
            # but not in the middle of handing a batch to the output.
            await asyncio.wait({body, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if body.done():
                body.result()  # a configuration error ends the feed with its exception
            async with session.emitting:
                body.cancel()
        finally:
            for task in (body, stopped):
                task.cancel()
            await asyncio.gather(body, stopped, return_exceptions=True)
            session.close_link()
            try:
                await exchange.close()
            except Exception:
                log.warning("closing the exchange failed", exc_info=True)

    def _build_exchange(self) -> Any:
        config = {**(self.exchange_options or {}), "enableRateLimit": True}
        # ccxt.pro classes are the REST classes plus watch_*: use them only when WebSocket is on.
        return exchange_class(self.exchange_id, websocket=self.use_websocket).type(config)


class _Session:
    """The state of one `run`: connection, parser guards, dedup, and the bar position."""

    def __init__(self, feed: CcxtFeed, exchange: Any, out: FeedOutput) -> None:
        self.feed = feed
        self.ex = exchange
        self.out = out
        self.tf = Timeframe.parse(feed.timeframe)
        self.tf_ms = self.tf.seconds * 1000
        self.skew_ms = int(feed.max_clock_skew * 1000)
        # Connection: None until the first call ends; `generation` moves on every failure,
        # so a stream can tell that it may have missed data and must catch up.
        self.up: bool | None = None
        self.ever_up = False
        self.generation = 0
        self.synced: dict[str, int] = {}  # stream -> the generation it last caught up at
        # Trades: ids (or a content key) already published, and the newest trade time.
        self.seen_trades = _Bounded(feed.dedup_size)
        self.reported = _Bounded(feed.dedup_size)
        self.last_trade_ms: int | None = None
        self.trades_stalled = False
        # Bars: the last emitted open time, the newest open time the exchange has shown, and
        # candles seen but not final yet (their latest version wins).
        start = feed.since if feed.since is not None else feed.clock.now()
        self.last_open_ms = millis_of(self.tf.floor(start)) - self.tf_ms
        self.latest_open_ms: int | None = None
        self.pending: dict[int, Bar] = {}
        self.emitting = asyncio.Lock()  # held while a batch is handed to the output

    # -- connection ------------------------------------------------------------------------

    def alive(self) -> None:
        if self.up is True:
            return
        returning = self.up is False and self.ever_up
        self.up = self.ever_up = True
        self.out.connected(True)
        if returning:
            self.feed.reconnects += 1
            if self.feed.on_reconnect is not None:
                self.feed.on_reconnect()

    def _failed(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        self.generation += 1
        if exc is not None and not is_network_error(exc):
            # The exchange answered with an error: the link is up, the request failed.
            self.out.rejected("exchange_error", f"{type(exc).__name__}: {exc}"[:500])
            return
        self.feed.connection_errors += 1
        log.warning(
            "exchange unreachable, retrying",
            extra={"instrument": self.feed.instrument_id, "error": repr(exc), "wait_s": wait},
        )
        if self.up is not False:
            self.up = False
            self.out.connected(False)

    def close_link(self) -> None:
        if self.up:
            self.up = False
            self.out.connected(False)

    async def call(self, request: Callable[[], Awaitable[T]]) -> T:
        """One exchange call, retried through outages with exponential backoff and jitter."""
        feed = self.feed
        retrying = AsyncRetrying(
            retry=retry_if_exception(_retryable),
            # initial * 2^(n-1), capped, plus up to `initial` at random so that many feeds
            # cut off together do not come back in lockstep.
            wait=wait_exponential(multiplier=feed.backoff_initial, max=feed.backoff_max)
            + wait_random(0, feed.backoff_initial),
            sleep=feed.clock.sleep,
            before_sleep=self._failed,
            reraise=True,
        )
        result: T = await retrying(request)
        self.alive()
        return result

    async def fetch(self, what: str, request: Callable[[], Awaitable[Any]]) -> list[Any]:
        """A REST or WebSocket call whose answer ccxt could not even shape: reported, empty."""
        try:
            result = await self.call(request)
        except Exception as exc:
            found = classify(exc)
            if found.from_ccxt or _network(found):
                raise
            self.out.rejected(f"bad_{what}", f"{type(exc).__name__}: {exc}"[:500])
            return []
        return list(result) if isinstance(result, list | tuple) else []

    # -- setup -----------------------------------------------------------------------------

    async def produce(self) -> None:
        feed, ex = self.feed, self.ex
        self._guard_parsers()
        await self.call(ex.load_markets)
        ex.market(feed.symbol)  # BadSymbol: a configuration error, not retried
        timeframes = getattr(ex, "timeframes", None)
        trades_ws = feed.use_websocket and bool(ex.has.get("watchTrades"))
        if feed.with_trades and not (trades_ws or ex.has.get("fetchTrades")):
            raise ccxt.NotSupported(f"{ex.id} has no public trades")
        if feed.with_bars:
            if not ex.has.get("fetchOHLCV"):
                raise ccxt.NotSupported(f"{ex.id} has no OHLCV, needed for bars and gap fill")
            if timeframes and feed.timeframe not in timeframes:
                raise ccxt.NotSupported(f"{ex.id} has no {feed.timeframe} bars")
        streams: list[Awaitable[None]] = []
        if feed.with_trades:
            streams.append(self._trades_ws() if trades_ws else self._trades_rest())
        if feed.with_bars:
            ws = feed.use_websocket and bool(ex.has.get("watchOHLCV"))
            streams.append(self._bars_ws() if ws else self._bars_rest())
        tasks = [asyncio.ensure_future(stream) for stream in streams]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _guard_parsers(self) -> None:
        """Guard ccxt's per-record parsers (`trademesh_exchange.guards`): a record they choke
        on, or whose time they cannot read (ccxt then silently drops it), is reported and turned
        into a placeholder that ccxt drops or this feed skips, instead of failing the whole
        response. ccxt's own parsers are kept on the exchange, so that a second run of a
        ready-made exchange reports to its own output rather than guarding a guard."""
        install(
            self.ex,
            {
                "parse_trade": self._trade_guard,
                "parse_ws_trade": self._trade_guard,
                "parse_ohlcv": self._candle_guard,
            },
        )

    def _trade_guard(self, parse: Parser) -> Parser:
        def refuse(trade: Any, market: Any, reason: str) -> Any:
            self.report("bad_trade", reason, trade)
            # Time 0 and an empty id: ccxt sorts trades by (timestamp, id) and cannot compare
            # None with numbers, and a `since` filter drops time 0; this feed skips the mark.
            return placeholder(trade, market, reason)

        def undated(parsed: Any) -> str | None:
            fresh = isinstance(parsed, dict) and not is_placeholder(parsed)
            if fresh and parsed.get("timestamp") is None:
                return "timestamp does not parse"
            return None

        return guard(parse, unreadable=_unreadable, refuse=refuse, check=undated)

    def _candle_guard(self, parse: Parser) -> Parser:
        def refuse(candle: Any, market: Any, reason: str) -> Any:
            self.report("bad_candle", reason, candle)
            return placeholder_candle()

        def undated(parsed: Any) -> str | None:
            if not isinstance(parsed, list | tuple) or not parsed or parsed[0] is None:
                return "timestamp does not parse"
            return None

        return guard(parse, unreadable=_unreadable, refuse=refuse, check=undated)

    def report(self, reason: str, detail: str, record: Any) -> None:
        """Reject a record once: a poll that returns it again does not count it again."""
        text = repr(record)
        if len(text) > 300:
            text = text[:300] + "..."
        key = (reason, text)
        if key in self.reported:
            return
        self.reported.add(key)
        self.out.rejected(reason, f"{self.feed.instrument_id}: {detail} in {text}")

    # -- trades ----------------------------------------------------------------------------

    async def _trades_rest(self) -> None:
        symbol = self.feed.symbol
        while True:
            # Ask from the newest trade on (inclusive: dedup drops the repeats), so a busy
            # market loses nothing between polls. Some exchanges cap a `since` query's window
            # (Binance: one hour), so after a poll with nothing new, ask for the latest trades.
            since = None if self.trades_stalled else self.last_trade_ms
            trades = await self.fetch(
                "response", partial(self.ex.fetch_trades, symbol, since=since)
            )
            new = await self.publish_trades(trades)
            self.trades_stalled = since is not None and new == 0
            await self.feed.clock.sleep(self.feed.poll_interval)

    async def _trades_ws(self) -> None:
        symbol = self.feed.symbol
        await self._catch_up("trades", self._missed_trades)
        while True:
            trades = await self.fetch("message", partial(self.ex.watch_trades, symbol))
            # If the stream dropped while we waited, the trades traded meanwhile go out
            # before these newer ones.
            await self._catch_up("trades", self._missed_trades)
            await self.publish_trades(trades)

    async def _missed_trades(self) -> None:
        if self.last_trade_ms is None or not self.ex.has.get("fetchTrades"):
            return  # nothing published yet (live trades are all there is), or no history
        since = self.last_trade_ms
        await self.publish_trades(
            await self.fetch(
                "response", partial(self.ex.fetch_trades, self.feed.symbol, since=since)
            )
        )

    async def _catch_up(self, stream: str, catch_up: Callable[[], Awaitable[None]]) -> None:
        """Run `catch_up` for a stream that has not caught up since the latest failure (or its
        start), again if a failure happens meanwhile."""
        while self.synced.get(stream) != self.generation:
            self.synced[stream] = self.generation
            await catch_up()

    async def publish_trades(self, trades: Iterable[Any]) -> int:
        """Publish the valid trades not published yet, oldest first; the number published."""
        now_ms = millis_of(self.feed.clock.now())
        ticks: list[tuple[int, Tick]] = []
        for trade in trades:
            if is_placeholder(trade):
                continue
            try:
                ms, tick = self._tick(trade, now_ms)
            except BadValue as exc:
                self.report("bad_trade", str(exc), _raw(trade))
                continue
            except ValidationError as exc:
                self.report("bad_trade", _errors(exc), _raw(trade))
                continue
            key: Hashable = tick.trade_id or (ms, tick.price, tick.size, tick.side)
            if key in self.seen_trades:
                continue
            self.seen_trades.add(key)
            ticks.append((ms, tick))
        if not ticks:
            return 0
        ticks.sort(key=lambda pair: pair[0])
        self.last_trade_ms = max(self.last_trade_ms or 0, ticks[-1][0])
        async with self.emitting:
            await self.out.ticks([tick for _, tick in ticks])
        return len(ticks)

    def _tick(self, trade: Any, now_ms: int) -> tuple[int, Tick]:
        if not isinstance(trade, dict):
            raise BadValue(f"not a trade: {type(trade).__name__}")
        ms = parse_millis(trade.get("timestamp"))
        if ms > now_ms + self.skew_ms:
            raise BadValue(f"timestamp {ms} is in the future")
        side = trade.get("side")
        trade_id = trade.get("id")
        tick = Tick.model_validate(
            {
                "instrument_id": self.feed.instrument_id,
                "ts": time_of_millis(ms),
                "price": parse_decimal(trade.get("price"), "price", positive=True),
                "size": parse_decimal(trade.get("amount"), "amount", positive=True),
                # An unknown side is not worth losing the trade for: it is optional.
                "side": side if side in ("buy", "sell") else None,
                "trade_id": str(trade_id) if trade_id not in (None, "") else None,
            }
        )
        return ms, tick

    # -- bars ------------------------------------------------------------------------------

    async def _bars_rest(self) -> None:
        while True:
            # Every poll asks from the bar after the last one emitted: a poll missed in an
            # outage is caught up by the next one that succeeds.
            await self.fill_bars()
            await self.feed.clock.sleep(self.feed.poll_interval)

    async def _bars_ws(self) -> None:
        symbol, timeframe = self.feed.symbol, self.feed.timeframe
        # The REST history first (from `since`, or after a drop), then live candles: a candle
        # watched after a drop must not finalise a stale pending bar before the REST one.
        await self._catch_up("bars", self.fill_bars)
        while True:
            candles = await self.fetch("message", partial(self.ex.watch_ohlcv, symbol, timeframe))
            await self._catch_up("bars", self.fill_bars)
            await self.take_candles(candles)

    async def fill_bars(self) -> None:
        """Fetch and emit the final bars after the last emitted one, until the exchange shows
        a bar still in progress (the present) or has nothing newer."""
        symbol, timeframe = self.feed.symbol, self.feed.timeframe
        while True:
            since = self.last_open_ms + self.tf_ms
            before = self.last_open_ms
            candles = await self.fetch(
                "response", partial(self.ex.fetch_ohlcv, symbol, timeframe, since=since)
            )
            in_progress = await self.take_candles(candles)
            if in_progress or self.last_open_ms == before:
                return

    async def take_candles(self, candles: Iterable[Any]) -> bool:
        """Keep the newest version of each candle, emit those now final; whether any of these
        candles is still in progress."""
        now_ms = millis_of(self.feed.clock.now())
        fresh: list[int] = []
        for candle in candles:
            if isinstance(candle, PlaceholderCandle):
                continue
            try:
                open_ms, bar = self._bar(candle, now_ms)
            except BadValue as exc:
                self.report("bad_candle", str(exc), candle)
                continue
            except ValidationError as exc:
                self.report("bad_candle", _errors(exc), candle)
                continue
            if open_ms <= self.last_open_ms:
                continue  # emitted already (or before `since`): never twice
            self.pending[open_ms] = bar
            fresh.append(open_ms)
            if self.latest_open_ms is None or open_ms > self.latest_open_ms:
                self.latest_open_ms = open_ms
        cutoff = max(self.latest_open_ms or 0, now_ms)
        final = sorted(ms for ms in self.pending if ms + self.tf_ms <= cutoff)
        if final:
            bars = [self.pending.pop(ms) for ms in final]
            self.last_open_ms = final[-1]
            async with self.emitting:
                await self.out.bars(bars)
        return any(ms in self.pending for ms in fresh)

    def _bar(self, candle: Any, now_ms: int) -> tuple[int, Bar]:
        if not isinstance(candle, list | tuple) or len(candle) < 6:
            raise BadValue("not an OHLCV candle")
        open_ms = parse_millis(candle[0], "open time")
        if open_ms > now_ms + self.skew_ms:
            raise BadValue(f"open time {open_ms} is in the future")
        opened = time_of_millis(open_ms)
        bar = Bar.model_validate(
            {
                "instrument_id": self.feed.instrument_id,
                "timeframe": self.tf.label,
                "open_time": opened,
                "close_time": opened + self.tf.delta,
                "open": parse_decimal(candle[1], "open", positive=True),
                "high": parse_decimal(candle[2], "high", positive=True),
                "low": parse_decimal(candle[3], "low", positive=True),
                "close": parse_decimal(candle[4], "close", positive=True),
                "volume": parse_decimal(candle[5], "volume"),
                "final": True,
            }
        )
        return open_ms, bar


def _raw(trade: Any) -> Any:
    """What the exchange sent for a parsed trade (ccxt keeps it under `info`), for reports."""
    if isinstance(trade, dict) and trade.get("info") is not None:
        return trade["info"]
    return trade
