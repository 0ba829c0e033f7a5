"""The one classification of ccxt's failures: each of ccxt's classes, exceptions that are not
ccxt's, what the chain says of the connection, and duplicate orders."""

from __future__ import annotations

import socket
from types import SimpleNamespace

import aiohttp
import ccxt
import pytest
from trademesh_exchange.errors import (
    Classified,
    Failure,
    Transport,
    classify,
    exception_chain,
    first_ccxt_error,
)

pytestmark = pytest.mark.unit

F = Failure


def _caused(exc: BaseException, cause: BaseException) -> BaseException:
    exc.__cause__ = cause
    return exc


def _refused() -> aiohttp.ClientConnectorError:
    return aiohttp.ClientConnectorError(
        SimpleNamespace(host="127.0.0.1", port=1, ssl=True),  # type: ignore[arg-type]
        ConnectionRefusedError(111, "Connection refused"),
    )


@pytest.mark.parametrize(
    ("exc", "failure"),
    [
        (ccxt.RequestTimeout("binance POST timed out"), F.TIMED_OUT),
        (ccxt.NetworkError("binance down"), F.UNREACHABLE),
        (ccxt.ExchangeNotAvailable("binance 503"), F.UNREACHABLE),
        (ccxt.OnMaintenance("binance maintenance"), F.UNREACHABLE),
        (ccxt.DDoSProtection("binance 418"), F.UNREACHABLE),
        (ccxt.RateLimitExceeded("binance 429"), F.UNREACHABLE),
        (ccxt.InvalidNonce("binance -1021"), F.UNREACHABLE),
        (ccxt.BadResponse("binance not JSON"), F.BAD_RESPONSE),
        (ccxt.NullResponse("binance empty"), F.BAD_RESPONSE),
        (ccxt.OperationFailed("binance -1001"), F.TRY_AGAIN),
        (ccxt.CancelPending("binance cancel pending"), F.TRY_AGAIN),
        (ccxt.AuthenticationError("binance -2015"), F.CONFIGURATION),
        (ccxt.PermissionDenied("binance -2015"), F.CONFIGURATION),
        (ccxt.AccountSuspended("binance suspended"), F.CONFIGURATION),
        (ccxt.BadSymbol("binance no such market"), F.CONFIGURATION),
        (ccxt.NotSupported("no OHLCV"), F.CONFIGURATION),
        (ccxt.InvalidOrder("binance -2010"), F.REFUSED),
        (ccxt.InsufficientFunds("binance balance"), F.REFUSED),
        (ccxt.BadRequest("binance -1013"), F.REFUSED),
        (ccxt.OperationRejected("binance -2011"), F.REFUSED),
        (ccxt.OrderNotFound("binance -2013"), F.REFUSED),
        (ccxt.DuplicateOrderId("binance dup"), F.REFUSED),
        (ccxt.ExchangeError("binance -9999"), F.REFUSED),
        (ccxt.UnsubscribeError("binance unsubscribe"), F.OTHER),
        (ccxt.BaseError("something of ccxt's"), F.OTHER),
        (OSError("connection reset"), F.TRANSPORT),
        (ConnectionResetError(104, "reset by peer"), F.TRANSPORT),
        (TimeoutError(), F.TRANSPORT),
        (ValueError("could not convert string to float: 'NaN'"), F.UNREADABLE),
        (KeyError("status"), F.UNREADABLE),
        (TypeError("'NoneType' object is not subscriptable"), F.UNREADABLE),
    ],
)
def test_each_failure_is_classified_by_its_class(exc: Exception, failure: Failure) -> None:
    found = classify(exc)
    assert found.failure is failure
    assert found.from_ccxt is isinstance(exc, ccxt.BaseError)
    assert found.transport is None and not found.may_have_been_delivered


@pytest.mark.parametrize(
    ("cause", "transport"),
    [
        # The server hung up, or the answer was cut off: the request may have been delivered.
        (aiohttp.ServerDisconnectedError(), Transport.BROKEN),
        (aiohttp.ClientPayloadError("cut off"), Transport.BROKEN),
        (ConnectionResetError(104, "reset by peer"), Transport.BROKEN),
        (TimeoutError(), Transport.BROKEN),
        # The connection was never made: nothing was sent.
        (_refused(), Transport.NOT_CONNECTED),
        (socket.gaierror(-2, "Name or service not known"), Transport.NOT_CONNECTED),
        # Not a transport failure.
        (ValueError("bad JSON"), None),
    ],
)
def test_the_chain_says_whether_the_connection_was_made(
    cause: BaseException, transport: Transport | None
) -> None:
    found = classify(_caused(ccxt.ExchangeError("binance"), cause))
    assert (found.failure, found.transport) == (F.REFUSED, transport)
    assert found.may_have_been_delivered is (transport is Transport.BROKEN)


def test_the_first_transport_failure_in_the_chain_decides() -> None:
    # ccxt's own wrapping: the nearest cause; deeper causes and contexts are looked through.
    deep = _caused(ccxt.ExchangeNotAvailable("x"), _caused(RuntimeError("y"), _refused()))
    assert classify(deep).transport is Transport.NOT_CONNECTED
    with pytest.raises(ccxt.NetworkError) as raised:
        try:
            raise aiohttp.ServerDisconnectedError()
        except aiohttp.ServerDisconnectedError:
            raise ccxt.NetworkError("x")  # noqa: B904  (raised while handling: a context only)
    assert raised.value.__cause__ is None
    assert classify(raised.value).transport is Transport.BROKEN


def test_a_chain_that_loops_ends() -> None:
    a, b = ccxt.ExchangeError("a"), ValueError("b")
    a.__cause__, b.__cause__ = b, a
    assert list(exception_chain(a)) == [b, a]
    assert classify(a) == Classified(F.REFUSED, None, False)


@pytest.mark.parametrize(
    ("exc", "duplicate"),
    [
        (ccxt.DuplicateOrderId("binance dup"), True),
        (ccxt.InvalidOrder('binance {"code":-2010,"msg":"Duplicate order sent."}'), True),
        (ccxt.InvalidOrder("binance -2010 Account has insufficient balance"), False),
        (ccxt.ExchangeError("DUPLICATE ORDER id"), True),
    ],
)
def test_duplicate_orders_are_recognised_by_class_or_by_text(
    exc: Exception, duplicate: bool
) -> None:
    assert classify(exc).duplicate is duplicate


def test_the_ccxt_error_behind_a_failure_of_its_bookkeeping_is_found() -> None:
    refusal = ccxt.AuthenticationError("binance -2015 invalid API key")
    bookkeeping = _caused(KeyError("subscription"), refusal)
    assert first_ccxt_error(bookkeeping) is refusal
    assert first_ccxt_error(refusal) is refusal
    unrelated = ValueError("no ccxt error here")
    assert first_ccxt_error(unrelated) is unrelated
