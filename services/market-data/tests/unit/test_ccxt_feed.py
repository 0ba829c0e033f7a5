"""The ccxt feed's reading of ccxt's failures (from the exchange library's classification):
which are a lost connection to wait out, which an exchange error to report and retry, and which
end the feed."""

from __future__ import annotations

import aiohttp
import ccxt
import pytest

from trademesh_market_data.feeds.ccxt_feed import _retryable, is_network_error

pytestmark = pytest.mark.unit


def _caused(exc: BaseException, cause: BaseException) -> BaseException:
    exc.__cause__ = cause
    return exc


@pytest.mark.parametrize(
    ("exc", "network", "retried"),
    [
        # The connection failed: reconnect after a backoff.
        (ccxt.RequestTimeout("binance GET timed out"), True, True),
        (ccxt.ExchangeNotAvailable("binance 503"), True, True),
        (ccxt.RateLimitExceeded("binance 429"), True, True),
        (ccxt.OperationFailed("binance -1001"), True, True),
        (ccxt.BadResponse("binance not JSON"), True, True),
        (ConnectionResetError(104, "reset by peer"), True, True),
        (TimeoutError(), True, True),
        (_caused(ccxt.ExchangeError("cut off"), aiohttp.ClientPayloadError()), True, True),
        # The exchange answered with an error: reported, and retried the same way.
        (ccxt.ExchangeError("binance -9999"), False, True),
        (ccxt.InvalidOrder("binance -1013"), False, True),
        (ccxt.UnsubscribeError("binance"), False, True),
        # The request can never work as configured: the feed ends with it.
        (ccxt.AuthenticationError("binance -2015"), False, False),
        (ccxt.BadSymbol("binance has no XYZ/USDT"), False, False),
        (ccxt.NotSupported("binance has no 7m bars"), False, False),
        # Not ccxt's, nor a transport failure: ccxt choked on an answer (reported, not retried).
        (ValueError("could not convert string to float: 'NaN'"), False, False),
    ],
)
def test_ccxt_failures_are_waited_out_retried_or_final(
    exc: BaseException, network: bool, retried: bool
) -> None:
    assert is_network_error(exc) is network
    assert _retryable(exc) is retried
