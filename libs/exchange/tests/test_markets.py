"""The public markets load: an unknown exchange and credentials are refused before any request,
and only the network failing is tried again."""

from __future__ import annotations

from typing import Any

import ccxt
import pytest
from trademesh_exchange import markets
from trademesh_exchange.exchanges import ExchangeClass, UnknownExchange
from trademesh_exchange.markets import load_public_markets, refuse_credentials

pytestmark = pytest.mark.unit


async def test_an_unknown_exchange_and_credentials_are_refused_before_any_request() -> None:
    with pytest.raises(UnknownExchange):
        await load_public_markets("no_such_exchange", {})
    with pytest.raises(ValueError, match="apiKey, secret"):
        await load_public_markets("binance", {"apiKey": "k", "secret": "s"})
    refuse_credentials({"urls": {}, "options": {}, "timeout": 1000})  # nothing secret: no error
    with pytest.raises(ValueError, match="public: no login"):
        refuse_credentials({"login": "me"})


class _Exchange:
    """Stands in for a ccxt exchange class: each load fails with the next of `failures`."""

    failures: list[BaseException] = []
    made: list[dict[str, Any]] = []
    closed = 0
    precisionMode = 4

    def __init__(self, config: dict[str, Any]) -> None:
        _Exchange.made.append(config)

    async def load_markets(self, reload: bool = False) -> dict[str, Any]:
        assert reload
        if _Exchange.failures:
            raise _Exchange.failures.pop(0)
        return {"BTC/USDT": {"symbol": "BTC/USDT"}}

    async def close(self) -> None:
        _Exchange.closed += 1


@pytest.fixture
def exchange(monkeypatch: pytest.MonkeyPatch) -> type[_Exchange]:
    _Exchange.failures, _Exchange.made, _Exchange.closed = [], [], 0
    monkeypatch.setattr(
        markets, "exchange_class", lambda exchange_id, websocket: ExchangeClass(_Exchange, False)
    )
    return _Exchange


@pytest.mark.parametrize(
    "failure",
    [ccxt.ExchangeNotAvailable("503"), ccxt.RequestTimeout("slow"), ConnectionResetError()],
)
async def test_a_network_failure_is_tried_again(
    exchange: type[_Exchange], failure: BaseException
) -> None:
    exchange.failures = [failure]
    loaded = await load_public_markets("binance", {"timeout": 1}, retry_wait_s=0.001)
    assert loaded == (4, [{"symbol": "BTC/USDT"}])
    assert len(exchange.made) == 2 and exchange.closed == 2  # each exchange closed


@pytest.mark.parametrize(
    "failure",
    [
        ccxt.OperationFailed("binance -1001"),
        ccxt.BadResponse("not JSON"),
        ccxt.ExchangeError("refused"),
        TypeError("ccxt's parser choked"),
    ],
)
async def test_anything_else_fails_at_once(
    exchange: type[_Exchange], failure: BaseException
) -> None:
    exchange.failures = [failure]
    with pytest.raises(type(failure)):
        await load_public_markets("binance", {}, retry_wait_s=0.001)
    assert len(exchange.made) == 1 and exchange.closed == 1


async def test_the_tries_are_bounded(exchange: type[_Exchange]) -> None:
    exchange.failures = [ccxt.NetworkError(str(n)) for n in range(5)]
    with pytest.raises(ccxt.NetworkError, match="2"):
        await load_public_markets("binance", {}, attempts=3, retry_wait_s=0.001)
    assert len(exchange.made) == 3
