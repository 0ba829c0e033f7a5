"""The decimal places money is shown with, per currency."""

from __future__ import annotations

from decimal import Decimal

import pytest
from trademesh_trading.currencies import currency_places, in_currency, quote_currency

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("code", "places"),
    [("USD", 2), ("usd", 2), ("EUR", 2), ("JPY", 0), ("KWD", 3), ("USDT", 8), ("BTC", 8),
     (None, 8), ("", 8)],
)  # fmt: skip
def test_a_currency_has_its_minor_unit_and_a_crypto_asset_eight_places(
    code: str | None, places: int
) -> None:
    assert currency_places(code) == places


def test_an_amount_is_rounded_half_even_to_its_currency() -> None:
    assert in_currency(Decimal("5.5366191864013671875"), "USD") == Decimal("5.54")
    assert in_currency(Decimal("0.125"), "USD") == Decimal("0.12")
    assert in_currency(Decimal("1234.5"), "JPY") == Decimal("1234")
    assert in_currency(Decimal("0.000012345678912"), "BTC") == Decimal("0.00001235")


@pytest.mark.parametrize(
    ("instrument", "quote"),
    [("binance:BTC/USDT", "USDT"), ("binance:eth/btc", "BTC"), ("bybit:BTC/USDT:USDT", "USDT"),
     ("nasdaq:GOOG", "USD"), ("nasdaq:GOOG/USD", "USD"), ("GOOG", None), ("x:BTC/", None)],
)  # fmt: skip
def test_an_instrument_is_priced_in_its_quote_and_a_bare_symbol_in_usd(
    instrument: str, quote: str | None
) -> None:
    assert quote_currency(instrument) == quote
