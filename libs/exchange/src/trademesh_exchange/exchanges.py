"""Which exchanges ccxt has, and the class a client of one is made from.

ccxt is imported when first asked, not with this module: importing it takes a second or more,
which a service that validates its settings but talks to no exchange need not pay.
"""

from __future__ import annotations

from typing import Any, NamedTuple


class UnknownExchange(ValueError):
    """The exchange id is not one ccxt knows."""


class ExchangeClass(NamedTuple):
    """ccxt's async class of an exchange, and whether it is ccxt.pro's: the same REST, and the
    exchange's WebSocket streams (`watch_*`)."""

    type: type[Any]
    websocket: bool


def known_exchange(exchange_id: str) -> bool:
    """Whether ccxt has an exchange of this id."""
    import ccxt.async_support as ccxt_async

    return exchange_id in ccxt_async.exchanges


def exchange_class(exchange_id: str, *, websocket: bool) -> ExchangeClass:
    """ccxt's async class of the exchange: its ccxt.pro class when `websocket` and ccxt has one,
    else the plain async one; UnknownExchange when ccxt has no such exchange."""
    import ccxt.async_support as ccxt_async
    import ccxt.pro as ccxt_pro

    plain = getattr(ccxt_async, exchange_id, None) if exchange_id else None
    if exchange_id not in ccxt_async.exchanges or not isinstance(plain, type):
        raise UnknownExchange(f"ccxt has no exchange {exchange_id!r}")
    pro = getattr(ccxt_pro, exchange_id, None)
    if websocket and exchange_id in ccxt_pro.exchanges and isinstance(pro, type):
        return ExchangeClass(pro, websocket=True)
    return ExchangeClass(plain, websocket=False)
