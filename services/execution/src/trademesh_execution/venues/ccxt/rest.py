"""The live venue's REST side: orders on any ccxt exchange (`ccxt.async_support`), by client
order id.

What is sent. `submit` calls `create_order(symbol, type, side, amount, price, params)` with
`params["clientOrderId"]` = the order's client order id, always (ccxt's unified parameter; on
Binance it becomes `newClientOrderId`). MARKET is a ccxt "market" order (no price: on Binance a
price would turn it into a quote-amount order), LIMIT a "limit" order with its time in force
(GTC, IOC, FOK; DAY is not a ccxt time in force and is refused before anything is sent), STOP and
STOP_LIMIT the same with ccxt's unified `triggerPrice` (Binance spot: STOP_LOSS /
STOP_LOSS_LIMIT, when the market allows them). A quantity or price that is not on the market's
grid (ccxt's amount_to_precision / price_to_precision would change it) is refused before
sending: the venue's order must be exactly the service's.

Looking up and cancelling by client order id. `fetch` and `cancel` call ccxt's `fetch_order` /
`cancel_order` with `params["clientOrderId"]` (what ccxt's own `fetch_order_with_client_order_id`
and `cancel_order_with_client_order_id` do; Binance sends it as `origClientOrderId`), and the
venue order id as the id when the service has it (ignored by Binance when a client id is given).
`fetch` answers None when ccxt raises OrderNotFound (Binance -2013). Binance's cancel answer
names the cancel request's own client id in `clientOrderId` and the order's in
`origClientOrderId`; the report takes the latter.

Untrusted answers (`reports`): a failing order answer is a MalformedResponse. ccxt's own parsers
are guarded (`trademesh_exchange.guards`), so a record ccxt cannot even read fails alone: in
`open_orders` and `recent_trades` a bad record is logged, counted in `malformed_records` and left
out, and the rest is returned.

Secrets. The API key and secret stay SecretStr until they are handed to the ccxt exchange. ccxt
logs every request at DEBUG (with the API key header): its exchange logs through a redacting
adapter of its own logger (`trademesh_exchange.redaction`), which masks the key, the secret, the
password and request signatures (in a query string, or in a WebSocket request's JSON); error
texts are redacted the same way, raised without ccxt's exception chained, and no repr shows a
secret.

Rate limits: ccxt's limiter is always on (`enableRateLimit`), whatever the configuration says.
The service makes a venue per call (the credentials are in plaintext only for the call), so the
venues of one exchange (one set of API urls) in a process share, per event loop, what must
outlive a call (`trademesh_exchange.shared`): ccxt's REST rate limiter, since an exchange counts
requests per IP and not per object, and the exchange's markets, loaded once an hour rather than
by every venue (Binance's exchangeInfo alone weighs 20 of its 6000 a minute).

The order stream (`stream`) is this venue's exchange object too, where ccxt has a pro class for
the exchange that watches orders; `stream_orders=False` turns it off (`streams_orders` False,
`watch_orders` raises StreamUnsupported), as does an exchange that has none.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import ccxt
from pydantic import SecretStr
from trademesh_events.orders import OrderType, TimeInForce
from trademesh_exchange.exchanges import exchange_class as ccxt_class
from trademesh_exchange.guards import Parser, guard, install, is_placeholder, placeholder
from trademesh_exchange.parsing import millis_of
from trademesh_exchange.redaction import CCXT_LOGGER, RedactingLogger, Redactor
from trademesh_exchange.shared import share, shared_for

from trademesh_execution.engine import OrderView
from trademesh_execution.venues.base import (
    MalformedResponse,
    StreamUnsupported,
    VenueBalances,
    VenueRejected,
    VenueReport,
    VenueTrade,
    VenueUpdate,
    split_instrument,
)
from trademesh_execution.venues.ccxt.errors import Translator, log
from trademesh_execution.venues.ccxt.reports import (
    balances_from_ccxt,
    checked_decimal,
    report_from_ccxt,
    trade_from_ccxt,
)
from trademesh_execution.venues.ccxt.stream import OrderStream

# Settings the venue owns: credentials, logging, the rate limiter and the timeout.
_RESERVED = frozenset(
    {
        "apiKey",
        "secret",
        "password",
        "uid",
        "privateKey",
        "walletAddress",
        "token",
        "enableRateLimit",
        "verbose",
        "logger",
        "timeout",
        "options",
        "urls",
    }
)
_DEFAULT_OPTIONS: Mapping[str, Any] = {
    # open_orders(None) asks for every symbol on purpose: Binance's heavier weight is accepted.
    "fetchOpenOrders": {"warnWithoutSymbol": False},
    "warnOnFetchOpenOrdersWithoutSymbol": False,
}
_TIME_IN_FORCE: Mapping[TimeInForce, str] = {
    TimeInForce.GTC: "GTC",
    TimeInForce.IOC: "IOC",
    TimeInForce.FOK: "FOK",
}


def symbol_of(instrument_id: str) -> str:
    """The exchange symbol of an instrument id: `binance:BTC/USDT` -> `BTC/USDT`."""
    return split_instrument(instrument_id)[1]


def _merged(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged


def _now() -> datetime:
    return datetime.now(UTC)


class CcxtVenue:
    """A live venue on ccxt's `exchange_id` (async), for the instruments `venue:SYMBOL` of
    `venue` (default: the exchange id). `options` and `urls` are merged over the exchange's own
    (tests point `urls["api"]` at a local server); `config` sets other ccxt settings (e.g.
    `rateLimit`), but not the credentials, logging, rate limiter switch or timeout, which the
    venue owns. `timeout_s` bounds every request. `clock` dates reports the venue gives no time
    for. `trades_page` and `max_trade_pages` bound the pages `recent_trades` asks for."""

    def __init__(
        self,
        exchange_id: str,
        *,
        api_key: SecretStr,
        secret: SecretStr,
        password: SecretStr | None = None,
        venue: str | None = None,
        options: Mapping[str, Any] | None = None,
        urls: Mapping[str, Any] | None = None,
        config: Mapping[str, Any] | None = None,
        timeout_s: float = 10.0,
        trades_page: int = 500,
        max_trade_pages: int = 20,
        clock: Callable[[], datetime] = _now,
        stream_orders: bool = True,
        max_buffered_updates: int = 10_000,
    ) -> None:
        # The pro class when ccxt has one: the same REST, and the exchange's streams.
        exchange_class = ccxt_class(exchange_id, websocket=True)
        if not isinstance(api_key, SecretStr) or not isinstance(secret, SecretStr):
            raise TypeError("api_key and secret must be SecretStr")
        if not timeout_s > 0 or trades_page < 1 or max_trade_pages < 1 or max_buffered_updates < 1:
            raise ValueError(
                "timeout_s, trades_page, max_trade_pages and max_buffered_updates must be positive"
            )
        reserved = sorted(_RESERVED.intersection(config or {}))
        if reserved:
            raise ValueError(f"the venue sets {', '.join(reserved)} itself")
        self.exchange_id = exchange_id
        self.venue = venue or exchange_id
        self._clock = clock
        self._trades_page = trades_page
        self._max_trade_pages = max_trade_pages
        self._closed = False
        self._redact = Redactor([api_key, secret, password])
        self._translator = Translator(self.venue, self._redact)
        settings: dict[str, Any] = {
            **(config or {}),
            "enableRateLimit": True,
            "verbose": False,
            "timeout": max(1, round(timeout_s * 1000)),
            "options": _merged(_DEFAULT_OPTIONS, options or {}),
        }
        if urls:
            settings["urls"] = dict(urls)
        # The one place the secrets leave their SecretStr: into the exchange object.
        settings["apiKey"] = api_key.get_secret_value()
        settings["secret"] = secret.get_secret_value()
        if password is not None:
            settings["password"] = password.get_secret_value()
        self._exchange: Any = exchange_class.type(settings)
        self._exchange.logger = RedactingLogger(logging.getLogger(CCXT_LOGGER), self._redact)
        self._exchange.enableRateLimit = True
        share(self._exchange, shared_for(exchange_id, urls))
        self._guard_parsers()

        self.streams_orders: bool = (
            stream_orders
            and exchange_class.websocket
            and bool((self._exchange.has or {}).get("watchOrders"))
        )
        """True when `watch_orders` follows the account's orders on the exchange's private
        stream: ccxt has a pro class for the exchange that watches orders, and `stream_orders`
        did not turn it off."""
        self._stream = (
            OrderStream(
                self._exchange,
                venue=self.venue,
                translator=self._translator,
                clock=clock,
                open_timeout_s=timeout_s,
                max_buffered=max_buffered_updates,
            )
            if self.streams_orders
            else None
        )

    @property
    def malformed_records(self) -> int:
        """Records in the venue's answers that failed validation (raised, or left out of
        open_orders / recent_trades / the order stream)."""
        return self._translator.malformed_records

    def __repr__(self) -> str:
        return f"CcxtVenue(exchange_id={self.exchange_id!r}, venue={self.venue!r})"

    # -- the Venue interface -----------------------------------------------------------------

    async def submit(self, order: OrderView) -> VenueReport:
        symbol = self._symbol(order.instrument_id)
        kind, price, params = self._order_arguments(order)
        ex = self._exchange
        async with self._translator.translated("submit", sending=True):
            await ex.load_markets()
            self._check_grid(symbol, order)
            raw = await ex.create_order(
                symbol, kind, order.side, self._float(order.quantity), price, params
            )
        report = self._order_report(raw, order, symbol, acknowledgement=True)
        log.debug(
            "order sent",
            extra={"client_order_id": order.client_order_id, "status": str(report.status)},
        )
        return report

    async def cancel(self, order: OrderView) -> VenueReport:
        symbol = self._symbol(order.instrument_id)
        async with self._translator.translated("cancel", sending=True):
            try:
                raw = await self._exchange.cancel_order(
                    order.venue_order_id or "", symbol, {"clientOrderId": order.client_order_id}
                )
            except ccxt.OrderNotFound as exc:
                raise VenueRejected(
                    self._translator.text(
                        f"the venue has no working order {order.client_order_id}: {exc}"
                    )
                ) from None
        if isinstance(raw, dict) and not is_placeholder(raw) and raw.get("status") is None:
            # Only an acknowledgement of the cancel request: ask what became of the order.
            found = await self.fetch(order)
            if found is None:
                raise MalformedResponse(
                    f"the venue acknowledged the cancel of {order.client_order_id} but does not "
                    "know the order"
                )
            return found
        return self._order_report(raw, order, symbol)

    async def fetch(self, order: OrderView) -> VenueReport | None:
        symbol = self._symbol(order.instrument_id)
        async with self._translator.translated("fetch"):
            try:
                raw = await self._exchange.fetch_order(
                    order.venue_order_id or "", symbol, {"clientOrderId": order.client_order_id}
                )
            except ccxt.OrderNotFound:
                return None
        return self._order_report(raw, order, symbol)

    async def open_orders(self, instrument_id: str | None = None) -> list[VenueReport]:
        symbol = None if instrument_id is None else self._symbol(instrument_id)
        async with self._translator.translated("open_orders"):
            raws = await self._exchange.fetch_open_orders(symbol)
        if not isinstance(raws, list):
            raise MalformedResponse(f"open orders are not a list: {type(raws).__name__}")
        reports = []
        now = self._clock()
        for raw in raws:
            try:
                reports.append(report_from_ccxt(raw, now=now, symbol=symbol))
            except MalformedResponse as exc:
                self._translator.skip("order", raw, exc)
        return reports

    async def recent_trades(self, instrument_id: str, since: datetime) -> list[VenueTrade]:
        """The account's trades at or after `since`, oldest first, page by page (`trades_page`
        at a time, at most `max_trade_pages` pages) and deduplicated by trade id. Meant for
        catching up since the last look: Binance answers one query with at most 24 hours of
        trades, so a far-back `since` may come back incomplete."""
        symbol = self._symbol(instrument_id)
        if since.utcoffset() is None:
            raise ValueError("since must be timezone-aware")
        found: dict[str, VenueTrade] = {}
        start = millis_of(since)
        for _ in range(self._max_trade_pages):
            async with self._translator.translated("recent_trades"):
                raws = await self._exchange.fetch_my_trades(symbol, start, self._trades_page)
            if not isinstance(raws, list):
                raise MalformedResponse(f"trades are not a list: {type(raws).__name__}")
            fresh, latest = 0, start
            for raw in raws:
                try:
                    trade = trade_from_ccxt(raw, symbol=symbol)
                except MalformedResponse as exc:
                    self._translator.skip("trade", raw, exc)
                    continue
                if trade.ts < since or trade.trade_id in found:
                    continue
                found[trade.trade_id] = trade
                fresh += 1
                latest = max(latest, millis_of(trade.ts))
            # A full page may have more after it: go on from its last trade's time (that
            # millisecond again, as more trades may share it; they are deduplicated).
            if len(raws) < self._trades_page or fresh == 0:
                break
            start = latest
        return sorted(found.values(), key=lambda t: (t.ts, t.trade_id))

    async def balances(self) -> VenueBalances:
        async with self._translator.translated("balances"):
            raw = await self._exchange.fetch_balance()
        try:
            return balances_from_ccxt(raw, now=self._clock())
        except MalformedResponse as exc:
            self._translator.skip("balance", raw, exc)  # counted and logged; not left out: raised
            raise MalformedResponse(self._translator.text(str(exc))) from None

    async def watch_orders(self) -> list[VenueUpdate]:
        """The updates that came since the last call, or the next ones to come (see
        `trademesh_execution.venues.ccxt.stream`)."""
        if self._stream is None:
            raise StreamUnsupported(f"no private order stream on {self.venue} here: poll instead")
        return await self._stream.watch()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._stream is not None:
            self._stream.closed = True
        await self._exchange.close()  # its WebSocket connections too
        if self._stream is not None:
            await self._stream.close()  # and those of dropped streams still closing

    # -- helpers -----------------------------------------------------------------------------

    def _symbol(self, instrument_id: str) -> str:
        try:
            venue, symbol = split_instrument(instrument_id)
        except ValueError as exc:
            raise VenueRejected(str(exc)) from None
        if venue != self.venue:
            raise VenueRejected(f"instrument {instrument_id} is not on venue {self.venue}")
        return symbol

    def _order_arguments(self, order: OrderView) -> tuple[str, float | None, dict[str, Any]]:
        """ccxt's type, price and params of an order (VenueRejected if it cannot be sent)."""
        params: dict[str, Any] = {"clientOrderId": order.client_order_id}
        limit = order.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT)
        stop = order.order_type in (OrderType.STOP, OrderType.STOP_LIMIT)
        if limit and not (order.limit_price is not None and order.limit_price > 0):
            raise VenueRejected(f"a {order.order_type} order needs a positive limit price")
        if stop:
            if not (order.stop_price is not None and order.stop_price > 0):
                raise VenueRejected(f"a {order.order_type} order needs a positive stop price")
            params["triggerPrice"] = self._float(order.stop_price)
        if limit:
            tif = _TIME_IN_FORCE.get(order.time_in_force)
            if tif is None:
                raise VenueRejected(
                    f"time in force {order.time_in_force} is not supported on {self.venue}"
                )
            params["timeInForce"] = tif
        # A market order takes what it can at once: no time in force is sent for it.
        price = self._float(order.limit_price) if limit and order.limit_price else None
        return ("limit" if limit else "market"), price, params

    @staticmethod
    def _float(value: Decimal) -> float:
        """ccxt takes floats: refuse a value a float would change."""
        number = float(value)
        if Decimal(repr(number)) != value:
            raise VenueRejected(f"{value} has more digits than can be sent exactly")
        return number

    def _check_grid(self, symbol: str, order: OrderView) -> None:
        """Refuse a quantity or price that ccxt would round to the market's precision (a
        market that states no precision is not checked)."""
        ex = self._exchange
        precision = ex.market(symbol).get("precision") or {}
        checks = [("amount", ex.amount_to_precision, order.quantity, "quantity")]
        checks += [
            ("price", ex.price_to_precision, price, name)
            for price, name in (
                (order.limit_price, "limit price"),
                (order.stop_price, "stop price"),
            )
            if price is not None
        ]
        for kind, to_precision, value, name in checks:
            if precision.get(kind) is None:
                continue
            shown = to_precision(symbol, str(value))
            if checked_decimal(shown, name) != value:
                raise VenueRejected(
                    f"{name} {value} is not on {symbol}'s grid on {self.venue} (it would be {shown})"
                )

    def _order_report(
        self, raw: Any, order: OrderView, symbol: str, *, acknowledgement: bool = False
    ) -> VenueReport:
        try:
            return report_from_ccxt(
                raw,
                now=self._clock(),
                client_order_id=order.client_order_id,
                symbol=symbol,
                quantity=order.quantity,
                acknowledgement=acknowledgement,
            )
        except MalformedResponse as exc:
            self._translator.skip("order", raw, exc)  # counted and logged; not left out: raised
            raise MalformedResponse(self._translator.text(str(exc))) from None

    def _guard_parsers(self) -> None:
        """Guard ccxt's order and trade parsers (`trademesh_exchange.guards`): a record they choke
        on (or a trade whose time they cannot read, which ccxt cannot sort) becomes a marked
        placeholder at time 0 (so a `since` filter drops a trade) instead of failing the whole
        answer; it is reported here, and the placeholder fails validation (a single order) or is
        left out (lists)."""
        inside_order = 0  # parse_order parses an order's own fills (with no time) too

        def counted(parse_order: Parser) -> Parser:
            def parse(record: Any, market: Any = None) -> Any:
                nonlocal inside_order
                inside_order += 1
                try:
                    return parse_order(record, market)
                finally:
                    inside_order -= 1

            return parse

        def undated(parsed: Any) -> str | None:
            listed_trade = not inside_order and isinstance(parsed, dict)
            if listed_trade and parsed.get("timestamp") is None:
                return "the trade's time does not parse"
            return None

        def guarded(
            what: str, check: Callable[[Any], str | None] | None = None
        ) -> Callable[[Parser], Parser]:
            def refuse(record: Any, market: Any, reason: str) -> Any:
                self._translator.malformed(what, record, reason)
                return placeholder(record, market, self._translator.text(reason))

            def unreadable(exc: Exception) -> str:
                return f"ccxt could not read the {what} ({type(exc).__name__}: {exc})"

            return lambda parse: guard(parse, unreadable=unreadable, refuse=refuse, check=check)

        order_guard = guarded("order")
        install(
            self._exchange,
            {
                "parse_order": lambda parse: order_guard(counted(parse)),
                "parse_trade": guarded("trade", undated),
            },
        )
