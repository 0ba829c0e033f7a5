"""Decimal amounts: exact through JSON, never float, NaN, infinity, and signed as the types say."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError
from trademesh_events import get_topic, marketdata, orders, topic_for
from trademesh_events.base import Event
from trademesh_events.money import (
    DECIMAL_PATTERN,
    Amount,
    Money,
    MoneyAmount,
    NonNegative,
    Price,
    Quantity,
    plain,
)
from trademesh_events.topics import MD_TICKS

pytestmark = pytest.mark.unit

EXACT = ["0.1", "0.2", "0.3", "12345678.123456789", "0.000000000000000001", "1E+2", "100.10"]
NOT_FINITE = ["NaN", "-NaN", "sNaN", "Infinity", "-Infinity", "inf"]


@pytest.mark.parametrize("text", EXACT)
def test_price_and_quantity_survive_json_exactly(
    text: str, make_sample: Callable[..., Event]
) -> None:
    tick = make_sample(marketdata.Tick, price=Decimal(text), size=text)
    spec = get_topic(MD_TICKS)
    data = spec.encode(tick)
    doc = json.loads(data)
    # on the wire: plain decimal strings, never JSON numbers (which a consumer would read as
    # floats) and never an exponent
    assert doc["price"] == plain(Decimal(text))
    assert doc["size"] == plain(Decimal(text))
    assert re.fullmatch(DECIMAL_PATTERN, doc["price"])
    decoded = spec.decode(data)
    assert type(decoded.price) is Decimal
    assert type(decoded.size) is Decimal
    # exact: the same value, not rounded
    assert decoded.price == Decimal(text)
    assert decoded.size == Decimal(text)


def test_decimal_sum_is_exact_after_round_trip(make_sample: Callable[..., Event]) -> None:
    spec = get_topic(MD_TICKS)
    a = spec.decode(spec.encode(make_sample(marketdata.Tick, price=Decimal("0.1"))))
    b = spec.decode(spec.encode(make_sample(marketdata.Tick, price=Decimal("0.2"))))
    assert a.price + b.price == Decimal("0.3")


def test_fill_amounts_survive_exactly(make_sample: Callable[..., Event]) -> None:
    fill = make_sample(
        orders.OrderFilled,
        last_qty=Decimal("12345678.123456789"),
        cum_qty=Decimal("12345678.123456789"),
        last_price=Decimal("0.1"),
        leaves_qty=Decimal("0.000"),
        fee=Decimal("-0.000000001"),
    )
    spec = topic_for(fill)
    decoded = spec.decode(spec.encode(fill))
    for field in ("last_qty", "cum_qty", "last_price", "leaves_qty", "fee"):
        value = getattr(decoded, field)
        assert type(value) is Decimal, field
        assert value == getattr(fill, field), field


@pytest.mark.parametrize("amount_type", [Price, Quantity, NonNegative, Money])
@pytest.mark.parametrize("value", NOT_FINITE)
def test_nan_and_infinity_refused(amount_type: Any, value: str) -> None:
    adapter = TypeAdapter(amount_type)
    with pytest.raises(ValidationError):
        adapter.validate_python(value)
    with pytest.raises(ValidationError):
        adapter.validate_python(Decimal(value.replace("inf", "Infinity")))
    with pytest.raises(ValidationError):
        adapter.validate_json(json.dumps(value))


@pytest.mark.parametrize("amount_type", [Price, Quantity, NonNegative, Money])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_float_nan_and_infinity_refused(amount_type: Any, value: float) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(amount_type).validate_python(value)


def test_json_overflowing_number_refused() -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(Price).validate_json(b"1e400")


@pytest.mark.parametrize("amount_type", [Price, Quantity])
@pytest.mark.parametrize("value", ["0", "0.000", "-0", "-0.1", "-12345678.123456789"])
def test_strictly_positive_refuses_zero_and_negative(amount_type: Any, value: str) -> None:
    with pytest.raises(ValidationError, match="greater than 0"):
        TypeAdapter(amount_type).validate_python(Decimal(value))


@pytest.mark.parametrize("value", ["-0.1", "-1", "-0.000000001"])
def test_non_negative_refuses_negative(value: str) -> None:
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        TypeAdapter(NonNegative).validate_python(Decimal(value))


@pytest.mark.parametrize("value", ["0", "0.000", "-0"])
def test_non_negative_accepts_zero(value: str) -> None:
    assert TypeAdapter(NonNegative).validate_python(value) == 0


@pytest.mark.parametrize("value", ["-12.5", "0", "3.14159"])
def test_money_accepts_any_sign(value: str) -> None:
    assert TypeAdapter(Money).validate_python(value) == Decimal(value)


@pytest.mark.parametrize("amount_type", [Price, Quantity, NonNegative, Money])
def test_float_input_is_refused_but_integers_are_exact(amount_type: Any) -> None:
    with pytest.raises(ValidationError, match="not a float"):
        TypeAdapter(amount_type).validate_python(0.1)
    value = TypeAdapter(amount_type).validate_python(7)
    assert type(value) is Decimal
    assert value == Decimal(7)


@pytest.mark.parametrize("amount_type", [Price, Quantity, NonNegative, Money])
@pytest.mark.parametrize("value", [True, "abc", "", None, [1]])
def test_non_numbers_refused(amount_type: Any, value: object) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(amount_type).validate_python(value)


@pytest.mark.parametrize(
    ("cls", "field"),
    [
        (marketdata.Tick, "price"),
        (marketdata.Tick, "size"),
        (marketdata.Bar, "volume"),
        (orders.SubmitOrder, "quantity"),
        (orders.SubmitOrder, "limit_price"),
        (orders.OrderFilled, "last_price"),
        (orders.OrderFilled, "fee"),
    ],
)
def test_events_refuse_nan_amounts(
    cls: type[Event], field: str, sample_kwargs: Callable[..., dict[str, Any]]
) -> None:
    with pytest.raises(ValidationError, match=field):
        cls(**sample_kwargs(cls, **{field: Decimal("NaN")}))


def test_decode_refuses_negative_price_on_the_wire(make_sample: Callable[..., Event]) -> None:
    spec = get_topic(MD_TICKS)
    doc = json.loads(spec.encode(make_sample(marketdata.Tick)))
    doc["price"] = "-1"
    with pytest.raises(ValidationError, match="price"):
        spec.decode(json.dumps(doc).encode())


def test_json_number_is_not_silently_rounded(make_sample: Callable[..., Event]) -> None:
    spec = get_topic(MD_TICKS)
    data = spec.encode(make_sample(marketdata.Tick, price=Decimal("7")))
    raw = data.replace(b'"price":"7"', b'"price":12345678.123456789')
    assert raw != data
    with pytest.raises(ValidationError, match="not a float"):
        spec.decode(raw)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("5E+4", "50000"),
        ("50000.00", "50000"),
        ("1E-9", "0.000000001"),
        ("-0", "0"),
        ("0E-8", "0"),
        ("100.10", "100.1"),
        ("-12.5", "-12.5"),
        ("-0.000", "0"),
        ("12345678901234567890.123456789012", "12345678901234567890.123456789012"),
    ],
)
def test_amounts_serialise_plain_without_exponent(value: str, text: str) -> None:
    for amount_type in (Money, Amount):
        assert TypeAdapter(amount_type).dump_json(Decimal(value)) == f'"{text}"'.encode()
    assert TypeAdapter(Amount).dump_python(Decimal(value)) == Decimal(value)  # python: untouched


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("5E+4", "50000"),
        ("5.5366191864013671875", "5.53661919"),
        ("0.000000005", "0"),  # half even: to the even neighbour, 0
        ("0.000000015", "0.00000002"),
        ("-1.999999999", "-2"),
        ("10000.0", "10000"),
        ("10000.00", "10000"),
        ("123456789012345678901234.123456789", "123456789012345678901234.12345679"),
    ],
)
def test_money_in_responses_is_rounded_to_its_places(value: str, text: str) -> None:
    assert TypeAdapter(MoneyAmount).dump_json(Decimal(value)) == f'"{text}"'.encode()


@pytest.mark.parametrize("amount_type", [Price, Quantity, NonNegative, Money, Amount, MoneyAmount])
def test_amount_schema_is_a_decimal_string_without_exponent(amount_type: Any) -> None:
    for mode in ("validation", "serialization"):
        schema = TypeAdapter(amount_type).json_schema(mode=mode)
        assert schema["type"] == "string"
        pattern = re.compile(schema["pattern"])
        assert pattern.search("50000") and pattern.search("0.5")
        for exponent in ("5E+4", "5e4", "1E-9", "-5E+4", "1.5e2"):
            assert not pattern.search(exponent), (schema, exponent)
    assert re.search(DECIMAL_PATTERN, "-0.5")
