"""Untrusted numbers and times from exchanges: read exactly and checked, or refused with a reason.

An exchange's answer is untrusted input, and ccxt passes it on as floats, ints, text or None. A
number becomes a Decimal as it is written: a float by its shortest repr (`Decimal(str(x))`, the
digits ccxt parsed from the exchange's text, not the float's binary value), an int or a Decimal
as it is, text with its surrounding blanks stripped. A bool is not a number. What is missing,
is no number, is NaN or infinite, or has a sign it may not have is refused with `BadValue`.

A time is whole epoch milliseconds, as ccxt gives them (an int, a whole float or digits), never
negative, and within datetime's range.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_TEXT = 1000  # how much of an untrusted value a reason quotes, at most


class BadValue(ValueError):
    """A number, time or record from an exchange that cannot be used; the text says which and
    why."""


def parse_decimal(
    value: object, name: str, *, positive: bool = False, signed: bool = False
) -> Decimal:
    """An exchange number as an exact Decimal, checked: finite, not negative (unless `signed`),
    and not zero when `positive`. `name` says what it is in the reason of a refusal."""
    if value is None:
        raise BadValue(f"{name} is missing")
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise BadValue(f"{name} is not a number: {value!r}"[:MAX_TEXT])
    try:
        # An int as it is: its text may be longer than Python turns into a str.
        number = Decimal(value) if isinstance(value, int) else Decimal(str(value).strip())
    except InvalidOperation:
        raise BadValue(f"{name} is not a number: {value!r}"[:MAX_TEXT]) from None
    if not number.is_finite():
        raise BadValue(f"{name} is {value!r}"[:MAX_TEXT])
    if number < 0 and not signed:
        raise BadValue(f"{name} is negative: {value!r}")
    if positive and not number > 0:
        raise BadValue(f"{name} must be positive, not {value!r}")
    return number


def decimal_or_none(
    value: object, *, positive: bool = False, signed: bool = False
) -> Decimal | None:
    """The number as `parse_decimal` reads it, or None where it would refuse it (for a value
    whose absence is no error: no rule rather than a wrong one)."""
    try:
        return parse_decimal(value, "value", positive=positive, signed=signed)
    except BadValue:
        return None


def parse_millis(value: object, name: str = "timestamp") -> int:
    """An exchange time in epoch milliseconds, checked: a whole number (an int, a whole float or
    digits), not negative, and within datetime's range."""
    if value is None:
        raise BadValue(f"{name} is missing")
    if isinstance(value, bool):
        raise BadValue(f"{name} does not parse: {value!r}")
    if isinstance(value, float):
        if not value.is_integer():  # NaN and the infinities too
            raise BadValue(f"{name} does not parse: {value!r}")
        value = int(value)
    elif isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise BadValue(f"{name} does not parse: {value!r}"[:MAX_TEXT]) from None
    if not isinstance(value, int):
        raise BadValue(f"{name} does not parse: {value!r}"[:MAX_TEXT])
    if value < 0:
        raise BadValue(f"{name} is negative: {value}")
    try:
        EPOCH + timedelta(milliseconds=value)
    except OverflowError:
        raise BadValue(f"{name} is out of range: {value}") from None
    return value


def time_of_millis(ms: int) -> datetime:
    """Epoch milliseconds as a UTC datetime. Integer arithmetic, not fromtimestamp(ms / 1000):
    no float rounding of the milliseconds."""
    return EPOCH + timedelta(milliseconds=ms)


def time_or_none(value: object) -> datetime | None:
    """An exchange time as `parse_millis` reads it, as a UTC datetime; None when it is absent or
    does not parse (for a time the caller can do without)."""
    try:
        return time_of_millis(parse_millis(value))
    except BadValue:
        return None


def millis_of(moment: datetime) -> int:
    """A timezone-aware datetime as epoch milliseconds (what ccxt takes for `since`)."""
    return (moment - EPOCH) // timedelta(milliseconds=1)
