"""The venue interface and the ccxt venue without a network: status and error mapping, instrument
symbols, validation of ccxt's (untrusted) answers, what is sent for each kind of order, secrets.

The ccxt exchange object is real (ccxt's binance); its network calls are replaced by mocks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from types import SimpleNamespace
from typing import Any
from unittest.mock import AsyncMock
from uuid import UUID

import aiohttp
import ccxt
import pytest
from pydantic import SecretStr
from trademesh_events.ids import AccountId, UserId
from trademesh_events.orders import OrderStatus, OrderType, TimeInForce
from trademesh_exchange.redaction import RedactingLogger, Redactor

from trademesh_execution.engine import OrderView
from trademesh_execution.venues import (
    Balance,
    CcxtVenue,
    DuplicateOrder,
    MalformedResponse,
    Venue,
    VenueBalances,
    VenueError,
    VenueRejected,
    VenueReport,
    VenueTimeout,
    VenueTrade,
    VenueUnavailable,
    split_instrument,
    symbol_of,
)
from trademesh_execution.venues.ccxt import (
    balances_from_ccxt,
    report_from_ccxt,
    trade_from_ccxt,
    venue_error,
    venue_status,
)

pytestmark = pytest.mark.unit

API_KEY = "unit-api-key-0a1b2c3d4e5f"
SECRET = "unit-secret-9z8y7x6w5v4u"
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
T_MS = 1717243200000  # 2024-06-01 12:00:00 UTC
S = OrderStatus


def view(
    order_type: OrderType = OrderType.LIMIT,
    *,
    side: str = "buy",
    quantity: str = "0.002",
    limit: str | None = "70000",
    stop: str | None = None,
    tif: TimeInForce = TimeInForce.GTC,
    venue_order_id: str | None = None,
) -> OrderView:
    return OrderView(
        client_order_id="tm-order-1",
        account_id=AccountId(UUID(int=1)),
        user_id=UserId(UUID(int=2)),
        instrument_id="binance:BTC/USDT",
        side=side,  # type: ignore[arg-type]
        order_type=order_type,
        quantity=D(quantity),
        limit_price=None if limit is None else D(limit),
        stop_price=None if stop is None else D(stop),
        status=OrderStatus.PENDING,
        created_at=NOW,
        time_in_force=tif,
        venue_order_id=venue_order_id,
    )


def ccxt_order(**fields: Any) -> dict[str, Any]:
    """A ccxt order structure as ccxt's binance parser makes it (floats, ms times)."""
    order: dict[str, Any] = {
        "id": "28457002",
        "clientOrderId": "tm-order-1",
        "timestamp": T_MS,
        "lastTradeTimestamp": None,
        "lastUpdateTimestamp": T_MS + 500,
        "symbol": "BTC/USDT",
        "type": "limit",
        "side": "buy",
        "price": 70000.0,
        "amount": 0.002,
        "filled": 0.0,
        "remaining": 0.002,
        "average": None,
        "cost": 0.0,
        "status": "open",
        "fee": None,
        "fees": [],
        "trades": [],
        "info": {},
    }
    order.update(fields)
    return order


def ccxt_trade(**fields: Any) -> dict[str, Any]:
    trade: dict[str, Any] = {
        "id": "3601000001",
        "order": "28457001",
        "timestamp": T_MS,
        "symbol": "BTC/USDT",
        "side": "buy",
        "takerOrMaker": "taker",
        "price": 67504.0,
        "amount": 0.001,
        "cost": 67.504,
        "fee": {"cost": 0.067504, "currency": "USDT"},
        "fees": [{"cost": 0.067504, "currency": "USDT"}],
        "info": {},
    }
    trade.update(fields)
    return trade


def report(raw: Any, **known: Any) -> VenueReport:
    return report_from_ccxt(raw, now=NOW, **known)


# ---- the interface ----------------------------------------------------------------------------


def test_instrument_ids_give_the_venue_and_the_symbol() -> None:
    assert split_instrument("binance:BTC/USDT") == ("binance", "BTC/USDT")
    assert symbol_of("binance:BTC/USDT") == "BTC/USDT"
    assert symbol_of("kraken:ETH/USD:USD") == "ETH/USD:USD"  # only the first colon splits
    for bad in ("BTC/USDT", ":BTC/USDT", "binance:", ""):
        with pytest.raises(ValueError, match="venue:SYMBOL"):
            symbol_of(bad)


