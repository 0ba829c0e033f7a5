"""How many decimal places an amount of a currency is shown with.

A currency that ISO 4217 knows (USD, EUR, JPY) is shown at its minor unit, as CLDR records it
(Babel's data: USD 2, JPY 0, KWD 3). Any other code is a crypto asset or a token (BTC, USDT,
ETH): those are shown at 8 places, the finest unit venues book them in (a satoshi; Binance books
USDT and fees in BTC or BNB to 8), so rounding loses nothing a venue would settle. An amount whose
currency is not known is shown at 8 places too (docs/decisions/0117-money-at-its-currency-places.md).
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache

from babel.numbers import get_currency_precision, list_currencies
from trademesh_events.ids import InstrumentId
from trademesh_events.money import MONEY_PLACES, plain, to_places

CRYPTO_PLACES = MONEY_PLACES
"""Places of a currency ISO 4217 does not know (a crypto asset or token), and of an unknown one."""


@lru_cache(maxsize=256)
def currency_places(code: str | None) -> int:
    """Decimal places of `code` (case-insensitive); 8 for a non-ISO or unknown currency."""
    if not code:
        return CRYPTO_PLACES
    upper = code.upper()
    if upper not in _iso_codes():
        return CRYPTO_PLACES
    return int(get_currency_precision(upper))


def in_currency(amount: Decimal, code: str | None) -> Decimal:
    """`amount` rounded (half even) to the places of `code`."""
    return to_places(amount, currency_places(code))


def money_in(amount: Decimal, code: str | None) -> str:
    """`amount` as an API writes money of `code`: rounded to its places, then plain."""
    return plain(in_currency(amount, code))


def currencies_of(instrument_id: InstrumentId) -> tuple[str, str] | None:
    """The base and quote currencies of `venue:BASE/QUOTE` (`binance:BTC/USDT` -> ("BTC",
    "USDT"); a ccxt settle suffix `:USDT` is dropped), upper case; None for a symbol that names
    none (`nasdaq:GOOG`)."""
    _, _, symbol = instrument_id.partition(":")
    base, slash, quote = symbol.partition("/")
    quote = quote.partition(":")[0]
    if not slash or not base or not quote:
        return None
    return base.upper(), quote.upper()


def quote_currency(instrument_id: InstrumentId) -> str | None:
    """The currency `instrument_id` is priced in (its cash, fees and PnL are amounts of it): the
    quote of a `BASE/QUOTE` symbol, USD for a symbol without `/` (`nasdaq:GOOG`: stocks and the
    replays of their history), None for an id that names no symbol or an empty quote."""
    _, _, symbol = instrument_id.partition(":")
    if not symbol:
        return None
    if "/" not in symbol:
        return "USD"
    pair = currencies_of(instrument_id)
    return None if pair is None else pair[1]


@lru_cache(maxsize=1)
def _iso_codes() -> frozenset[str]:
    return frozenset(list_currencies())
