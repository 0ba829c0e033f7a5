"""The ccxt feed against a local Binance: real ccxt, real HTTP, recorded Binance JSON.

A small aiohttp server speaks Binance's spot REST API (exchangeInfo, aggTrades, klines) from the
files in ccxt_binance/, as of a simulated "now" that the test moves, and its market streams
(WebSocket SUBSCRIBE, then the trade and kline events a test pushes). The feed's clock reads the
same "now" and its sleeps are a few real milliseconds, so polls and backoffs are quick.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from trademesh_events.marketdata import Bar, Tick

from trademesh_market_data.feeds.ccxt_feed import CcxtFeed

pytestmark = pytest.mark.integration

DATA = Path(__file__).parent / "ccxt_binance"
T0 = datetime(2024, 6, 1, tzinfo=UTC)  # the first recorded kline opens here
T0_MS = 1717200000000
MINUTE_MS = 60_000
POLL = 7.0  # a poll interval no backoff can equal, to tell the two apart in the clock's log


def load(name: str) -> Any:
    return json.loads((DATA / name).read_text())


class FakeBinance:
    """Binance spot REST as of `now_ms`: only what has happened by then is served."""

    def __init__(self, trades: list[dict[str, Any]], klines: list[list[Any]], now: int) -> None:
        self.trades = trades
        self.klines = klines
        self.now_ms = now
        self.outage: str | None = None  # "503" or "drop"
        self.failed = 0
        self.requests: list[str] = []
        self.subscriptions: list[str] = []
        self.sockets: list[web.WebSocketResponse] = []
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/api/v3/exchangeInfo", self._exchange_info)
        app.router.add_get("/api/v3/aggTrades", self._agg_trades)
        app.router.add_get("/api/v3/klines", self._klines)
        app.router.add_get("/stream/ws/{stream}", self._websocket)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _down(self, request: web.Request) -> web.Response | None:
        self.requests.append(request.path_qs)
        if self.outage is None:
            return None
        self.failed += 1
        if self.outage == "drop":
            assert request.transport is not None
            request.transport.close()  # the client sees the server hang up mid-request
        return web.Response(status=503, text="Service Unavailable")

    async def _exchange_info(self, request: web.Request) -> web.Response:
        return self._down(request) or web.json_response(load("exchangeInfo.json"))

    async def _agg_trades(self, request: web.Request) -> web.Response:
        if (down := self._down(request)) is not None:
            return down
        query = request.query
        assert query["symbol"] == "BTCUSDT"
        limit = int(query.get("limit", 500))
        visible = [t for t in self.trades if _trade_time(t) <= self.now_ms]
        if "startTime" in query:
            start, end = int(query["startTime"]), int(query["endTime"])
            chosen = [t for t in visible if start <= _trade_time(t) <= end][:limit]
        else:
            chosen = visible[-limit:]  # the latest trades
        return web.json_response(chosen)

    async def _klines(self, request: web.Request) -> web.Response:
        if (down := self._down(request)) is not None:
            return down
        query = request.query
        assert query["symbol"] == "BTCUSDT" and query["interval"] == "1m"
        start = int(query.get("startTime", 0))
        limit = int(query.get("limit", 500))
        visible = [k for k in self.klines if _kline_time(k) <= self.now_ms]
        return web.json_response([k for k in visible if _kline_time(k) >= start][:limit])

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        """Binance's market streams: SUBSCRIBE is acknowledged, events come from `push`."""
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self.sockets.append(socket)
        async for message in socket:
            command = json.loads(message.data)
            if command.get("method") == "SUBSCRIBE":
                self.subscriptions += command["params"]
                await socket.send_json({"result": None, "id": command["id"]})
        return socket

    async def push(self, event: dict[str, Any]) -> None:
        for socket in self.sockets:
            if not socket.closed:
                await socket.send_json(event)

    async def hang_up(self) -> None:
        sockets, self.sockets, self.subscriptions = self.sockets, [], []
        for socket in sockets:
            await socket.close()


def ws_trade(trade_id: int, ms: int, price: str, qty: str, maker: bool) -> dict[str, Any]:
    return {
        "e": "trade",
        "E": ms + 5,
        "s": "BTCUSDT",
        "t": trade_id,
        "p": price,
        "q": qty,
        "T": ms,
        "m": maker,
        "M": True,
    }


