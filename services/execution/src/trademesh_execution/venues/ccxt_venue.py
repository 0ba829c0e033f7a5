"""The live venue on ccxt (`ccxt.async_support`): orders on any ccxt exchange, by client order id.

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

Statuses (`venue_status`): ccxt's "open" (and "canceling") is ACCEPTED, PARTIALLY_FILLED or
FILLED by the filled quantity; "closed" is FILLED when all of it filled, otherwise CANCELED (the
order ended short: what filled is in `filled`); "canceled", "expired" and "rejected" map to
themselves. Anything else is a MalformedResponse. A submit answered without a status (an
exchange that only acknowledges) is ACCEPTED; a cancel answered without one is looked up.

Errors (`venue_error`): ccxt.RequestTimeout (an HTTP 504 or Binance -1007 too) is VenueTimeout.
ccxt.NetworkError (ExchangeNotAvailable, DDoSProtection, RateLimitExceeded, InvalidNonce) and the
other OperationFailed are VenueUnavailable, except on submit and cancel when the connection broke
after it was made (the request may have been delivered): VenueTimeout. ccxt.BadResponse and any
non-ccxt exception out of ccxt (its parsers choking on an answer) are MalformedResponse.
ccxt.DuplicateOrderId, or a refusal whose text says "duplicate order", is DuplicateOrder; every
other ccxt.ExchangeError (InvalidOrder, InsufficientFunds, BadRequest, AuthenticationError,
OperationRejected, OrderNotFound on cancel, ...) is VenueRejected. Binance keeps client order ids
unique among open orders only, so an order that filled at once could be placed twice by a blind
resend: after a VenueUnavailable on submit, look the order up before sending it again.

Untrusted answers. Every number becomes a Decimal by `Decimal(str(x))` and is checked (finite;
quantities non-negative; prices positive; filled within the order's quantity; the order's
symbol, quantity and client id when they are known); a failing order answer is a
MalformedResponse. ccxt's own parsers are guarded (`trademesh_exchange.guards`), so a record
ccxt cannot even read fails alone: in `open_orders` and `recent_trades` a bad record is logged,
counted in `malformed_records` and left out, and the rest is returned.

Balances. `balances` calls ccxt's `fetch_balance()` (Binance spot: `GET /api/v3/account`, its
`free` and `locked` per asset) and reads ccxt's unified balance structure: one entry per currency
code with `free`, `used` and `total` (ccxt works out the third from the other two). Every
currency's three figures must be there, be finite and not negative, and add up (free + used =
total, up to the noise of ccxt's floats); a currency code must look like one. One bad entry fails
the whole answer (MalformedResponse), rather than leaving a currency out: a snapshot with a
currency missing would read as none of it. The numbers go through ccxt's floats like every other
answer here, exact for up to 15 significant digits (Binance's 8 decimals of any balance under
ten million).

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

The order stream. Where ccxt has a pro (WebSocket) class for the exchange and it says
`has["watchOrders"]`, the exchange object is that class (its REST is the same as the plain async
one's) and `watch_orders` follows the account's orders on the exchange's private stream (Binance
spot: the WebSocket API's user data stream, subscribed with `userDataStream.subscribe.signature`,
its `executionReport`s). ccxt's own `watch_orders` answers with its cache of orders: one entry per
order, updated in place, and a result only when a waiter happens to be there as a message comes
in, so reading it would merge two updates of an order that came between two reads and hold an
update back until the next message. Instead the venue takes each message's order updates as ccxt
parses them (it hands ccxt caches that report every record appended to them, and wraps ccxt's
message handler to know which records came in one message), converts them at once and buffers
them until `watch_orders` is called: every update ccxt parses is returned once, as soon as it
came. The execution an update reports is the trade ccxt parsed from the same message for that
order (`x=TRADE` on Binance); the update's report leaves the fee out (None), as the stream's order
messages carry the last execution's fee, not the order's (ccxt's running sum of those misses what
happened before the stream opened or while it was down). ccxt's `watch_orders` is still what opens
and authenticates the stream (and re-subscribes when ccxt finds the subscription gone), and its
failures are what the stream's errors are made of.

Reconnecting. The stream is opened by the first call, within `timeout_s` (connect and subscribe);
when it cannot be, or it drops (the exchange closes it, the keep-alive pings go unanswered),
`watch_orders` raises VenueUnavailable (after returning the updates that came before the drop)
and closes what is left of it; the next call opens a new one. Refused credentials are
VenueRejected. Updates cannot be replayed after a drop: the caller catches up by REST. The buffer
is bounded (`max_buffered_updates`): a caller that stops reading and lets it overflow is told the
same way, VenueUnavailable, and nothing more is buffered until it has been told. `stream_orders=False`
turns the stream off (`streams_orders` False, `watch_orders` raises StreamUnsupported), as does an
exchange that has none.
"""

