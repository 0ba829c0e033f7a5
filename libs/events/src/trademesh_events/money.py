"""Decimal amounts for events and APIs: never a float, NaN or infinity, and on the wire always a
plain decimal string (`"50000"`, never `"5E+4"`). The one place where amounts get their format
(decision 0115)."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, GetJsonSchemaHandler, PlainSerializer
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

DECIMAL_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"
"""What every amount looks like on the wire: digits, an optional fraction, never an exponent."""

NON_NEGATIVE_PATTERN = r"^[0-9]+(\.[0-9]+)?$"
POSITIVE_PATTERN = r"^(?=.*[1-9])[0-9]+(\.[0-9]+)?$"
"""The same without a sign, and with a non-zero digit: the schema keeps the types' bounds."""

MONEY_PLACES = 8
"""Cash, PnL, fees and equity in API responses are rounded (half even) to this many places: the
finest unit of the quote currencies the venues use (a satoshi; Binance books USDT to 8), and an
account carries no currency of its own that a coarser rule could be read from."""

_WIDE = Context(prec=100)  # room for any amount the models accept, so quantize never overflows


def plain(value: Decimal) -> str:
    """`value` as a plain decimal string: no exponent, no trailing fractional zeros, no `-0`.
    One value has one spelling: `5E+4`, `50000` and `50000.00` all give `"50000"`."""
    text = format(value, "f")  # not normalize(): it rounds to the context's 28 digits
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "0") else text


def to_places(value: Decimal, places: int) -> Decimal:
    """`value` rounded half even to `places` decimal places."""
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN, context=_WIDE)


def plain_money(value: Decimal) -> str:
    """An amount of money as an API returns it: rounded to MONEY_PLACES, then `plain`."""
    return plain(to_places(value, MONEY_PLACES))


def _no_float(value: Any) -> Any:
    """Refuse floats, from Python or from a JSON number with a fraction: by the time a float
    exists its value is already rounded (12345678.123456789 -> 12345678.12345679). Amounts
    travel as decimal strings (our encoder writes them so); integers are exact and accepted."""
    if isinstance(value, float):
        raise ValueError("must be a decimal string or an integer, not a float")
    return value


class _DecimalString:
    """The JSON Schema of an amount, in requests and responses alike: a string of the pattern.
    (Integers are still accepted on input, as before, but strings are what we document.)"""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string", "format": "decimal", "pattern": self.pattern}


_Exact = BeforeValidator(_no_float)
_Plain = PlainSerializer(plain, return_type=str, when_used="json")
_Money = PlainSerializer(plain_money, return_type=str, when_used="json")
_Signed = _DecimalString(DECIMAL_PATTERN)
_NonNegative = _DecimalString(NON_NEGATIVE_PATTERN)
_Positive = _DecimalString(POSITIVE_PATTERN)

# ---- events: exact (an event is a fact; rounding it would make its consumers disagree) -------

Price = Annotated[Decimal, Field(gt=0, allow_inf_nan=False), _Exact, _Plain, _Positive]
"""A strictly positive price."""

Quantity = Annotated[Decimal, Field(gt=0, allow_inf_nan=False), _Exact, _Plain, _Positive]
"""A strictly positive quantity."""

NonNegative = Annotated[Decimal, Field(ge=0, allow_inf_nan=False), _Exact, _Plain, _NonNegative]
"""Volumes and remaining quantities."""

Money = Annotated[Decimal, Field(allow_inf_nan=False), _Exact, _Plain, _Signed]
"""An amount of money, any sign (fees, PnL)."""

# ---- API models -------------------------------------------------------------------------------

Amount = Annotated[Decimal, Field(allow_inf_nan=False), _Exact, _Plain, _Signed]
"""A price or quantity in a request or response: exact, as given (its instrument's precision,
which orders are checked against), written plain."""

MoneyAmount = Annotated[Decimal, Field(allow_inf_nan=False), _Exact, _Money, _Signed]
"""Cash, PnL, fees or equity in a response: rounded to MONEY_PLACES, written plain."""