def ws_kline(open_ms: int, o: str, h: str, lo: str, c: str, v: str) -> dict[str, Any]:
    return {
        "e": "kline",
        "E": open_ms + 1000,
        "s": "BTCUSDT",
        "k": {
            "t": open_ms,
            "T": open_ms + MINUTE_MS - 1,
            "s": "BTCUSDT",
            "i": "1m",
            "f": 1,
            "L": 2,
            "o": o,
            "c": c,
            "h": h,
            "l": lo,
            "v": v,
            "n": 2,
            "x": False,
            "q": "0",
            "V": "0",
            "Q": "0",
            "B": "0",
        },
    }


def _trade_time(trade: dict[str, Any]) -> int:
    return trade["T"] if isinstance(trade["T"], int) else T0_MS


def _kline_time(kline: list[Any]) -> int:
    return kline[0] if isinstance(kline[0], int) else T0_MS


class SimClock:
    """The exchange's simulated now; sleeps are logged and take a few real milliseconds."""

    def __init__(self, server: FakeBinance) -> None:
        self.server = server
        self.slept: list[float] = []

    def now(self) -> datetime:
        return T0 + timedelta(milliseconds=self.server.now_ms - T0_MS)

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        await asyncio.sleep(0.005)


@dataclass
class Collected:
    """A FeedOutput that records every call."""

    tick_log: list[Tick] = field(default_factory=list)
    bar_log: list[Bar] = field(default_factory=list)
    rejections: list[tuple[str, str]] = field(default_factory=list)
    links: list[bool] = field(default_factory=list)

    async def ticks(self, ticks: Sequence[Tick]) -> None:
        self.tick_log.extend(ticks)

    async def bars(self, bars: Sequence[Bar]) -> None:
        self.bar_log.extend(bars)

    def rejected(self, reason: str, detail: str) -> None:
        self.rejections.append((reason, detail))

    def connected(self, up: bool) -> None:
        self.links.append(up)

    def opens(self) -> list[datetime]:
        return [bar.open_time for bar in self.bar_log]


async def eventually(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (result := check()):
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)
    return result


def minute(n: int) -> datetime:
    return T0 + timedelta(minutes=n)


def at(n: int, seconds: int = 0) -> int:
    """Epoch ms of minute n plus some seconds after T0."""
    return T0_MS + n * MINUTE_MS + seconds * 1000


def feed_for(
    server: FakeBinance, clock: SimClock, websocket: bool = False, **options: Any
) -> CcxtFeed:
    return CcxtFeed.for_instrument(
        "binance:BTC/USDT",
        clock,
        use_websocket=websocket,
        poll_interval=POLL,
        backoff_initial=1.0,
        backoff_max=4.0,
        exchange_options={
            "urls": {
                "api": {
                    "public": f"{server.base}/api/v3",
                    "ws": {"spot": f"ws://127.0.0.1:{server.port}/stream/ws"},
                }
            },
            # Spot only, so load_markets asks just /api/v3/exchangeInfo (no futures APIs).
            "options": {"fetchMarkets": {"types": ["spot"]}},
            "rateLimit": 5,  # still rate limited, only faster than Binance's 50 ms
        },
        **options,
    )


@pytest.fixture
async def binance() -> AsyncIterator[Callable[..., Any]]:
    servers: list[FakeBinance] = []

    async def make(
        trades: str = "aggTrades_BTCUSDT.json",
        klines: str = "klines_BTCUSDT_1m.json",
        now: int = T0_MS,
    ) -> FakeBinance:
        server = FakeBinance(load(trades), load(klines), now)
        await server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.stop()


class Running:
    def __init__(self, feed: CcxtFeed, out: Collected) -> None:
        self.feed, self.out = feed, out
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(feed.run(out, self.stop))

    async def finish(self) -> None:
        assert not self.task.done(), "the feed ended by itself"
        self.stop.set()
        await asyncio.wait_for(self.task, 10)


def expected_bar(kline: list[Any]) -> Bar:
    opened = T0 + timedelta(milliseconds=kline[0] - T0_MS)
    return Bar(
        instrument_id="binance:BTC/USDT",
        timeframe="1m",
        open_time=opened,
        close_time=opened + timedelta(minutes=1),
        open=Decimal(kline[1]),
        high=Decimal(kline[2]),
        low=Decimal(kline[3]),
        close=Decimal(kline[4]),
        volume=Decimal(kline[5]),
        final=True,
    )


def _bar_values(bar: Bar) -> tuple[Any, ...]:
    return (
        bar.instrument_id,
        bar.timeframe,
        bar.open_time,
        bar.close_time,
        bar.open,
        bar.high,
        bar.low,
        bar.close,
        bar.volume,
        bar.final,
    )