from __future__ import annotations

import asyncio
import logging
import re
import weakref
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from typing import Any

import ccxt
from ccxt.async_support.base.ws.cache import ArrayCacheBySymbolById
from pydantic import SecretStr
from trademesh_events.orders import OrderStatus, OrderType, Side, TimeInForce
from trademesh_exchange.errors import Failure, classify, first_ccxt_error
from trademesh_exchange.exchanges import exchange_class as ccxt_class
from trademesh_exchange.guards import MALFORMED, Parser, guard, install, is_placeholder, placeholder
from trademesh_exchange.parsing import BadValue, millis_of, parse_decimal, time_or_none
from trademesh_exchange.redaction import CCXT_LOGGER, RedactingLogger, Redactor
from trademesh_exchange.shared import share, shared_for

from trademesh_execution.engine import Liquidity, OrderView
from trademesh_execution.venues.base import (
    Balance,
    DuplicateOrder,
    MalformedResponse,
    StreamUnsupported,
    VenueBalances,
    VenueError,
    VenueRejected,
    VenueReport,
    VenueTimeout,
    VenueTrade,
    VenueUnavailable,
    VenueUpdate,
    split_instrument,
)

log = logging.getLogger("trademesh.execution.ccxt")

_MAX_TEXT = 1000
_MAX_ID = 128
_STREAM_CACHE = 1000  # orders (and trades) ccxt keeps of the stream: its default

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
_WORKING = frozenset({"open", "canceling"})
_ENDED: Mapping[str, OrderStatus] = {
    "canceled": OrderStatus.CANCELED,
    "cancelled": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
}


def symbol_of(instrument_id: str) -> str:
    """The exchange symbol of an instrument id: `binance:BTC/USDT` -> `BTC/USDT`."""
    return split_instrument(instrument_id)[1]


# ---- untrusted numbers and times --------------------------------------------------------------


def _decimal(value: Any, name: str, *, positive: bool = False, signed: bool = False) -> Decimal:
    """An exchange number as a Decimal, checked (see `trademesh_exchange.parsing`): finite, not
    negative (unless `signed`), and not zero when `positive`; MalformedResponse if not."""
    try:
        return parse_decimal(value, name, positive=positive, signed=signed)
    except BadValue as exc:
        raise MalformedResponse(str(exc)) from None


def _optional(value: Any, name: str, **checks: bool) -> Decimal | None:
    return None if value is None else _decimal(value, name, **checks)


def _identifier(value: Any, name: str) -> str | None:
    """An exchange id as a string (ints are accepted: Binance's are numbers); None if absent."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise MalformedResponse(f"{name} is not an id: {value!r}"[:_MAX_TEXT])
    text = str(value)
    if len(text) > _MAX_ID:
        raise MalformedResponse(f"{name} is longer than {_MAX_ID} characters")
    return text


def _fees(raw: Mapping[str, Any]) -> tuple[Decimal | None, str | None]:
    """The sum of a ccxt order's or trade's fees and their currency; (None, None) when there are
    none or they are in several currencies."""
    entries = raw.get("fees")
    if not entries:
        entries = [raw.get("fee")] if raw.get("fee") is not None else []
    if not isinstance(entries, list):
        raise MalformedResponse(f"fees are not a list: {entries!r}"[:_MAX_TEXT])
    totals: dict[str, Decimal] = {}
    for entry in entries:
        if entry is None:
            continue
        if not isinstance(entry, dict):
            raise MalformedResponse(f"a fee is not an object: {entry!r}"[:_MAX_TEXT])
        if entry.get("cost") is None:
            continue
        cost = _decimal(entry.get("cost"), "fee", signed=True)  # a rebate is a negative fee
        currency = entry.get("currency")
        if not isinstance(currency, str) or not 1 <= len(currency) <= 16:
            raise MalformedResponse(f"fee currency {currency!r} is not a currency code")
        totals[currency] = totals.get(currency, Decimal(0)) + cost
    if len(totals) != 1:
        return None, None
    ((currency, total),) = totals.items()
    return total, currency


# ---- mapping ccxt's answers -------------------------------------------------------------------


def venue_status(status: Any, filled: Decimal, amount: Decimal) -> OrderStatus:
    """The state machine's status of a ccxt order status with `filled` of `amount` filled."""
    if status in _WORKING:
        if filled == 0:
            return OrderStatus.ACCEPTED
        return OrderStatus.FILLED if filled >= amount else OrderStatus.PARTIALLY_FILLED
    if status == "closed":
        return OrderStatus.FILLED if filled >= amount else OrderStatus.CANCELED
    if isinstance(status, str) and status in _ENDED:
        return _ENDED[status]
    raise MalformedResponse(f"unknown order status {status!r}"[:_MAX_TEXT])


