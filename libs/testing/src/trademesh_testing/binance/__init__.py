"""A local Binance for the live-venue tests: real ccxt, real HTTP, Binance's documented JSON.

A small aiohttp server speaks Binance's spot REST API (exchangeInfo, time, order POST/GET/DELETE,
openOrders, myTrades, account) from the files in data/ (see its README: hand-written in the
documented format). It keeps the orders it is sent, checks every signed request's HMAC-SHA256
signature with the test secret and its API key header, and can be told to answer the next order
request with a file, a 503, or after a delay. ccxt is pointed at it through the exchange's
`urls["api"]`; nothing else is reachable (any other path is recorded and answered 404).

It keeps the account's balances (`balances`, per asset its `free` and `locked`, from
data/account.json until a test sets them) and answers them on `GET /api/v3/account` (what ccxt's
`fetch_balance` asks for spot). Its orders move them as Binance's would: a resting order locks
what it may spend (a buy its quote at the limit price, a sell its base), a fill moves base and
quote (a buy adds the base and takes its cost, from what the order locked when it rested) and
takes the commission in its asset, and a cancel frees what the rest of the order locked. Nothing
is refused for want of balance.

It also speaks the user data stream of Binance's spot WebSocket API (`/ws-api/v3`, ccxt's
`urls["api"]["ws"]["ws-api"]["spot"]`): it answers `userDataStream.subscribe.signature` requests
(signature checked as Binance documents SIGNED WebSocket requests: HMAC-SHA256, hex, with the
secret, over `key=value` of every parameter but `signature`, sorted by name and joined with `&`;
`apiKey` must be the test key and `timestamp` within Binance's window) and then pushes to each
subscription, as `{"subscriptionId": N, "event": {...}}`, an `executionReport` (the documented
format, from data/executionReport.json) whenever one of its orders changes: NEW when it is placed,
TRADE for each fill (a market order's at once, a resting order's by `fill()`), CANCELED when it
is cancelled. It answers pings with pongs, can ping itself (`stream_ping_s`), drops every stream
on `drop_streams()`, and refuses new connections during an `outage` (HTTP 503 on the handshake).
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from decimal import Decimal as D
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import WSCloseCode, WSMsgType, web

from trademesh_testing.secrets_guard import register_secret

DATA = Path(__file__).parent / "data"
API_KEY = "tm-test-api-key-7f3a9c2e51d04b6a"
SECRET = "tm-test-secret-b81d4e6f0a2c93757e1f"  # noqa: S105 (a test secret, known to the fake only)
INSTRUMENT = "binance:BTC/USDT"
register_secret(API_KEY, SECRET)  # the suite fails if either is ever logged
SUBSCRIBE = "userDataStream.subscribe.signature"
# Binance's errors of the WebSocket API (`{"id", "status", "error": {"code", "msg"}}`) for a
# subscribe request it refuses: the HTTP-like status, and the error (the -1022 one from data/).
_WRONG_KEY = (401, {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."})
_LATE = (400, {"code": -1021, "msg": "Timestamp for this request is outside of the recvWindow."})
_MALFORMED_REQUEST = (400, {"code": -1100, "msg": "Illegal characters found in a parameter."})


def load(name: str) -> Any:
    return json.loads((DATA / name).read_text())


def _qty(value: str) -> str:
    return f"{D(value):.8f}"


@dataclass
class Received:
    method: str
    path: str
    params: dict[str, str]
    signed: bool  # the signature verified with SECRET and the API key header was API_KEY


@dataclass
class Stream:
    """One WebSocket API connection: its socket, its user data subscriptions, and what is
    waiting to be sent on it (answers and events go out in order, one writer a socket)."""

    ws: web.WebSocketResponse
    outbox: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    subscriptions: list[int] = field(default_factory=list)
    next_subscription: int = 0


def _initial_balances() -> dict[str, dict[str, D]]:
    return {
        b["asset"]: {"free": D(b["free"]), "locked": D(b["locked"])}
        for b in load("account.json")["balances"]
    }


def _assets(symbol: str) -> tuple[str, str]:
    """The base and quote asset of a symbol of data/exchangeInfo.json (`BTCUSDT`)."""
    found = next(s for s in load("exchangeInfo.json")["symbols"] if s["symbol"] == symbol)
    return found["baseAsset"], found["quoteAsset"]


def _signature_payload(params: dict[str, Any]) -> str:
    """What a SIGNED WebSocket API request signs: every parameter but the signature, sorted by
    name, as key=value joined with & (JSON true/false as Binance writes them)."""

    def text(value: Any) -> str:
        return ("true" if value else "false") if isinstance(value, bool) else str(value)

    return "&".join(f"{k}={text(v)}" for k, v in sorted(params.items()) if k != "signature")


@dataclass
class FakeBinance:
    """Binance spot REST: orders kept by client order id, trades from their fills; and the
    user data stream of the WebSocket API, pushing executionReports of those orders."""

    orders: dict[str, dict[str, Any]] = field(default_factory=dict)  # GET /api/v3/order form
    trades: list[dict[str, Any]] = field(default_factory=list)  # GET /api/v3/myTrades form
    received: list[Received] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    # What the next POST /api/v3/order does instead of the normal answer:
    post_delay: float = 0.0  # keep the order, then sleep this long before answering
    next_answer: tuple[int, str] | None = None  # (HTTP status, file) answered as it is
    outage: bool = False  # every request: 503 Service Unavailable
    extra_open_orders: list[dict[str, Any]] = field(default_factory=list)
    extra_trades: list[dict[str, Any]] = field(default_factory=list)
    next_order_id: int = 28457001
    exchange_info_requests: int = 0
    next_trade_id: int = 3601000001
    streams: list[Stream] = field(default_factory=list)  # open WebSocket API connections
    signatures: list[str] = field(default_factory=list)  # of the subscribe requests received
    events: list[Any] = field(default_factory=list)  # the events pushed
    pings: int = 0  # the clients' pings, answered
    pongs: int = 0  # the clients' answers to our pings
    stream_ping_s: float | None = None  # ping every stream this often (Binance: 3 minutes)
    # The account's balances: asset -> {"free": ..., "locked": ...} (see the module docstring).
    balances: dict[str, dict[str, D]] = field(default_factory=lambda: _initial_balances())
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_api(self) -> str:
        """The WebSocket API's url (ccxt's `urls["api"]["ws"]["ws-api"]["spot"]`)."""
        return f"ws://127.0.0.1:{self.port}/ws-api/v3"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/api/v3/exchangeInfo", self._exchange_info)
        app.router.add_get("/api/v3/time", self._time)
        app.router.add_post("/api/v3/order", self._new_order)
        app.router.add_get("/api/v3/order", self._query_order)
        app.router.add_delete("/api/v3/order", self._cancel_order)
        app.router.add_get("/api/v3/openOrders", self._open_orders)
        app.router.add_get("/api/v3/myTrades", self._my_trades)
        app.router.add_get("/api/v3/account", self._account)
        app.router.add_get("/ws-api/v3", self._ws_api)
        app.router.add_route("*", "/{tail:.*}", self._elsewhere)
        self._runner = web.AppRunner(
            app, handle_signals=False, handler_cancellation=True, shutdown_timeout=0.5
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        await self.drop_streams()
        if self._runner is not None:
            await self._runner.cleanup()

    async def drop_streams(self) -> None:
        """Close every WebSocket API connection (as Binance does after 24 hours, or in a
        maintenance): their subscriptions end with them."""
        for stream in list(self.streams):
            stream.subscriptions.clear()
            await stream.ws.close(code=WSCloseCode.GOING_AWAY, message=b"stream dropped")

    # -- plumbing ------------------------------------------------------------------------------

    @staticmethod
    def now_ms() -> int:
        return int(time.time() * 1000)

    @staticmethod
    def error(status: int, name: str) -> web.Response:
        return web.json_response(load(name), status=status)

    async def _signed(self, request: web.Request) -> dict[str, str] | web.Response:
        """The request's parameters, if it is signed as Binance wants (else Binance's -1022)."""
        if self.outage:
            return web.Response(status=503, text="Service Unavailable")
        raw = await request.text() if request.method == "POST" else request.rel_url.raw_query_string
        payload, sep, signature = raw.rpartition("&signature=")
        expected = hmac.new(SECRET.encode(), payload.encode(), hashlib.sha256).hexdigest()
        params = dict(parse_qsl(payload))
        signed = (
            bool(sep)
            and hmac.compare_digest(signature, expected)
            and request.headers.get("X-MBX-APIKEY") == API_KEY
            and abs(int(params.get("timestamp", 0)) - self.now_ms()) < 10_000
        )
        self.received.append(Received(request.method, request.path, params, signed))
        if not signed:
            return self.error(400, "error_invalid_signature.json")
        return params

    def _find(self, params: dict[str, str]) -> dict[str, Any] | None:
        if "origClientOrderId" in params:
            return self.orders.get(params["origClientOrderId"])
        wanted = int(params.get("orderId", -1))
        return next((o for o in self.orders.values() if o["orderId"] == wanted), None)

    # -- endpoints -----------------------------------------------------------------------------

    async def _exchange_info(self, request: web.Request) -> web.Response:
        self.exchange_info_requests += 1
        if self.outage:
            return web.Response(status=503, text="Service Unavailable")
        return web.json_response(load("exchangeInfo.json"))

    async def _time(self, request: web.Request) -> web.Response:
        return web.json_response({"serverTime": self.now_ms()})

    async def _elsewhere(self, request: web.Request) -> web.Response:
        self.unexpected.append(f"{request.method} {request.path}")
        return web.Response(status=404)

    async def _new_order(self, request: web.Request) -> web.Response:
        params = await self._signed(request)
        if isinstance(params, web.Response):
            return params
        if self.next_answer is not None:
            (status, name), self.next_answer = self.next_answer, None
            answer = load(name)
            if "clientOrderId" in answer:  # an order: this one's
                answer["clientOrderId"] = params["newClientOrderId"]
            return web.json_response(answer, status=status)
        assert params["symbol"] == "BTCUSDT"
        client_id = params["newClientOrderId"]
        if client_id in self.orders and self.orders[client_id]["status"] in (
            "NEW",
            "PARTIALLY_FILLED",
        ):
            return self.error(400, "error_duplicate_order.json")
        now = self.now_ms()
        kind = params["type"]
        answer = load(
            "order_new_market_full.json" if kind == "MARKET" else "order_new_limit_full.json"
        )
        answer.update(
            clientOrderId=client_id,
            orderId=self.next_order_id,
            transactTime=now,
            workingTime=now,
            side=params["side"],
            type=kind,
        )
        self.next_order_id += 1
        if kind == "MARKET":
            # The documented answer's two fills make 0.0015 BTC: the tests buy that much.
            assert D(params["quantity"]) == D(answer["origQty"])
            for fill in answer["fills"]:
                fill["tradeId"] = self._trade(answer, fill["price"], fill["qty"], now, maker=False)[
                    "id"
                ]
        else:
            answer.update(
                price=_qty(params["price"]),
                origQty=_qty(params["quantity"]),
                timeInForce=params["timeInForce"],
            )
        stored = load("order_query.json")
        stored.update({k: answer[k] for k in stored if k in answer})
        stored.update(time=now, updateTime=now)
        self.orders[client_id] = stored
        if kind != "MARKET":
            self._lock(stored, D(stored["origQty"]))
        self._report(stored, "NEW", status="NEW", executed="0", quote="0", ms=now)
        executed, quote = D(0), D(0)
        for fill in answer.get("fills", []) if kind == "MARKET" else []:
            trade = next(t for t in self.trades if t["id"] == fill["tradeId"])
            executed += D(trade["qty"])
            quote += D(trade["quoteQty"])
            state = "FILLED" if executed == D(stored["origQty"]) else "PARTIALLY_FILLED"
            self._report(
                stored, "TRADE", status=state, executed=executed, quote=quote, ms=now, trade=trade
            )
        if self.post_delay:
            delay, self.post_delay = self.post_delay, 0.0
            await asyncio.sleep(delay)  # the order is in the book; the answer is late
        return web.json_response(answer)

    def _trade(
        self, order: dict[str, Any], price: str, qty: str, ms: int, *, maker: bool
    ) -> dict[str, Any]:
        trade: dict[str, Any] = load("myTrade.json")
        trade.update(
            id=self.next_trade_id,
            orderId=order["orderId"],
            price=price,
            qty=qty,
            quoteQty=f"{D(price) * D(qty):.8f}",
            commission=f"{D(price) * D(qty) / 1000:.8f}",
            time=ms,
            isBuyer=order["side"] == "BUY",
            isMaker=maker,
        )
        self.next_trade_id += 1
        self.trades.append(trade)
        self._settle(order, trade)
        return trade

    # -- the account's balances ------------------------------------------------------------------

    def set_balance(self, asset: str, free: str, locked: str = "0") -> None:
        """Set the account's balance of `asset` (a deposit, a withdrawal, a trade elsewhere)."""
        self.balances[asset] = {"free": D(free), "locked": D(locked)}

    def _move(self, asset: str, *, free: D = D(0), locked: D = D(0)) -> None:
        held = self.balances.setdefault(asset, {"free": D(0), "locked": D(0)})
        held["free"] += free
        held["locked"] += locked

    def _lock(self, order: dict[str, Any], qty: D, *, release: bool = False) -> None:
        """Lock (or release) what `qty` of a resting order may spend: a buy's quote at its
        limit price, a sell's base."""
        base, quote = _assets(order["symbol"])
        asset, amount = (quote, qty * D(order["price"])) if order["side"] == "BUY" else (base, qty)
        if release:
            amount = -amount
        self._move(asset, free=-amount, locked=amount)

    def _settle(self, order: dict[str, Any], trade: dict[str, Any]) -> None:
        """Move the balances by a fill of `order` (resting orders spend what they locked)."""
        base, quote = _assets(order["symbol"])
        qty, cost = D(trade["qty"]), D(trade["quoteQty"])
        if order["type"] != "MARKET":
            self._lock(order, qty, release=True)
        if order["side"] == "BUY":
            self._move(base, free=qty)
            self._move(quote, free=-cost)
        else:
            self._move(base, free=-qty)
            self._move(quote, free=cost)
        self._move(trade["commissionAsset"], free=-D(trade["commission"]))

    def fill(self, client_id: str, qty: str, price: str) -> None:
        """A resting order fills (partly) at `price`: what the matching engine would do."""
        order = self.orders[client_id]
        now = self.now_ms()
        executed = D(order["executedQty"]) + D(qty)
        order["executedQty"] = f"{executed:.8f}"
        order["cummulativeQuoteQty"] = f"{D(order['cummulativeQuoteQty']) + D(qty) * D(price):.8f}"
        order["status"] = "FILLED" if executed == D(order["origQty"]) else "PARTIALLY_FILLED"
        order["updateTime"] = now
        trade = self._trade(order, price, qty, now, maker=True)
        self._report(
            order,
            "TRADE",
            status=order["status"],
            executed=order["executedQty"],
            quote=order["cummulativeQuoteQty"],
            ms=now,
            trade=trade,
        )

    async def _query_order(self, request: web.Request) -> web.Response:
        params = await self._signed(request)
        if isinstance(params, web.Response):
            return params
        order = self._find(params)
        if order is None:
            return self.error(400, "error_order_does_not_exist.json")
        return web.json_response(order)

    async def _cancel_order(self, request: web.Request) -> web.Response:
        params = await self._signed(request)
        if isinstance(params, web.Response):
            return params
        order = self._find(params)
        if order is None or order["status"] not in ("NEW", "PARTIALLY_FILLED"):
            return self.error(400, "error_unknown_order.json")
        now = self.now_ms()
        order.update(status="CANCELED", updateTime=now, isWorking=False)
        self._lock(order, D(order["origQty"]) - D(order["executedQty"]), release=True)
        answer = load("order_cancel.json")
        answer.update({k: order[k] for k in answer if k in order and k != "clientOrderId"})
        answer.update(
            origClientOrderId=order["clientOrderId"],
            clientOrderId=params.get("newClientOrderId", f"cancel-{now}"),
            transactTime=now,
        )
        self._report(
            order,
            "CANCELED",
            status="CANCELED",
            executed=order["executedQty"],
            quote=order["cummulativeQuoteQty"],
            ms=now,
            cancel_id=answer["clientOrderId"],
        )
        return web.json_response(answer)

    async def _open_orders(self, request: web.Request) -> web.Response:
        params = await self._signed(request)
        if isinstance(params, web.Response):
            return params
        listed = [
            copy.deepcopy(o)
            for o in self.orders.values()
            if o["status"] in ("NEW", "PARTIALLY_FILLED")
            and params.get("symbol", o["symbol"]) == o["symbol"]
        ]
        return web.json_response(listed + self.extra_open_orders)

    async def _my_trades(self, request: web.Request) -> web.Response:
        params = await self._signed(request)
        if isinstance(params, web.Response):
            return params
        assert params["symbol"] == "BTCUSDT"
        start = int(params.get("startTime", 0))
        limit = int(params.get("limit", 500))
        listed = [t for t in self.trades if t["time"] >= start][:limit]
        return web.json_response(listed + self.extra_trades)

    async def _account(self, request: web.Request) -> web.Response:
        params = await self._signed(request)
        if isinstance(params, web.Response):
            return params
        answer = load("account.json")
        answer.update(
            updateTime=self.now_ms(),
            balances=[
                {"asset": asset, "free": _qty(str(b["free"])), "locked": _qty(str(b["locked"]))}
                for asset, b in self.balances.items()
            ],
        )
        return web.json_response(answer)

    # -- the WebSocket API's user data stream -------------------------------------------------

    def _report(
        self,
        order: dict[str, Any],
        execution: str,
        *,
        status: str,
        executed: D | str,
        quote: D | str,
        ms: int,
        trade: dict[str, Any] | None = None,
        cancel_id: str | None = None,
    ) -> None:
        """Push the executionReport of a change of `order` to every subscription: `execution`
        (NEW, TRADE, CANCELED) leaving it `status` with `executed` filled for `quote`; a TRADE
        reports `trade` (its id, quantity, price, commission, maker side); a cancel names the
        cancel request's client id in `c` and the order's in `C`, as Binance does."""
        event = load("executionReport.json")
        event.update(
            E=ms,
            s=order["symbol"],
            c=cancel_id or order["clientOrderId"],
            C=order["clientOrderId"] if cancel_id else "",
            S=order["side"],
            o=order["type"],
            f=order["timeInForce"],
            q=order["origQty"],
            p=order["price"],
            x=execution,
            X=status,
            i=order["orderId"],
            z=_qty(str(executed)),
            Z=_qty(str(quote)),
            T=ms,
            O=order["time"],
            W=order.get("workingTime", order["time"]),
            w=status in ("NEW", "PARTIALLY_FILLED"),
        )
        if trade is not None:
            event.update(
                l=trade["qty"],
                L=trade["price"],
                Y=trade["quoteQty"],
                n=trade["commission"],
                N=trade["commissionAsset"],
                t=trade["id"],
                m=trade["isMaker"],
                T=trade["time"],
            )
        self.push_event(event)

    def push_event(self, event: Any) -> None:
        """Push `event` as it is to every user data subscription (the tests push malformed
        ones this way)."""
        self.events.append(event)
        for stream in self.streams:
            for subscription in stream.subscriptions:
                stream.outbox.put_nowait({"subscriptionId": subscription, "event": event})

    async def _ws_api(self, request: web.Request) -> web.StreamResponse:
        if self.outage:
            return web.Response(status=503, text="Service Unavailable")
        ws = web.WebSocketResponse(autoping=False)  # pings counted, and answered below
        await ws.prepare(request)
        stream = Stream(ws)
        self.streams.append(stream)
        tasks = [asyncio.create_task(self._send_out(stream))]
        if self.stream_ping_s:
            tasks.append(asyncio.create_task(self._ping(stream, self.stream_ping_s)))
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    self._ws_request(stream, message.data)
                elif message.type == WSMsgType.PING:
                    self.pings += 1
                    await ws.pong(message.data)
                elif message.type == WSMsgType.PONG:
                    self.pongs += 1
                else:
                    self.unexpected.append(f"WS {message.type.name} frame")
        finally:
            self.streams.remove(stream)
            for task in tasks:
                task.cancel()
        return ws

    @staticmethod
    async def _send_out(stream: Stream) -> None:
        while True:
            message = await stream.outbox.get()
            if stream.ws.closed:
                return
            await stream.ws.send_json(message)

    @staticmethod
    async def _ping(stream: Stream, every_s: float) -> None:
        while not stream.ws.closed:
            await asyncio.sleep(every_s)
            await stream.ws.ping(b"fake-binance")

    def _ws_request(self, stream: Stream, text: str) -> None:
        """Answer one WebSocket API request: only the user data stream subscription is known."""
        try:
            request = json.loads(text)
        except ValueError:
            request = None
        if not isinstance(request, dict) or "id" not in request:
            self.unexpected.append(f"WS {text[:100]}")
            return
        request_id, method = request["id"], request.get("method")
        params = request.get("params")
        if method != SUBSCRIBE or not isinstance(params, dict):
            self.unexpected.append(f"WS {method}")
            stream.outbox.put_nowait(self._ws_error(request_id, _MALFORMED_REQUEST))
            return
        payload = _signature_payload(params)
        expected = hmac.new(SECRET.encode(), payload.encode(), hashlib.sha256).hexdigest()
        signature = params.get("signature")
        signature_ok = isinstance(signature, str) and hmac.compare_digest(
            signature.lower(), expected
        )
        key_ok = params.get("apiKey") == API_KEY
        try:
            stamp, window = int(params.get("timestamp", 0)), int(params.get("recvWindow", 5000))
        except (TypeError, ValueError):
            stamp, window = 0, 5000
        server = self.now_ms()
        in_time = stamp < server + 1000 and server - stamp <= min(window, 60_000)
        recorded = {k: str(v) for k, v in params.items() if k not in ("signature", "apiKey")}
        self.received.append(Received("WS", method, recorded, signature_ok and key_ok))
        if isinstance(signature, str):
            self.signatures.append(signature)
        if not key_ok:
            answer = self._ws_error(request_id, _WRONG_KEY)
        elif not signature_ok:
            answer = self._ws_error(request_id, (400, load("error_invalid_signature.json")))
        elif not in_time:
            answer = self._ws_error(request_id, _LATE)
        else:
            subscription = stream.next_subscription
            stream.next_subscription += 1
            stream.subscriptions.append(subscription)
            answer = {"id": request_id, "status": 200, "result": {"subscriptionId": subscription}}
        stream.outbox.put_nowait(answer)

    @staticmethod
    def _ws_error(request_id: Any, error: tuple[int, dict[str, Any]]) -> dict[str, Any]:
        status, body = error
        return {"id": request_id, "status": status, "error": dict(body)}
