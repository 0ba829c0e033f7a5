"""A local Binance for the live-venue tests: real ccxt, real HTTP, Binance's documented JSON.

A small aiohttp server speaks Binance's spot REST API (exchangeInfo, time, order POST/GET/DELETE,
openOrders, myTrades) from the files in data/ (see its README: hand-written in the
documented format). It keeps the orders it is sent, checks every signed request's HMAC-SHA256
signature with the test secret and its API key header, and can be told to answer the next order
request with a file, a 503, or after a delay. ccxt is pointed at it through the exchange's
`urls["api"]`; nothing else is reachable (any other path is recorded and answered 404).
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

from aiohttp import web

DATA = Path(__file__).parent / "data"
API_KEY = "tm-test-api-key-7f3a9c2e51d04b6a"
SECRET = "tm-test-secret-b81d4e6f0a2c93757e1f"  # noqa: S105 (a test secret, known to the fake only)
INSTRUMENT = "binance:BTC/USDT"


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
class FakeBinance:
    """Binance spot REST: orders kept by client order id, trades from their fills."""

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
    next_trade_id: int = 3601000001
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/api/v3/exchangeInfo", self._exchange_info)
        app.router.add_get("/api/v3/time", self._time)
        app.router.add_post("/api/v3/order", self._new_order)
        app.router.add_get("/api/v3/order", self._query_order)
        app.router.add_delete("/api/v3/order", self._cancel_order)
        app.router.add_get("/api/v3/openOrders", self._open_orders)
        app.router.add_get("/api/v3/myTrades", self._my_trades)
        app.router.add_route("*", "/{tail:.*}", self._elsewhere)
        self._runner = web.AppRunner(
            app, handle_signals=False, handler_cancellation=True, shutdown_timeout=0.5
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

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
                fill["tradeId"] = self._trade(answer, fill["price"], fill["qty"], now, maker=False)
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
        if self.post_delay:
            delay, self.post_delay = self.post_delay, 0.0
            await asyncio.sleep(delay)  # the order is in the book; the answer is late
        return web.json_response(answer)

    def _trade(self, order: dict[str, Any], price: str, qty: str, ms: int, *, maker: bool) -> int:
        trade = load("myTrade.json")
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
        return int(trade["id"])

    def fill(self, client_id: str, qty: str, price: str) -> None:
        """A resting order fills (partly) at `price`: what the matching engine would do."""
        order = self.orders[client_id]
        now = self.now_ms()
        executed = D(order["executedQty"]) + D(qty)
        order["executedQty"] = f"{executed:.8f}"
        order["cummulativeQuoteQty"] = f"{D(order['cummulativeQuoteQty']) + D(qty) * D(price):.8f}"
        order["status"] = "FILLED" if executed == D(order["origQty"]) else "PARTIALLY_FILLED"
        order["updateTime"] = now
        self._trade(order, price, qty, now, maker=True)

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
        answer = load("order_cancel.json")
        answer.update({k: order[k] for k in answer if k in order and k != "clientOrderId"})
        answer.update(
            origClientOrderId=order["clientOrderId"],
            clientOrderId=params.get("newClientOrderId", f"cancel-{now}"),
            transactTime=now,
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