def test_reports_and_trades_refuse_impossible_values() -> None:
    fine = report(ccxt_order())
    with pytest.raises(ValueError, match="negative"):
        replace(fine, remaining=D(-1))
    with pytest.raises(ValueError, match="positive"):
        replace(fine, avg_price=D(0))
    with pytest.raises(ValueError, match="timezone"):
        replace(fine, ts=datetime(2024, 6, 1))
    trade = trade_from_ccxt(ccxt_trade())
    with pytest.raises(ValueError, match="positive"):
        replace(trade, quantity=D(0))


# ---- statuses ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "filled", "expected"),
    [
        ("open", "0", S.ACCEPTED),
        ("open", "0.5", S.PARTIALLY_FILLED),
        ("open", "2", S.FILLED),  # all of it filled: the "open" is stale
        ("canceling", "0", S.ACCEPTED),  # a cancel is pending: still working
        ("canceling", "1", S.PARTIALLY_FILLED),
        ("closed", "2", S.FILLED),
        ("closed", "1", S.CANCELED),  # ended short of its quantity
        ("closed", "0", S.CANCELED),
        ("canceled", "0", S.CANCELED),
        ("canceled", "1.5", S.CANCELED),  # what filled is in `filled`
        ("cancelled", "0", S.CANCELED),
        ("expired", "0", S.EXPIRED),
        ("expired", "1", S.EXPIRED),
        ("rejected", "0", S.REJECTED),
    ],
)
def test_ccxt_statuses_map_to_the_state_machine(
    status: str, filled: str, expected: OrderStatus
) -> None:
    assert venue_status(status, D(filled), D(2)) is expected


@pytest.mark.parametrize("status", [None, "", "pending", "NEW", "FILLED", "ok", 3, "OPEN"])
def test_unknown_statuses_are_malformed(status: Any) -> None:
    with pytest.raises(MalformedResponse, match="unknown order status"):
        venue_status(status, D(0), D(1))


# ---- orders from ccxt -------------------------------------------------------------------------


def test_an_order_becomes_an_exact_report() -> None:
    got = report(
        ccxt_order(
            status="open",
            filled=0.0005,
            remaining=0.0015,
            average=70000.1,
            fees=[{"cost": 0.035, "currency": "USDT"}, {"cost": 0.0000001, "currency": "USDT"}],
        ),
        client_order_id="tm-order-1",
        symbol="BTC/USDT",
        quantity=D("0.002"),
    )
    assert got == VenueReport(
        client_order_id="tm-order-1",
        venue_order_id="28457002",
        status=S.PARTIALLY_FILLED,
        filled=D("0.0005"),
        avg_price=D("70000.1"),
        remaining=D("0.0015"),
        fee=D("0.0350001"),
        fee_currency="USDT",
        ts=NOW + timedelta(milliseconds=500),  # the last update, not the creation
    )


def test_report_details() -> None:
    # The average from cost / filled when the venue gives no average.
    assert report(ccxt_order(filled=0.002, status="closed", cost=140.0)).avg_price == D(70000)
    # Fees in two currencies: not summed (the trades carry each); a rebate is a negative fee.
    two = [{"cost": 0.1, "currency": "USDT"}, {"cost": 0.0001, "currency": "BNB"}]
    assert (report(ccxt_order(fees=two)).fee, report(ccxt_order(fees=two)).fee_currency) == (
        None,
        None,
    )
    rebate = report(ccxt_order(fees=[], fee={"cost": -0.01, "currency": "USDT"}))
    assert (rebate.fee, rebate.fee_currency) == (D("-0.01"), "USDT")
    # No time from the venue: the adapter's now. Binance numbers ids: accepted as text.
    undated = report(ccxt_order(id=28457002, timestamp=None, lastUpdateTimestamp=None))
    assert (undated.ts, undated.venue_order_id) == (NOW, "28457002")
    # Binance's cancel answer: clientOrderId is the cancel's own, origClientOrderId the order's.
    cancel = ccxt_order(
        status="canceled", clientOrderId="cancel-123", info={"origClientOrderId": "tm-order-1"}
    )
    assert report(cancel, client_order_id="tm-order-1").client_order_id == "tm-order-1"
    # An order listed without a client id (placed elsewhere), and one the service knows.
    assert report(ccxt_order(clientOrderId=None)).client_order_id is None
    assert report(ccxt_order(clientOrderId=None), client_order_id="x").client_order_id == "x"
    # Amounts from strings too; the amount from filled + remaining when missing.
    partial = ccxt_order(amount=None, filled="0.001", remaining="0.001", average="7e4")
    assert report(partial).remaining == D("0.001")


