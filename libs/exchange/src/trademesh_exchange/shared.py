"""What the clients of one exchange share within a process: ccxt's REST rate limiter, since an
exchange counts requests per IP and not per object, and the exchange's markets, loaded once an
hour rather than by every client (Binance's exchangeInfo alone weighs 20 of its 6000 a minute).

The state is per event loop (ccxt's limiter is an asyncio object) and per exchange at one set of
API urls (tests point clients at local servers). A client made outside an event loop shares
nothing. No ccxt import: it works on the exchange objects it is given.
"""

from __future__ import annotations

import asyncio
import json
import time
import weakref
from collections.abc import Mapping
from typing import Any

MARKETS_TTL_S = 3600.0


class Shared:
    """What the clients of one exchange share: its REST rate limiter and its markets (with when
    they were loaded)."""

    def __init__(self) -> None:
        self.throttler: Any = None
        self.markets: Any = None
        self.currencies: Any = None
        self.loaded_at = 0.0


_SHARED: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Shared]] = (
    weakref.WeakKeyDictionary()
)


def shared_for(exchange_id: str, urls: Mapping[str, Any] | None) -> Shared | None:
    """The shared state of the exchange at these urls on the running loop; None outside one."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    key = f"{exchange_id}|{json.dumps(urls or {}, sort_keys=True, default=str)}"
    return _SHARED.setdefault(loop, {}).setdefault(key, Shared())


def share(exchange: Any, shared: Shared | None) -> None:
    """Make the ccxt exchange use the shared rate limiter and markets: ccxt makes its limiter when
    the exchange is made and again when it opens, and both times it gets the shared one; markets
    loaded less than MARKETS_TTL_S ago are set, and markets this exchange loads are kept."""
    if shared is None:
        return
    if shared.throttler is None:
        shared.throttler = exchange.throttler
    exchange.throttler = shared.throttler

    def init_throttler(cost: Any = None) -> None:
        exchange.throttler = shared.throttler

    exchange.init_throttler = init_throttler
    cached = shared.markets is not None and time.monotonic() - shared.loaded_at < MARKETS_TTL_S
    if cached:
        exchange.set_markets(shared.markets, shared.currencies)
    load_markets = exchange.load_markets

    async def load_and_keep(reload: bool = False, params: Any = None) -> Any:
        markets = await load_markets(reload, params or {})
        if not cached or reload:
            shared.markets, shared.currencies = exchange.markets, exchange.currencies
            shared.loaded_at = time.monotonic()
        return markets

    exchange.load_markets = load_and_keep