async def test_trades_and_bars_parse_into_exact_ticks_and_final_bars(
    binance: Callable[..., Any],
) -> None:
    server = await binance(now=at(5, 30))  # minute 5 is in progress
    clock = SimClock(server)
    out = Collected()
    run = Running(feed_for(server, clock, since=T0), out)

    await eventually(lambda: len(out.bar_log) >= 5 and len(out.tick_log) >= 5)
    await asyncio.sleep(0.1)  # a few more polls: nothing may come twice, nor minute 5 early
    klines = load("klines_BTCUSDT_1m.json")
    assert [_bar_values(b) for b in out.bar_log] == [
        _bar_values(expected_bar(k)) for k in klines[:5]
    ]
    assert out.bar_log[0].open == Decimal("67472.41") and out.bar_log[1].volume == Decimal(
        "8.76543"
    )
    assert out.bar_log[4].volume == 0  # a minute without trades is still a bar on Binance

    trades = [t for t in load("aggTrades_BTCUSDT.json") if t["T"] <= server.now_ms]
    assert len(trades) == 5
    assert [(t.instrument_id, t.ts, t.price, t.size, t.side, t.trade_id) for t in out.tick_log] == [
        (
            "binance:BTC/USDT",
            T0 + timedelta(milliseconds=t["T"] - T0_MS),
            Decimal(t["p"]),
            Decimal(t["q"]),
            "sell" if t["m"] else "buy",  # the buyer was the maker: the taker sold
            str(t["a"]),
        )
        for t in trades
    ]
    assert out.tick_log[0].ts == datetime(2024, 6, 1, 0, 0, 0, 123000, tzinfo=UTC)
    assert out.tick_log[3].size == Decimal("0.00031")

    # Time moves on: minute 5 is final once minute 6 exists, the trade of 00:07 arrives.
    server.now_ms = at(7, 10)
    await eventually(lambda: len(out.bar_log) >= 7 and len(out.tick_log) >= 7)
    await asyncio.sleep(0.1)
    assert out.opens() == [minute(n) for n in range(7)]
    assert [_bar_values(b) for b in out.bar_log[5:]] == [
        _bar_values(expected_bar(k)) for k in klines[5:7]
    ]
    assert [t.trade_id for t in out.tick_log] == [
        str(t["a"]) for t in load("aggTrades_BTCUSDT.json")[:7]
    ]
    assert out.rejections == []
    assert out.links == [True]

    await run.finish()
    assert out.links == [True, False]
    assert any(path.startswith("/api/v3/klines?interval=1m") for path in server.requests)


async def test_outage_reconnects_with_backoff_and_backfills_the_missed_bars(
    binance: Callable[..., Any],
) -> None:
    server = await binance(now=at(2, 30))
    clock = SimClock(server)
    out = Collected()
    reconnects: list[int] = []
    feed = feed_for(server, clock, since=T0, on_reconnect=lambda: reconnects.append(1))
    run = Running(feed, out)
    await eventually(lambda: len(out.bar_log) == 2 and len(out.tick_log) == 4)

    # The exchange answers 503 for a while, then hangs up on every request; time goes on.
    server.outage = "503"
    await eventually(lambda: server.failed >= 4)
    assert out.links == [True, False]
    server.now_ms = at(6, 5)
    server.outage = "drop"
    failed = server.failed
    await eventually(lambda: server.failed >= failed + 4)
    assert out.links == [True, False]  # still down, reported once

    server.outage = None
    await eventually(lambda: len(out.bar_log) >= 6 and len(out.tick_log) >= 6)
    await asyncio.sleep(0.1)
    await run.finish()

    # Every minute once, in order: the four missed during the outage were backfilled.
    assert out.opens() == [minute(n) for n in range(6)]
    klines = load("klines_BTCUSDT_1m.json")
    assert [_bar_values(b) for b in out.bar_log] == [
        _bar_values(expected_bar(k)) for k in klines[:6]
    ]
    trade_ids = [t.trade_id for t in out.tick_log]
    assert trade_ids == [str(t["a"]) for t in load("aggTrades_BTCUSDT.json")[:6]]
    assert out.links == [True, False, True, False]  # up, outage, back, stopped
    assert feed.reconnects == 1 and reconnects == [1]
    # aiohttp itself retries a request once when a kept-alive connection is hung up on.
    assert 6 <= feed.connection_errors <= server.failed
    assert out.rejections == []

    # Exponential backoff with jitter: 1 * 2^(n-1) capped at 4, plus up to 1 at random.
    backoffs = [s for s in clock.slept if s != POLL]
    assert len(backoffs) == feed.connection_errors
    assert all(1.0 <= s <= 5.0 for s in backoffs)
    assert any(s >= 4.0 for s in backoffs)  # it grew to the cap
    assert len(set(backoffs)) > 4  # jittered, not a fixed ladder