def test_a_bare_acknowledgement_of_a_submit_is_an_accepted_order() -> None:
    ack = {"id": "991", "clientOrderId": None, "status": None, "info": {}}
    got = report(ack, client_order_id="tm-order-1", quantity=D("0.002"), acknowledgement=True)
    assert (got.status, got.filled, got.remaining, got.client_order_id) == (
        S.ACCEPTED,
        D(0),
        D("0.002"),
        "tm-order-1",
    )
    with pytest.raises(MalformedResponse):
        report(ack, client_order_id="tm-order-1", quantity=D("0.002"))  # not for a fetch


@pytest.mark.parametrize(
    ("raw", "known", "message"),
    [
        ("not an order", {}, "not an object"),
        (None, {}, "not an object"),
        ({"_trademesh_malformed": "ccxt could not read it", "id": ""}, {}, "could not read"),
        (ccxt_order(id=None), {}, "no id"),
        (ccxt_order(id=""), {}, "no id"),
        (ccxt_order(id={"x": 1}), {}, "not an id"),
        (ccxt_order(id="9" * 200), {}, "longer than"),
        (ccxt_order(status="HALF_DONE"), {}, "unknown order status"),
        (ccxt_order(status=None), {}, "unknown order status"),
        (ccxt_order(filled=-0.001), {}, "filled is negative"),
        (ccxt_order(filled="NaN"), {}, "filled is 'NaN'"),
        (ccxt_order(filled=float("inf")), {}, "filled is inf"),
        (ccxt_order(filled="lots"), {}, "not a number"),
        (ccxt_order(filled=True), {}, "not a number"),
        (ccxt_order(filled=[1]), {}, "not a number"),
        (ccxt_order(filled=0.003), {}, "not within"),
        (ccxt_order(filled=None, remaining=None), {}, "filled quantity is missing"),
        (ccxt_order(amount=0.0), {}, "amount must be positive"),
        (ccxt_order(amount=None, remaining=None), {}, "amount is missing"),
        (ccxt_order(filled=0.001, average=None, cost=None), {}, "no average price"),
        (ccxt_order(filled=0.001, average=-5.0), {}, "average is negative"),
        (ccxt_order(filled=0.001, average=0.0), {}, "average must be positive"),
        (ccxt_order(fees=[{"cost": 0.1, "currency": None}]), {}, "not a currency"),
        (ccxt_order(fees=[{"cost": "x", "currency": "USDT"}]), {}, "fee is not a number"),
        (ccxt_order(fees="0.1 USDT"), {}, "fees are not a list"),
        (ccxt_order(clientOrderId="other"), {"client_order_id": "tm-order-1"}, "answered other"),
        (ccxt_order(symbol="ETH/USDT"), {"symbol": "BTC/USDT"}, "about 'ETH/USDT'"),
        (ccxt_order(amount=0.003), {"quantity": D("0.002")}, "is for 0.003"),
    ],
)
def test_malformed_orders_are_refused(raw: Any, known: dict[str, Any], message: str) -> None:
    with pytest.raises(MalformedResponse, match=message):
        report(raw, **known)


# ---- trades from ccxt -------------------------------------------------------------------------


