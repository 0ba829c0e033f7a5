"""Untrusted numbers and times from exchanges: read exactly, and every malformed value refused
with a reason that names it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import pytest
from trademesh_exchange.parsing import (
    EPOCH,
    BadValue,
    decimal_or_none,
    millis_of,
    parse_decimal,
    parse_millis,
    time_of_millis,
    time_or_none,
)

pytestmark = pytest.mark.unit

T_MS = 1717243200000  # 2024-06-01 12:00:00 UTC
T = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.1, D("0.1")),  # as the float prints, not its binary value
        (67504.0, D("67504.0")),
        (1e-05, D("0.00001")),
        (70000, D(70000)),
        (D("0.00219821"), D("0.00219821")),
        ("1000.50000000", D("1000.5")),
        ("  7e4 ", D(70000)),
    ],
)
def test_numbers_are_read_exactly_as_written(value: Any, expected: D) -> None:
    got = parse_decimal(value, "price")
    assert got == expected and isinstance(got, D)


@pytest.mark.parametrize(
    ("value", "checks", "message"),
    [
        (None, {}, "price is missing"),
        (True, {}, "price is not a number: True"),
        ([1], {}, r"price is not a number: \[1\]"),
        ({"p": 1}, {}, "price is not a number"),
        ("lots", {}, "price is not a number: 'lots'"),
        ("", {}, "price is not a number: ''"),
        ("NaN", {}, "price is 'NaN'"),
        (float("nan"), {}, "price is nan"),
        (float("inf"), {}, "price is inf"),
        ("-Infinity", {"signed": True}, "price is '-Infinity'"),
        (D("sNaN"), {}, "price is Decimal"),
        (-67504.0, {}, "price is negative: -67504.0"),
        ("-0.1", {"positive": True}, "price is negative"),
        (0, {"positive": True}, "price must be positive, not 0"),
        (0.0, {"positive": True}, "price must be positive, not 0.0"),
    ],
)
def test_malformed_numbers_are_refused_with_their_reason(
    value: Any, checks: dict[str, bool], message: str
) -> None:
    with pytest.raises(BadValue, match=message):
        parse_decimal(value, "price", **checks)


def test_an_int_longer_than_python_turns_into_text_is_read_too() -> None:
    assert parse_decimal(10**5000, "price") == D(10) ** 5000


def test_signs_are_allowed_only_where_asked_for() -> None:
    assert parse_decimal(0, "volume") == 0  # zero is a number unless it must be positive
    assert parse_decimal(-0.01, "fee", signed=True) == D("-0.01")  # a rebate
    with pytest.raises(BadValue, match="negative"):
        parse_decimal(-0.01, "fee")


def test_a_refusal_quotes_at_most_a_bounded_part_of_the_value() -> None:
    with pytest.raises(BadValue) as refused:
        parse_decimal("x" * 100_000, "price")
    assert len(str(refused.value)) <= 1000


@pytest.mark.parametrize(
    ("value", "checks", "expected"),
    [
        (5.0, {"positive": True}, D(5)),
        (0, {"positive": True}, None),  # Binance's maxPrice of 0: no maximum
        (-2, {}, None),
        (-2, {"signed": True}, D(-2)),
        (None, {}, None),
        ("NaN", {}, None),
        (True, {}, None),
        ("abc", {}, None),
    ],
)
def test_an_optional_number_is_none_where_it_would_be_refused(
    value: Any, checks: dict[str, bool], expected: D | None
) -> None:
    assert decimal_or_none(value, **checks) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(T_MS, T_MS), (float(T_MS), T_MS), (str(T_MS), T_MS), (" 0 ", 0)],
)
def test_times_are_whole_epoch_milliseconds(value: Any, expected: int) -> None:
    assert parse_millis(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "open time is missing"),
        (True, "open time does not parse: True"),
        (1.5, "open time does not parse: 1.5"),
        (float("nan"), "open time does not parse: nan"),
        (float("inf"), "open time does not parse: inf"),
        ("yesterday", "open time does not parse: 'yesterday'"),
        ("1.5", "open time does not parse"),
        (D(T_MS), "open time does not parse"),
        ([T_MS], "open time does not parse"),
        (-1, "open time is negative: -1"),
        (10**20, "open time is out of range"),
    ],
)
def test_malformed_times_are_refused_with_their_reason(value: Any, message: str) -> None:
    with pytest.raises(BadValue, match=message):
        parse_millis(value, "open time")


def test_times_convert_both_ways_without_float_rounding() -> None:
    assert time_of_millis(T_MS) == T
    assert time_of_millis(T_MS + 1) == T + timedelta(milliseconds=1)
    assert millis_of(T + timedelta(milliseconds=999)) == T_MS + 999
    assert time_of_millis(0) == EPOCH
    last = 253402300799999  # 9999-12-31 23:59:59.999, datetime's last millisecond
    assert millis_of(time_of_millis(last)) == last


@pytest.mark.parametrize("value", [None, "yesterday", -1, 1.5, True, 10**20])
def test_an_optional_time_is_none_when_it_does_not_parse(value: Any) -> None:
    assert time_or_none(value) is None
    assert time_or_none(T_MS) == T