async def test_malformed_trades_and_candles_are_rejected_and_the_rest_published(
    binance: Callable[..., Any],
) -> None:
    server = await binance(
        trades="aggTrades_malformed.json", klines="klines_malformed.json", now=at(7, 30)
    )
    clock = SimClock(server)
    out = Collected()
    run = Running(feed_for(server, clock, since=T0), out)

    await eventually(lambda: len(out.bar_log) >= 2 and len(out.tick_log) >= 2)
    await eventually(lambda: len(out.rejections) >= 9)
    await asyncio.sleep(0.2)  # more polls of the same data: nothing reported twice
    await run.finish()

    assert [t.trade_id for t in out.tick_log] == ["3000000101", "3000000106"]
    assert out.tick_log[1].price == Decimal("67482.5") and out.tick_log[1].size == Decimal("0.3")
    # Minutes 1-5 are bad; 0 and 6 are published, 7 is still in progress.
    assert out.opens() == [minute(0), minute(6)]

    reasons = sorted(reason for reason, _ in out.rejections)
    assert reasons == ["bad_candle"] * 5 + ["bad_trade"] * 4, out.rejections
    details = "\n".join(detail for _, detail in out.rejections)
    for expected in (
        "price is missing",  # trade 102: "p": null
        "unreadable (ValueError",  # trade 103: "p": "NaN" breaks ccxt's own parser
        "amount is negative",  # trade 104
        "timestamp does not parse",  # trade 105 ("yesterday") and the candle "soon"
        "open is missing",  # candle of minute 1
        "close is nan",  # candle of minute 2
        "volume is negative",  # candle of minute 3
        "high must be >= open, close and low",  # candle of minute 5
    ):
        assert expected in details, expected
    assert "3000000103" in details and "'soon'" in details  # the record is in the report
    assert out.links == [True, False]


async def test_websocket_streams_with_rest_backfill_after_a_drop(
    binance: Callable[..., Any],
) -> None:
    server = await binance(now=at(3, 30))
    clock = SimClock(server)
    out = Collected()
    feed = feed_for(server, clock, websocket=True, since=T0)
    run = Running(feed, out)
    # REST history up to the bar in progress, then both streams subscribed.
    await eventually(lambda: len(out.bar_log) == 3 and len(server.subscriptions) == 2)
    assert sorted(server.subscriptions) == ["btcusdt@kline_1m", "btcusdt@trade"]

    await server.push(ws_trade(9001, at(3, 40), "67450.50", "0.002", maker=False))
    await server.push(ws_kline(at(3), "67441.00", "67470.00", "67420.00", "67466.00", "6.5"))
    await server.push(ws_kline(at(4), "67466.00", "67466.00", "67466.00", "67466.00", "0.1"))
    await eventually(lambda: len(out.bar_log) == 4 and len(out.tick_log) == 1)
    # Minute 3 final once minute 4 streams in, with its last streamed values.
    assert _bar_values(out.bar_log[3])[4:9] == tuple(
        Decimal(x) for x in ("67441", "67470", "67420", "67466", "6.5")
    )
    assert (out.tick_log[0].trade_id, out.tick_log[0].price, out.tick_log[0].side) == (
        "9001",
        Decimal("67450.5"),
        "buy",
    )

    # The streams drop; minutes 4-6 and two trades happen before they are back.
    server.now_ms = at(7, 30)
    await server.hang_up()
    await eventually(lambda: out.links == [True, False])
    await eventually(lambda: len(server.subscriptions) == 2)  # ccxt.pro reconnected
    await server.push(ws_trade(9002, at(7, 20), "67541.00", "0.01", maker=True))
    await server.push(ws_kline(at(7), "67550.00", "67551.00", "67549.00", "67550.50", "0.3"))
    await eventually(lambda: len(out.bar_log) == 7 and len(out.tick_log) == 4)
    await asyncio.sleep(0.1)
    await run.finish()

    assert out.opens() == [minute(n) for n in range(7)]
    klines = load("klines_BTCUSDT_1m.json")
    # The missed minutes come from REST, minute 4's stale streamed version is not used.
    assert [_bar_values(b) for b in out.bar_log[4:]] == [
        _bar_values(expected_bar(k)) for k in klines[4:7]
    ]
    assert [t.trade_id for t in out.tick_log] == ["9001", "3000000006", "3000000007", "9002"]
    assert out.links == [True, False, True, False]
    assert feed.reconnects == 1
    assert out.rejections == []