def test_a_trade_becomes_an_exact_venue_trade() -> None:
    assert trade_from_ccxt(ccxt_trade(), symbol="BTC/USDT") == VenueTrade(
        trade_id="3601000001",
        client_order_id=None,
        venue_order_id="28457001",
        side="buy",
        quantity=D("0.001"),
        price=D("67504"),
        fee=D("0.067504"),
        fee_currency="USDT",
        ts=NOW,
        liquidity="taker",
    )
    quiet = trade_from_ccxt(ccxt_trade(takerOrMaker=None, fee=None, fees=[], side="sell"))
    assert (quiet.liquidity, quiet.fee, quiet.fee_currency, quiet.side) == (
        None,
        None,
        None,
        "sell",
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"id": None}, "no id"),
        ({"order": None}, "no order id"),
        ({"side": "long"}, "neither buy nor sell"),
        ({"timestamp": None}, "does not parse"),
        ({"timestamp": -1}, "does not parse"),
        ({"timestamp": 1.5}, "does not parse"),
        ({"timestamp": "yesterday"}, "does not parse"),
        ({"price": -67504.0}, "price is negative"),
        ({"price": 0}, "price must be positive"),
        ({"amount": "NaN"}, "amount is 'NaN'"),
        ({"amount": None}, "amount is missing"),
        ({"symbol": "ETH/USDT"}, "a trade of 'ETH/USDT'"),
    ],
)
def test_malformed_trades_are_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(MalformedResponse, match=message):
        trade_from_ccxt(ccxt_trade(**fields), symbol="BTC/USDT")


# ---- errors -----------------------------------------------------------------------------------


def _caused(exc: Exception, cause: BaseException) -> Exception:
    exc.__cause__ = cause
    return exc


_DISCONNECTED = aiohttp.ServerDisconnectedError()
_REFUSED = aiohttp.ClientConnectorError(
    SimpleNamespace(host="127.0.0.1", port=1, ssl=True),  # type: ignore[arg-type]
    ConnectionRefusedError(111, "Connection refused"),
)


@pytest.mark.parametrize(
    ("exc", "reading", "sending"),
    [
        (ccxt.RequestTimeout("binance POST timed out"), VenueTimeout, VenueTimeout),
        (ccxt.NetworkError("binance down"), VenueUnavailable, VenueUnavailable),
        (ccxt.ExchangeNotAvailable("binance 503"), VenueUnavailable, VenueUnavailable),
        (ccxt.OnMaintenance("binance maintenance"), VenueUnavailable, VenueUnavailable),
        (ccxt.DDoSProtection("binance 418"), VenueUnavailable, VenueUnavailable),
        (ccxt.RateLimitExceeded("binance 429"), VenueUnavailable, VenueUnavailable),
        (ccxt.InvalidNonce("binance -1021"), VenueUnavailable, VenueUnavailable),
        (ccxt.OperationFailed("binance -1001"), VenueUnavailable, VenueUnavailable),
        (ccxt.BadResponse("binance not JSON"), MalformedResponse, MalformedResponse),
        (ccxt.NullResponse("binance empty"), MalformedResponse, MalformedResponse),
        (ccxt.InvalidOrder("binance -2010"), VenueRejected, VenueRejected),
        (ccxt.InsufficientFunds("binance balance"), VenueRejected, VenueRejected),
        (ccxt.BadRequest("binance -1013"), VenueRejected, VenueRejected),
        (ccxt.BadSymbol("binance no such market"), VenueRejected, VenueRejected),
        (ccxt.AuthenticationError("binance -2015"), VenueRejected, VenueRejected),
        (ccxt.OperationRejected("binance -2011"), VenueRejected, VenueRejected),
        (ccxt.OrderNotFound("binance -2013"), VenueRejected, VenueRejected),
        (ccxt.ExchangeError("binance -9999"), VenueRejected, VenueRejected),
        (ccxt.DuplicateOrderId("binance dup"), DuplicateOrder, DuplicateOrder),
        (
            ccxt.InvalidOrder('binance {"code":-2010,"msg":"Duplicate order sent."}'),
            *[DuplicateOrder] * 2,
        ),
        # The server hung up after the request was sent: it may have been delivered.
        (_caused(ccxt.ExchangeNotAvailable("x"), _DISCONNECTED), VenueUnavailable, VenueTimeout),
        (
            _caused(ccxt.ExchangeError("cut off"), aiohttp.ClientPayloadError()),
            VenueUnavailable,
            VenueTimeout,
        ),
        # Nothing was sent: the connection was never made.
        (_caused(ccxt.ExchangeNotAvailable("x"), _REFUSED), VenueUnavailable, VenueUnavailable),
        (ValueError("could not convert string to float: 'NaN'"), *[MalformedResponse] * 2),
        (KeyError("status"), MalformedResponse, MalformedResponse),
    ],
)
def test_ccxt_errors_map_to_venue_errors(
    exc: Exception, reading: type[VenueError], sending: type[VenueError]
) -> None:
    assert type(venue_error(exc)) is reading
    assert type(venue_error(exc, sending=True)) is sending
    rejected = venue_error(exc)
    if isinstance(rejected, VenueRejected):
        assert rejected.reason == str(rejected) and type(exc).__name__ in rejected.reason


