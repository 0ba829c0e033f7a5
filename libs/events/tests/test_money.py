"""Decimal amounts: exact through JSON, never float, NaN, infinity, and signed as the types say."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError
from trademesh_events import get_topic, marketdata, orders, topic_for
from trademesh_events.base import Event
from trademesh_events.money import Money, NonNegative, Price, Quantity
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
    # on the wire: strings, never JSON numbers (which a consumer would read as floats)
    assert doc["price"] == str(Decimal(text))
    assert doc["size"] == str(Decimal(text))
    decoded = spec.decode(data)
    assert type(decoded.price) is Decimal
    assert type(decoded.size) is Decimal
    # exact: same digits and exponent, not only numerically equal
    assert decoded.price.as_tuple() == Decimal(text).as_tuple()
    assert decoded.size.as_tuple() == Decimal(text).as_tuple()


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
        assert str(value) == str(getattr(fill, field)), field


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
