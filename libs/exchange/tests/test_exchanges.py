"""Which exchanges ccxt has, and the class a client is made from."""

from __future__ import annotations

import ccxt.async_support as ccxt_async
import ccxt.pro as ccxt_pro
import pytest
from trademesh_exchange.exchanges import UnknownExchange, exchange_class, known_exchange

pytestmark = pytest.mark.unit


def test_known_exchanges_are_ccxts_ids_only() -> None:
    assert known_exchange("binance") and known_exchange("kraken")
    for name in ("nosuchexchange", "Exchange", "base", "exchanges", ""):
        assert not known_exchange(name)


def test_the_pro_class_serves_websocket_and_the_plain_one_rest() -> None:
    assert exchange_class("binance", websocket=True) == (ccxt_pro.binance, True)
    assert exchange_class("binance", websocket=False) == (ccxt_async.binance, False)


def test_an_exchange_without_a_pro_class_is_served_by_rest() -> None:
    rest_only = next(e for e in ccxt_async.exchanges if e not in ccxt_pro.exchanges)
    found = exchange_class(rest_only, websocket=True)
    assert found.type is getattr(ccxt_async, rest_only) and not found.websocket


@pytest.mark.parametrize("name", ["nosuchexchange", "Exchange", "base", "exchanges", ""])
def test_what_is_not_an_exchange_id_is_refused(name: str) -> None:
    with pytest.raises(UnknownExchange, match="ccxt has no exchange"):
        exchange_class(name, websocket=True)
    assert issubclass(UnknownExchange, ValueError)