def test_error_texts_are_redacted() -> None:
    redact = Redactor([SecretStr(API_KEY), SecretStr(SECRET)])
    exc = ccxt.ExchangeError(
        f"binance POST http://x/api/v3/order?timestamp=1&signature=abcdef0123 key={API_KEY} {SECRET}"
    )
    text = str(venue_error(exc, redact=redact))
    assert API_KEY not in text and SECRET not in text and "abcdef0123" not in text
    assert "signature=***" in text and "key=***" in text


# ---- the venue -----------------------------------------------------------------------------------


def make_venue(**options: Any) -> CcxtVenue:
    return CcxtVenue(
        "binance",
        api_key=SecretStr(API_KEY),
        secret=SecretStr(SECRET),
        clock=lambda: NOW,
        **options,
    )


@pytest.fixture
async def venue() -> AsyncIterator[CcxtVenue]:
    made = make_venue()
    made._exchange.load_markets = AsyncMock(return_value={})
    # A market stating its grid, as ccxt builds it from Binance's filters.
    made._exchange.market = lambda symbol: {
        "symbol": symbol,
        "precision": {"amount": 1e-05, "price": 0.01},
    }
    yield made
    await made.close()


async def test_the_venue_holds_its_secrets_out_of_sight() -> None:
    venue = make_venue()
    for text in (repr(venue), str(venue), repr(vars(venue)), repr(venue._redact)):
        assert API_KEY not in text and SECRET not in text
    assert isinstance(venue, Venue)
    ex = venue._exchange
    assert (ex.apiKey, ex.secret) == (API_KEY, SECRET)  # handed to ccxt, and only there
    assert ex.enableRateLimit is True and ex.verbose is False
    assert isinstance(ex.logger, RedactingLogger)
    assert ex.timeout == 10_000
    await venue.close()


def test_the_venue_refuses_bad_configuration() -> None:
    with pytest.raises(ValueError, match="no exchange"):
        CcxtVenue("nosuchexchange", api_key=SecretStr("k"), secret=SecretStr("s"))
    with pytest.raises(ValueError, match="no exchange"):
        CcxtVenue("Exchange", api_key=SecretStr("k"), secret=SecretStr("s"))
    with pytest.raises(TypeError, match="SecretStr"):
        CcxtVenue("binance", api_key=API_KEY, secret=SecretStr("s"))  # type: ignore[arg-type]
    for reserved in ("enableRateLimit", "apiKey", "verbose", "timeout"):
        with pytest.raises(ValueError, match=reserved):
            make_venue(config={reserved: False})
    with pytest.raises(ValueError, match="positive"):
        make_venue(timeout_s=0)


