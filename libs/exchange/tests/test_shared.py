"""What the clients of one exchange share in a process: one rate limiter and the markets, loaded
once an hour, per event loop and per exchange at one set of urls."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from trademesh_exchange import shared as shared_module
from trademesh_exchange.shared import MARKETS_TTL_S, share, shared_for

pytestmark = pytest.mark.unit


class FakeExchange:
    """What `share` touches of a ccxt exchange: its throttler and its markets."""

    def __init__(self) -> None:
        self.throttler = object()
        self.markets: Any = None
        self.currencies: Any = None
        self.loads = 0

    def init_throttler(self, cost: Any = None) -> None:
        self.throttler = object()  # ccxt makes a new limiter when the exchange opens

    def set_markets(self, markets: Any, currencies: Any = None) -> None:
        self.markets, self.currencies = markets, currencies

    async def load_markets(self, reload: bool = False, params: Any = None) -> Any:
        if self.markets is None or reload:
            self.loads += 1
            self.set_markets({"BTC/USDT": {"load": self.loads}}, {"BTC": {}})
        return self.markets


def test_outside_an_event_loop_nothing_is_shared() -> None:
    assert shared_for("binance", None) is None
    exchange = FakeExchange()
    own = exchange.throttler
    share(exchange, None)
    assert exchange.throttler is own


async def test_one_exchange_at_one_set_of_urls_shares_one_state() -> None:
    assert shared_for("binance", None) is shared_for("binance", {})
    local = {"api": {"public": "http://127.0.0.1:1"}}
    assert shared_for("binance", local) is shared_for("binance", dict(local))
    assert shared_for("binance", local) is not shared_for("binance", None)
    assert shared_for("kraken", None) is not shared_for("binance", None)


async def test_clients_share_the_rate_limiter_even_after_ccxt_makes_a_new_one() -> None:
    state = shared_for("binance", {"test": "limiter"})
    first, second = FakeExchange(), FakeExchange()
    share(first, state)
    share(second, state)
    assert first.throttler is second.throttler
    second.init_throttler()
    assert second.throttler is first.throttler


async def test_markets_are_loaded_once_and_reloaded_after_their_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1000.0]
    monkeypatch.setattr(shared_module.time, "monotonic", lambda: now[0])
    state = shared_for("binance", {"test": "markets"})
    first = FakeExchange()
    share(first, state)
    await first.load_markets()
    second = FakeExchange()
    share(second, state)
    assert second.markets == {"BTC/USDT": {"load": 1}}  # set from the first's load
    await second.load_markets()
    assert second.loads == 0
    await second.load_markets(True)  # an explicit reload is kept for the others
    now[0] += MARKETS_TTL_S + 1
    third = FakeExchange()
    share(third, state)
    assert third.markets is None  # too old: the third loads them again
    await third.load_markets()
    assert third.loads == 1 and state is not None and state.loaded_at == now[0]


def test_each_event_loop_has_its_own_state() -> None:
    async def state() -> Any:
        return shared_for("binance", None)

    assert asyncio.run(state()) is not asyncio.run(state())