def _checked(raw: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(raw, dict):
        raise MalformedResponse(f"the {what} is not an object: {raw!r}"[:_MAX_TEXT])
    if is_placeholder(raw):
        raise MalformedResponse(str(raw[MALFORMED]))
    return raw


def _their_client_id(raw: Mapping[str, Any]) -> str | None:
    info = raw.get("info")
    original = info.get("origClientOrderId") if isinstance(info, dict) else None
    if original not in (None, ""):  # Binance's cancel answer: the order's own client id
        return _identifier(original, "origClientOrderId")
    return _identifier(raw.get("clientOrderId"), "clientOrderId")


def report_from_ccxt(
    raw: Any,
    *,
    now: datetime,
    client_order_id: str | None = None,
    symbol: str | None = None,
    quantity: Decimal | None = None,
    acknowledgement: bool = False,
) -> VenueReport:
    """A ccxt order structure as a VenueReport, validated; MalformedResponse if it fails.

    Known facts are checked against it: the order's `client_order_id` (a different one means it
    is another order), `symbol` and `quantity`. `acknowledgement`: the answer to a submit, for
    which a missing status and filled quantity mean an accepted order with nothing filled."""
    order = _checked(raw, "order")
    venue_order_id = _identifier(order.get("id"), "id")
    if venue_order_id is None:
        raise MalformedResponse("the order has no id")
    theirs = _their_client_id(order)
    if client_order_id is not None and theirs not in (None, client_order_id):
        raise MalformedResponse(f"asked for order {client_order_id}, the venue answered {theirs}")
    got_symbol = order.get("symbol")
    if symbol is not None and got_symbol is not None and got_symbol != symbol:
        raise MalformedResponse(f"asked about {symbol}, the venue answered about {got_symbol!r}")

    amount = _optional(order.get("amount"), "amount", positive=True)
    filled = _optional(order.get("filled"), "filled")
    remaining = _optional(order.get("remaining"), "remaining")
    if amount is None:
        amount = quantity
    if amount is None and filled is not None and remaining is not None:
        amount = filled + remaining
    if amount is None or not amount > 0:
        raise MalformedResponse("the order's amount is missing")
    if quantity is not None and amount != quantity:
        raise MalformedResponse(f"the venue's order is for {amount}, the service's for {quantity}")
    if filled is None:
        if remaining is not None:
            filled = amount - remaining
        elif acknowledgement:
            filled = Decimal(0)
        else:
            raise MalformedResponse("the order's filled quantity is missing")
    if not Decimal(0) <= filled <= amount:
        raise MalformedResponse(f"filled {filled} is not within 0..{amount}")

    status_text = order.get("status")
    if status_text is None and acknowledgement:
        status_text = "open"
    status = venue_status(status_text, filled, amount)

    avg_price: Decimal | None = None
    if filled > 0:
        avg_price = _optional(order.get("average"), "average", positive=True)
        if avg_price is None:
            cost = _optional(order.get("cost"), "cost", positive=True)
            if cost is None:
                raise MalformedResponse("the order filled but has no average price")
            avg_price = cost / filled
    fee, fee_currency = _fees(order)
    times = (time_or_none(order.get(k)) for k in ("lastUpdateTimestamp", "lastTradeTimestamp"))
    ts = max((t for t in times if t is not None), default=None) or time_or_none(
        order.get("timestamp")
    )
    return VenueReport(
        client_order_id=theirs or client_order_id,
        venue_order_id=venue_order_id,
        status=status,
        filled=filled,
        avg_price=avg_price,
        remaining=amount - filled,
        fee=fee,
        fee_currency=fee_currency,
        ts=ts or now,
    )


def trade_from_ccxt(raw: Any, *, symbol: str | None = None) -> VenueTrade:
    """A ccxt trade structure (of the account) as a VenueTrade, validated."""
    trade = _checked(raw, "trade")
    trade_id = _identifier(trade.get("id"), "id")
    venue_order_id = _identifier(trade.get("order"), "order")
    if trade_id is None or venue_order_id is None:
        raise MalformedResponse("the trade has no id or no order id")
    got_symbol = trade.get("symbol")
    if symbol is not None and got_symbol != symbol:
        raise MalformedResponse(f"a trade of {got_symbol!r} among those of {symbol}")
    side: Side
    if trade.get("side") == "buy":
        side = "buy"
    elif trade.get("side") == "sell":
        side = "sell"
    else:
        raise MalformedResponse(f"trade side {trade.get('side')!r} is neither buy nor sell")
    ts = time_or_none(trade.get("timestamp"))
    if ts is None:
        raise MalformedResponse(f"trade time {trade.get('timestamp')!r} does not parse")
    role = trade.get("takerOrMaker")
    liquidity: Liquidity | None = None
    if role == "maker":
        liquidity = "maker"
    elif role == "taker":
        liquidity = "taker"
    fee, fee_currency = _fees(trade)
    return VenueTrade(
        trade_id=trade_id,
        client_order_id=_identifier(trade.get("clientOrderId"), "clientOrderId"),
        venue_order_id=venue_order_id,
        side=side,
        quantity=_decimal(trade.get("amount"), "amount", positive=True),
        price=_decimal(trade.get("price"), "price", positive=True),
        fee=fee,
        fee_currency=fee_currency,
        ts=ts,
        liquidity=liquidity,
    )


def updates_from_ccxt(order: Any, trades: Sequence[Any], *, now: datetime) -> list[VenueUpdate]:
    """The VenueUpdates of one order update on ccxt's stream: `order` is the ccxt order structure
    ccxt parsed from one message, `trades` the account's executions of that order ccxt parsed
    from the same message (ccxt trade structures); MalformedResponse if they fail validation.

    The report is the order as `report_from_ccxt` reads it, but without a fee: a stream's order
    message gives its last execution's fee, not the order's (see the module docstring); each
    trade carries its own. Each trade gets the order's client order id (Binance's execution
    carries it in the order's fields only) and must be of the order and within what it filled.
    One update per trade (Binance reports one execution a message; an exchange reporting
    several at once gives each its own update, all with the order after the message), or one
    without a trade."""
    raw = _checked(order, "order update")
    report = report_from_ccxt({**raw, "fee": None, "fees": []}, now=now)
    executions = []
    for entry in trades:
        trade = trade_from_ccxt(entry)
        if trade.venue_order_id != report.venue_order_id:
            raise MalformedResponse(
                f"execution {trade.trade_id} is of order {trade.venue_order_id}, "
                f"not of {report.venue_order_id}"
            )
        if trade.quantity > report.filled:
            raise MalformedResponse(
                f"execution {trade.trade_id} of {trade.quantity} is more than the order's "
                f"filled {report.filled}"
            )
        executions.append(replace(trade, client_order_id=report.client_order_id))
    if not executions:
        return [VenueUpdate(report=report, trade=None)]
    return [VenueUpdate(report=report, trade=trade) for trade in executions]


_BALANCE_KEYS = frozenset({"info", "timestamp", "datetime", "free", "used", "total", "debt"})
_CURRENCY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
MAX_CURRENCIES = 10_000
# How far free + used may be from total: the noise of ccxt's floats, relative to the total.
_BALANCE_NOISE = Decimal("1e-12")


def balances_from_ccxt(raw: Any, *, now: datetime) -> VenueBalances:
    """A ccxt balance structure (`fetch_balance`) as VenueBalances, validated; MalformedResponse
    if any currency's entry fails (see the module docstring)."""
    if not isinstance(raw, dict):
        raise MalformedResponse(f"the balances are not an object: {raw!r}"[:_MAX_TEXT])
    codes = [k for k in raw if k not in _BALANCE_KEYS]
    if len(codes) > MAX_CURRENCIES:
        raise MalformedResponse(f"{len(codes)} currencies: more than {MAX_CURRENCIES}")
    currencies: dict[str, Balance] = {}
    for code in codes:
        if not isinstance(code, str) or not _CURRENCY.match(code):
            raise MalformedResponse(f"{code!r} is not a currency code"[:_MAX_TEXT])
        entry = raw[code]
        if not isinstance(entry, dict):
            raise MalformedResponse(
                f"the balance of {code} is not an object: {entry!r}"[:_MAX_TEXT]
            )
        free = _decimal(entry.get("free"), f"{code} free")
        used = _decimal(entry.get("used"), f"{code} used")
        total = _decimal(entry.get("total"), f"{code} total")
        if abs(free + used - total) > total * _BALANCE_NOISE:
            raise MalformedResponse(
                f"{code}: free {free} and used {used} do not make total {total}"
            )
        currencies[code] = Balance(free=free, used=used, total=total)
    return VenueBalances(currencies=currencies, ts=time_or_none(raw.get("timestamp")) or now)


# ---- errors -----------------------------------------------------------------------------------


def venue_error(
    exc: BaseException, *, sending: bool = False, redact: Callable[[str], str] = str
) -> VenueError:
    """The VenueError of an exception out of ccxt, from its classification (see the module
    docstring and `trademesh_exchange.errors`). `sending`: the call changes the venue's state
    (submit, cancel), so a possibly delivered request is a timeout rather than "unavailable"."""
    text = redact(f"{type(exc).__name__}: {exc}")[:_MAX_TEXT]
    if isinstance(exc, VenueError):
        return exc
    found = classify(exc)
    if found.failure is Failure.TIMED_OUT:
        return VenueTimeout(text)
    if found.failure is Failure.BAD_RESPONSE:
        return MalformedResponse(text)
    if found.failure in (Failure.UNREACHABLE, Failure.TRY_AGAIN):
        if sending and found.may_have_been_delivered:
            return VenueTimeout(text)
        return VenueUnavailable(text)
    if found.duplicate:
        return DuplicateOrder(text)
    if found.failure in (Failure.CONFIGURATION, Failure.REFUSED):
        if found.may_have_been_delivered:  # ccxt reports a body cut off as an ExchangeError
            return VenueTimeout(text) if sending else VenueUnavailable(text)
        return VenueRejected(text)
    if found.failure is Failure.OTHER:
        return VenueUnavailable(text)
    return MalformedResponse(text)  # ccxt choked on what the venue answered


# ---- the venue --------------------------------------------------------------------------------


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


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _quiet_rejections(client: Any) -> None:
    """Mark the failures ccxt gives a connection's waiters as seen. When a connection fails,
    ccxt fails every waiter on it, its own bookkeeping ones too (which nobody awaits: asyncio
    would log each as an error that was never retrieved); the ones awaited still raise."""
    reject = client.reject

    def rejecting(result: Any, message_hash: Any = None) -> Any:
        futures = client.futures or {}
        hashes = list(futures) if message_hash is None else [message_hash]
        for name in hashes:
            future = futures.get(name)
            if isinstance(future, asyncio.Future):
                future.add_done_callback(_retrieved)
        return reject(result, message_hash)

    client.reject = rejecting


class _Recorded(ArrayCacheBySymbolById):  # type: ignore[misc]  # ccxt is untyped
    """ccxt's cache of the stream's orders (or trades), which also hands every record appended
    to it to `seen`: ccxt keeps one entry per order and updates it in place, so the cache alone
    cannot tell two updates of an order apart once the second has come.

    `feeless`: the cached orders keep no fee. ccxt (Binance) sums each execution's fee into the
    cached order, rounding the sum to the fee currency's precision, and a currency missing from
    the loaded ones makes it fail the whole message, order update included; the stream's reports
    carry no order fee anyway (see `updates_from_ccxt`), the executions carry theirs."""

    def __init__(self, max_size: int, seen: Callable[[Any], None], *, feeless: bool) -> None:
        super().__init__(max_size)
        self._seen = seen
        self._feeless = feeless

    def append(self, item: Any) -> None:
        super().append(item)
        if self._feeless and isinstance(item, dict):
            cached = self.hashmap.get(item.get("symbol"), {}).get(item.get("id"))
            if isinstance(cached, dict):
                cached["fee"], cached["fees"] = None, []
        self._seen(item)


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
        self.malformed_records = 0
        """Records in the venue's answers that failed validation (raised, or left out of
        open_orders / recent_trades)."""
        self._clock = clock
        self._trades_page = trades_page
        self._max_trade_pages = max_trade_pages
        self._closed = False
        self._redact = Redactor([api_key, secret, password])
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
        self._open_timeout_s = timeout_s
        self._max_buffered = max_buffered_updates
        self._updates: list[VenueUpdate] = []  # taken in, not yet returned
        self._stream_lock = asyncio.Lock()  # one waiter on the stream at a time
        self._stream_open = False  # subscribed: the exchange answered on the current connection
        self._stream_lost: str | None = None  # why the stream lost updates, until told
        self._heard = asyncio.Event()  # the current connection delivered a message
        self._changed = asyncio.Event()  # updates were taken in, or the stream was lost
        self._message: tuple[list[Any], list[Any]] | None = None  # records of the message
        self._closing: set[asyncio.Future[Any]] = set()  # closes of dropped connections
        self._quieted: weakref.WeakSet[Any] = weakref.WeakSet()  # their rejections quieted
        if self.streams_orders:
            self._hook_stream()

    def __repr__(self) -> str:
        return f"CcxtVenue(exchange_id={self.exchange_id!r}, venue={self.venue!r})"

    # -- the Venue interface -----------------------------------------------------------------

    async def submit(self, order: OrderView) -> VenueReport:
        symbol = self._symbol(order.instrument_id)
        kind, price, params = self._order_arguments(order)
        ex = self._exchange
        async with self._translated("submit", sending=True):
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
        async with self._translated("cancel", sending=True):
            try:
                raw = await self._exchange.cancel_order(
                    order.venue_order_id or "", symbol, {"clientOrderId": order.client_order_id}
                )
            except ccxt.OrderNotFound as exc:
                raise VenueRejected(
                    self._text(f"the venue has no working order {order.client_order_id}: {exc}")
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
        async with self._translated("fetch"):
            try:
                raw = await self._exchange.fetch_order(
                    order.venue_order_id or "", symbol, {"clientOrderId": order.client_order_id}
                )
            except ccxt.OrderNotFound:
                return None
        return self._order_report(raw, order, symbol)

    async def open_orders(self, instrument_id: str | None = None) -> list[VenueReport]:
        symbol = None if instrument_id is None else self._symbol(instrument_id)
        async with self._translated("open_orders"):
            raws = await self._exchange.fetch_open_orders(symbol)
        if not isinstance(raws, list):
            raise MalformedResponse(f"open orders are not a list: {type(raws).__name__}")
        reports = []
        now = self._clock()
        for raw in raws:
            try:
                reports.append(report_from_ccxt(raw, now=now, symbol=symbol))
            except MalformedResponse as exc:
                self._skip("order", raw, exc)
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
            async with self._translated("recent_trades"):
                raws = await self._exchange.fetch_my_trades(symbol, start, self._trades_page)
            if not isinstance(raws, list):
                raise MalformedResponse(f"trades are not a list: {type(raws).__name__}")
            fresh, latest = 0, start
            for raw in raws:
                try:
                    trade = trade_from_ccxt(raw, symbol=symbol)
                except MalformedResponse as exc:
                    self._skip("trade", raw, exc)
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
        async with self._translated("balances"):
            raw = await self._exchange.fetch_balance()
        try:
            return balances_from_ccxt(raw, now=self._clock())
        except MalformedResponse as exc:
            self._skip("balance", raw, exc)  # counted and logged; not left out: raised
            raise MalformedResponse(self._text(str(exc))) from None

    async def watch_orders(self) -> list[VenueUpdate]:
        """The updates that came since the last call, or the next ones to come (see the module
        docstring: "The order stream" and "Reconnecting")."""
        if not self.streams_orders:
            raise StreamUnsupported(f"no private order stream on {self.venue} here: poll instead")
        async with self._stream_lock:
            while True:
                if self._closed:
                    raise VenueUnavailable("the venue is closed")
                if self._updates:
                    taken, self._updates = self._updates, []
                    return taken
                if self._stream_lost is not None:
                    reason = self._stream_lost
                    await self._reset_stream()
                    log.warning("order stream lost", extra={"venue": self.venue, "reason": reason})
                    raise VenueUnavailable(reason)
                try:
                    await self._wait_on_stream()
                except VenueUnavailable as exc:
                    if not self._updates:
                        raise
                    # Updates came before the stream failed: they go first, the failure next.
                    self._stream_lost = str(exc)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._exchange.close()  # its WebSocket connections too
        if self._closing:  # and those of dropped streams still closing
            await asyncio.gather(*self._closing, return_exceptions=True)

    # -- the order stream ----------------------------------------------------------------------

    def _hook_stream(self) -> None:
        """Install the recording caches and wrap ccxt's message, close and error handlers (ccxt
        binds them to each connection it opens, so they are set before any is)."""
        ex = self._exchange
        ex.orders = _Recorded(_STREAM_CACHE, self._order_seen, feeless=True)
        ex.myTrades = _Recorded(_STREAM_CACHE, self._trade_seen, feeless=False)
        handle_message, on_close, on_error = ex.handle_message, ex.on_close, ex.on_error
        client_of = ex.client

        def message(client: Any, raw: Any) -> None:
            if not self._current(client):
                return  # a connection the venue dropped, still talking as it closes: not heard
            self._heard.set()
            self._message = ([], [])
            try:
                handle_message(client, raw)
            except Exception as exc:  # a message ccxt choked on: left out, never raised into ccxt
                self._skip_message(raw, exc)
            finally:
                orders, trades = self._message
                self._message = None
            self._take_in(orders, trades)

        def closed(client: Any, code: Any) -> None:
            # ccxt forgets the connection of the url, whichever it is now: only the current one's
            # close may (a dropped connection reports its close again once its socket is shut,
            # by then the url may have a new connection).
            if self._current(client):
                self._lose(client, f"the order stream was closed by the venue (code {code})")
                on_close(client, code)

        def failed(client: Any, error: Any) -> None:
            self._lose(client, f"the order stream failed ({type(error).__name__}: {error})")
            on_error(client, error)

        def client(url: str) -> Any:
            made = client_of(url)
            if made not in self._quieted:
                self._quieted.add(made)
                _quiet_rejections(made)
            return made

        ex.handle_message, ex.on_close, ex.on_error, ex.client = message, closed, failed, client

    def _current(self, client: Any) -> bool:
        """The connection is the exchange's current one for its url (not one being dropped)."""
        clients = self._exchange.clients or {}
        return clients.get(getattr(client, "url", None)) is client

    def _order_seen(self, order: Any) -> None:
        if self._message is None:
            self._take_in([order], [])  # appended outside a message: an update of its own
        else:
            self._message[0].append(order)

    def _trade_seen(self, trade: Any) -> None:
        if self._message is not None:
            self._message[1].append(trade)

    def _take_in(self, orders: list[Any], trades: list[Any]) -> None:
        """Convert one message's order updates (with their executions) and buffer them; called
        inside ccxt's message handling, so nothing may escape."""
        if not orders or self._stream_lost is not None:
            return  # a lost stream buffers nothing until the caller has been told
        now = self._clock()
        for order in orders:
            order_id = order.get("id") if isinstance(order, dict) else None
            theirs = [t for t in trades if isinstance(t, dict) and t.get("order") == order_id]
            try:
                updates = updates_from_ccxt(order, theirs, now=now)
            except MalformedResponse as exc:
                self._skip("order update", order, exc)
                continue
            except Exception as exc:  # a record no check foresaw: left out as well
                self._skip("order update", order, MalformedResponse(f"{type(exc).__name__}: {exc}"))
                continue
            if len(self._updates) + len(updates) > self._max_buffered:
                self._updates.clear()
                self._lose(
                    None,
                    f"more than {self._max_buffered} order updates were left unread: "
                    "they were dropped",
                )
                return
            self._updates.extend(updates)
            self._changed.set()

    def _lose(self, client: Any, reason: str) -> None:
        """The open stream lost updates (its connection went, or the buffer overflowed): the
        next call says so. A connection being dropped already is not the stream."""
        if client is not None and not (self._stream_open and self._current(client)):
            return
        if self._stream_lost is None:
            self._stream_lost = self._text(reason)
        self._changed.set()

    def _skip_message(self, raw: Any, exc: Exception) -> None:
        self.malformed_records += 1
        log.warning(
            "malformed message on the order stream",
            extra={
                "venue": self.venue,
                "reason": self._text(f"ccxt could not handle it ({type(exc).__name__}: {exc})"),
                "record": self._text(repr(raw))[:300],
            },
        )

    async def _reset_stream(self) -> None:
        """Close what is left of the stream (ccxt's connections and their subscription state):
        the next wait opens a new one. This venue has no other WebSocket connections."""
        self._stream_open = False
        self._stream_lost = None
        self._heard.clear()
        ex = self._exchange
        clients = ex.clients or {}
        dropped = [clients.pop(url) for url in list(clients)]
        for client in dropped:
            connected = getattr(client, "connected", None)
            if isinstance(connected, asyncio.Future) and not connected.done():
                # Still connecting: closing it now closes no socket, so close it once it is
                # connected (what it says until then is not listened to: it is not current).
                connected.add_done_callback(partial(self._close_later, client))
        if dropped:
            await asyncio.gather(*(c.close() for c in dropped), return_exceptions=True)

    def _close_later(self, client: Any, _connected: object = None) -> None:
        task = asyncio.ensure_future(client.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _wait_on_stream(self) -> None:
        """Wait until updates are taken in or the stream is lost (opening it first if it is not
        open); raise the stream's failure as a VenueError, its connections closed."""
        ex = self._exchange
        opening = not self._stream_open
        if opening:
            await self._reset_stream()  # what an earlier, interrupted opening left
            try:
                async with self._translated("watch_orders"):
                    await ex.load_markets()
            except VenueRejected:
                raise
            except VenueError as exc:
                raise VenueUnavailable(str(exc)) from None
        self._changed.clear()
        watching = asyncio.ensure_future(ex.watch_orders())
        changed = asyncio.ensure_future(self._changed.wait())
        heard = asyncio.ensure_future(self._heard.wait())
        try:
            if opening:
                done, _ = await asyncio.wait(
                    {watching, changed, heard},
                    timeout=self._open_timeout_s,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if not done:
                    raise VenueUnavailable(
                        f"the order stream on {self.venue} did not open within "
                        f"{self._open_timeout_s:g}s"
                    )
                if not watching.done():
                    self._stream_open = True  # the venue answered: open, or about to refuse
                    log.info("order stream connected", extra={"venue": self.venue})
            if not (watching.done() or changed.done()):
                await asyncio.wait({watching, changed}, return_when=asyncio.FIRST_COMPLETED)
            if watching.cancelled():  # ccxt cancels its waiters when its connection is closed
                raise VenueUnavailable(f"the order stream on {self.venue} was closed")
            if watching.done() and watching.exception() is not None:
                raise self._stream_error(watching.exception())
        except VenueError as error:
            await self._reset_stream()
            log.info(
                "order stream failed",
                extra={"venue": self.venue, "error": type(error).__name__},
            )
            raise error from None
        finally:
            for task in (watching, changed, heard):
                if not task.done():
                    task.cancel()

    def _stream_error(self, exc: BaseException) -> VenueError:
        """The VenueError of a failure of ccxt's watch_orders: VenueRejected for a refusal (bad
        credentials), VenueUnavailable for anything else. ccxt's own bookkeeping can fail while
        it handles the exchange's refusal; the refusal is what happened, so the first ccxt error
        in the chain is the one translated."""
        error = venue_error(first_ccxt_error(exc), redact=self._redact)
        if isinstance(error, VenueRejected):
            return error
        return VenueUnavailable(str(error))

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
            if _decimal(shown, name) != value:
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
            self._skip("order", raw, exc)  # counted and logged; not left out: raised
            raise MalformedResponse(self._text(str(exc))) from None

    @asynccontextmanager
    async def _translated(self, action: str, *, sending: bool = False) -> AsyncIterator[None]:
        """Every exception out of ccxt as a VenueError with a redacted text, ccxt's own exception
        not chained (its text and traceback are not ours to vouch for)."""
        try:
            yield
        except VenueError:
            raise
        except Exception as exc:
            error = venue_error(exc, sending=sending, redact=self._redact)
            log.info(
                "venue call failed",
                extra={"venue": self.venue, "action": action, "error": type(error).__name__},
            )
            raise error from None

    def _text(self, text: str) -> str:
        return self._redact(text)[:_MAX_TEXT]

    def _skip(self, what: str, raw: Any, exc: MalformedResponse) -> None:
        """Count and log a record that failed validation."""
        if is_placeholder(raw):
            return  # counted and reported by the parser guard already
        self.malformed_records += 1
        log.warning(
            "malformed %s from the venue",
            what,
            extra={
                "venue": self.venue,
                "reason": self._text(str(exc)),
                "record": self._record(raw),
            },
        )

    def _record(self, raw: Any) -> str:
        if isinstance(raw, dict) and "info" in raw:
            raw = raw["info"]
        return self._text(repr(raw))[:300]

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
                self.malformed_records += 1
                log.warning(
                    "malformed %s from the venue",
                    what,
                    extra={
                        "venue": self.venue,
                        "reason": self._text(reason),
                        "record": self._record(record),
                    },
                )
                return placeholder(record, market, self._text(reason))

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