@pytest.mark.parametrize(
    ("order", "kind", "price", "params"),
    [
        (view(OrderType.MARKET, limit=None), "market", None, {}),
        (view(OrderType.MARKET, limit=None, tif=TimeInForce.IOC), "market", None, {}),
        (view(OrderType.LIMIT), "limit", 70000.0, {"timeInForce": "GTC"}),
        (view(OrderType.LIMIT, tif=TimeInForce.IOC), "limit", 70000.0, {"timeInForce": "IOC"}),
        (view(OrderType.LIMIT, tif=TimeInForce.FOK), "limit", 70000.0, {"timeInForce": "FOK"}),
        (view(OrderType.STOP, limit=None, stop="71000"), "market", None, {"triggerPrice": 71000.0}),
        (
            view(OrderType.STOP_LIMIT, limit="71100", stop="71000"),
            "limit",
            71100.0,
            {"triggerPrice": 71000.0, "timeInForce": "GTC"},
        ),
    ],
)
async def test_what_is_sent_for_each_kind_of_order(
    venue: CcxtVenue, order: OrderView, kind: str, price: float | None, params: dict[str, Any]
) -> None:
    create = venue._exchange.create_order = AsyncMock(return_value=ccxt_order(id="1"))
    await venue.submit(order)
    create.assert_awaited_once_with(
        "BTC/USDT", kind, order.side, 0.002, price, {"clientOrderId": "tm-order-1", **params}
    )


@pytest.mark.parametrize(
    ("order", "message"),
    [
        (view(tif=TimeInForce.DAY), "time in force DAY"),
        (view(quantity="0.0012345"), "quantity 0.0012345 is not on BTC/USDT's grid"),
        (view(limit="70000.001"), "limit price 70000.001 is not on"),
        (view(OrderType.STOP_LIMIT, limit="70000", stop="71000.005"), "stop price 71000.005"),
        (view(OrderType.STOP, limit=None, stop=None), "needs a positive stop price"),
        (view(OrderType.LIMIT, limit=None), "needs a positive limit price"),
    ],
)
async def test_orders_that_cannot_be_sent_exactly_are_refused_unsent(
    venue: CcxtVenue, order: OrderView, message: str
) -> None:
    create = venue._exchange.create_order = AsyncMock()
    with pytest.raises(VenueRejected, match=message):
        await venue.submit(order)
    create.assert_not_awaited()


async def test_a_market_without_a_grid_still_refuses_what_a_float_would_change(
    venue: CcxtVenue,
) -> None:
    venue._exchange.market = lambda symbol: {"symbol": symbol, "precision": {}}
    create = venue._exchange.create_order = AsyncMock(return_value=ccxt_order(id="1"))
    with pytest.raises(VenueRejected, match="more digits"):
        await venue.submit(view(quantity="0.10000000000000000001"))
    create.assert_not_awaited()
    create.return_value = ccxt_order(id="1", amount=0.0012345, remaining=0.0012345)
    await venue.submit(view(quantity="0.0012345"))  # no grid to be off
    assert create.await_args is not None and create.await_args.args[3] == 0.0012345


async def test_instruments_of_other_venues_are_refused(venue: CcxtVenue) -> None:
    venue._exchange.fetch_order = AsyncMock()
    for instrument in ("kraken:BTC/USD", "BTC/USDT"):
        with pytest.raises(VenueRejected, match=r"not on venue binance|venue:SYMBOL"):
            await venue.fetch(replace(view(), instrument_id=instrument))
    venue._exchange.fetch_order.assert_not_awaited()
    other = make_venue(venue="binance-main")  # the exchange under another venue name
    with pytest.raises(VenueRejected, match="not on venue binance-main"):
        await other.fetch(view())
    await other.close()


async def test_ccxt_failures_come_out_as_venue_errors_without_ccxt_chained(
    venue: CcxtVenue,
) -> None:
    venue._exchange.create_order = AsyncMock(
        side_effect=ccxt.RequestTimeout("binance POST u?timestamp=1&signature=0badc0ffee")
    )
    with pytest.raises(VenueTimeout) as timed_out:
        await venue.submit(view())
    assert timed_out.value.__cause__ is None and timed_out.value.__suppress_context__
    assert "0badc0ffee" not in str(timed_out.value)

    venue._exchange.create_order = AsyncMock(return_value=ccxt_order(filled=-1.0))
    with pytest.raises(MalformedResponse, match="negative"):
        await venue.submit(view())
    assert venue.malformed_records == 1

    venue._exchange.fetch_order = AsyncMock(side_effect=ccxt.OrderNotFound("binance -2013"))
    assert await venue.fetch(view()) is None
    venue._exchange.cancel_order = AsyncMock(side_effect=ccxt.OrderNotFound("binance -2011"))
    with pytest.raises(VenueRejected, match="no working order tm-order-1"):
        await venue.cancel(view())


async def test_lookups_go_by_client_order_id(venue: CcxtVenue) -> None:
    fetch = venue._exchange.fetch_order = AsyncMock(return_value=ccxt_order())
    assert (await venue.fetch(view())) == report(ccxt_order())
    fetch.assert_awaited_once_with("", "BTC/USDT", {"clientOrderId": "tm-order-1"})
    await venue.fetch(view(venue_order_id="28457002"))
    assert fetch.await_args is not None
    assert fetch.await_args.args == ("28457002", "BTC/USDT", {"clientOrderId": "tm-order-1"})

    # A cancel only acknowledged (no status): the order is looked up for its real state.
    venue._exchange.cancel_order = AsyncMock(return_value={"id": "28457002", "status": None})
    fetch.return_value = ccxt_order(status="canceled")
    assert (await venue.cancel(view())).status is S.CANCELED


async def test_open_orders_leave_bad_records_out(venue: CcxtVenue) -> None:
    venue._exchange.fetch_open_orders = AsyncMock(
        return_value=[
            ccxt_order(clientOrderId="a"),
            ccxt_order(clientOrderId="b", status="HALF_DONE"),
            "garbage",
            ccxt_order(clientOrderId="c", filled=0.001, average=70000.0),
        ]
    )
    listed = await venue.open_orders()
    assert [(r.client_order_id, r.status) for r in listed] == [
        ("a", S.ACCEPTED),
        ("c", S.PARTIALLY_FILLED),
    ]
    assert venue.malformed_records == 2
    venue._exchange.fetch_open_orders = AsyncMock(return_value={"not": "a list"})
    with pytest.raises(MalformedResponse):
        await venue.open_orders("binance:BTC/USDT")


async def test_recent_trades_page_on_and_deduplicate(venue: CcxtVenue) -> None:
    venue._trades_page = 2

    def t(n: int, ms: int) -> dict[str, Any]:
        return ccxt_trade(id=str(n), timestamp=T_MS + ms)

    pages = [
        [t(1, 0), t(2, 10)],
        [t(2, 10), t(3, 10)],  # again from ms 10: trade 2 comes back once more
        [t(4, 20)],
    ]
    calls = venue._exchange.fetch_my_trades = AsyncMock(side_effect=pages)
    trades = await venue.recent_trades("binance:BTC/USDT", NOW)
    assert [x.trade_id for x in trades] == ["1", "2", "3", "4"]
    assert [c.args for c in calls.await_args_list] == [
        ("BTC/USDT", T_MS, 2),
        ("BTC/USDT", T_MS + 10, 2),
        ("BTC/USDT", T_MS + 10, 2),
    ]

    # A page with nothing new ends it (many trades in one millisecond cannot loop forever).
    venue._exchange.fetch_my_trades = AsyncMock(return_value=[t(1, 0), t(2, 0)])
    assert len(await venue.recent_trades("binance:BTC/USDT", NOW)) == 2
    with pytest.raises(ValueError, match="timezone"):
        await venue.recent_trades("binance:BTC/USDT", datetime(2024, 6, 1))


async def test_the_parser_guard_keeps_one_bad_record_from_failing_the_answer(
    venue: CcxtVenue,
) -> None:
    ex = venue._exchange
    market = {"symbol": "BTC/USDT", "id": "BTCUSDT"}
    # What ccxt's own parser cannot read becomes a marked placeholder, which fails validation.
    placeholder = ex.parse_trade({"price": object()}, market)
    assert placeholder["timestamp"] == 0 and placeholder["symbol"] == "BTC/USDT"
    with pytest.raises(MalformedResponse, match="could not read the trade"):
        trade_from_ccxt(placeholder)
    broken_order = ex.parse_order(["not", "a", "dict"], market)
    with pytest.raises(MalformedResponse, match="could not read the order"):
        report(broken_order)
    assert venue.malformed_records == 2


# ---- balances ---------------------------------------------------------------------------------


def binance_account(*balances: tuple[str, str, str]) -> dict[str, Any]:
    """Binance's GET /api/v3/account answer (the documented fields ccxt reads) with these
    (asset, free, locked) balances."""
    return {
        "canTrade": True,
        "updateTime": T_MS,
        "accountType": "SPOT",
        "balances": [{"asset": a, "free": f, "locked": lk} for a, f, lk in balances],
        "permissions": ["SPOT"],
    }


def ccxt_balances(*balances: tuple[str, str, str]) -> Any:
    """What ccxt's binance fetch_balance makes of such an answer (its own parser, floats)."""
    return ccxt.binance().parse_balance_custom(binance_account(*balances), "spot")


def test_balances_become_exact_decimals_per_currency() -> None:
    raw = ccxt_balances(
        ("BTC", "0.00219821", "0.00000000"),
        ("USDT", "1000.50000000", "99.50000000"),
        ("BNB", "0.00000000", "0.00000000"),
    )
    read = balances_from_ccxt(raw, now=NOW)
    assert read == VenueBalances(
        currencies={
            "BTC": Balance(free=D("0.00219821"), used=D(0), total=D("0.00219821")),
            "USDT": Balance(free=D("1000.5"), used=D("99.5"), total=D(1100)),
            "BNB": Balance(free=D(0), used=D(0), total=D(0)),
        },
        ts=NOW,  # Binance's updateTime: T_MS
    )
    assert (read.total("USDT"), read.total("ETH")) == (D(1100), D(0))
    # A balance structure without a time is dated now.
    assert (
        balances_from_ccxt({"info": {}, "ETH": {"free": 1, "used": 0, "total": 1}}, now=NOW).ts
        == NOW
    )
    assert balances_from_ccxt({"info": {}}, now=NOW).currencies == {}


def _entry(**fields: Any) -> dict[str, Any]:
    return {"free": 1.5, "used": 0.5, "total": 2.0} | fields


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (["not", "a", "dict"], "not an object"),
        ({"USDT": "1000"}, "balance of USDT is not an object"),
        ({"USDT": _entry(total=None)}, "USDT total is missing"),
        ({"USDT": _entry(free=None)}, "USDT free is missing"),
        ({"USDT": _entry(free=-1.5, total=-1.0)}, "negative"),
        ({"USDT": _entry(used=float("nan"))}, "USDT used is"),
        ({"USDT": _entry(total="lots")}, "not a number"),
        ({"USDT": _entry(total=True)}, "not a number"),
        ({"USDT": _entry(total=3.0)}, "do not make total"),
        ({"US DT": _entry()}, "not a currency code"),
        ({"": _entry()}, "not a currency code"),
    ],
)
def test_malformed_balances_are_refused(raw: Any, message: str) -> None:
    with pytest.raises(MalformedResponse, match=message):
        balances_from_ccxt(raw, now=NOW)


def test_a_balance_cannot_be_negative_or_naive() -> None:
    with pytest.raises(ValueError, match="free"):
        Balance(free=D(-1), used=D(0), total=D(-1))
    with pytest.raises(ValueError, match="timezone"):
        VenueBalances(currencies={}, ts=datetime(2024, 6, 1))


async def test_the_venue_reads_its_balances_and_maps_failures(venue: CcxtVenue) -> None:
    fetch = venue._exchange.fetch_balance = AsyncMock(
        return_value=ccxt_balances(("USDT", "250.00000000", "50.00000000"))
    )
    assert (await venue.balances()).total("USDT") == D(300)
    fetch.assert_awaited_once_with()

    venue._exchange.fetch_balance = AsyncMock(return_value={"USDT": _entry(total=9.0)})
    with pytest.raises(MalformedResponse, match="do not make total"):
        await venue.balances()
    assert venue.malformed_records == 1
    for raised, expected in [
        (ccxt.NetworkError("binance GET /api/v3/account"), VenueUnavailable),
        (ccxt.RequestTimeout("binance GET /api/v3/account"), VenueTimeout),
        (ccxt.AuthenticationError("binance -2015"), VenueRejected),
        (ValueError("could not convert string to float: 'lots'"), MalformedResponse),
    ]:
        venue._exchange.fetch_balance = AsyncMock(side_effect=raised)
        with pytest.raises(expected):
            await venue.balances()
