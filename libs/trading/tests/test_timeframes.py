"""Bar lengths: parsing, alignment, which add up to which, and inferring one from bar times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from trademesh_trading.timeframes import Timeframe

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("label", "seconds"),
    [("1s", 1), ("1m", 60), ("5m", 300), ("1h", 3600), ("1d", 86400), ("1w", 604800)],
)
def test_timeframes_parse(label: str, seconds: int) -> None:
    assert Timeframe.parse(label).seconds == seconds


@pytest.mark.parametrize("label", ["", "0m", "m", "1y", "1.5h", "-1m", "01m"])
def test_bad_timeframes_are_refused(label: str) -> None:
    with pytest.raises(ValueError, match="timeframe"):
        Timeframe.parse(label)


def test_buckets_align_to_the_epoch_and_weeks_to_monday() -> None:
    ts = datetime(2026, 1, 8, 13, 47, 12, tzinfo=UTC)  # a Thursday
    assert Timeframe.parse("5m").floor(ts) == datetime(2026, 1, 8, 13, 45, tzinfo=UTC)
    assert Timeframe.parse("1d").floor(ts) == datetime(2026, 1, 8, tzinfo=UTC)
    assert Timeframe.parse("1w").floor(ts) == datetime(2026, 1, 5, tzinfo=UTC)


def test_which_timeframes_build_which() -> None:
    day, hour, week, seven_min = (Timeframe.parse(x) for x in ("1d", "1h", "1w", "7m"))
    assert day.built_from(hour) and week.built_from(day) and week.built_from(week)
    assert not day.built_from(week) and not hour.built_from(seven_min)


@pytest.mark.parametrize(
    ("seconds", "label"),
    [(1, "1s"), (90, "90s"), (300, "5m"), (5400, "90m"), (86400, "1d"), (604800, "1w"),
     (31 * 86400, "31d")],
)  # fmt: skip
def test_a_length_is_labelled_in_the_largest_unit_that_divides_it(seconds: int, label: str) -> None:
    timeframe = Timeframe.of_seconds(seconds)
    assert (timeframe.label, timeframe.seconds) == (label, seconds)
    assert Timeframe.parse(timeframe.label) == timeframe


def test_daily_bars_that_skip_weekends_are_inferred_as_one_day() -> None:
    monday = datetime(2024, 1, 1, tzinfo=UTC)
    days = [monday + timedelta(days=week * 7 + day) for week in range(4) for day in range(5)]
    shuffled = days[::-1] + days[:3]  # order and repeats do not matter
    assert Timeframe.of_spacing(shuffled).label == "1d"


def test_hourly_bars_with_a_missing_one_are_inferred_as_one_hour() -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    hours = [start + timedelta(hours=n) for n in range(48) if n != 20]
    assert Timeframe.of_spacing(hours).label == "1h"


@pytest.mark.parametrize("count", [0, 1])
def test_a_timeframe_is_not_inferred_from_fewer_than_two_times(count: int) -> None:
    times = [datetime(2024, 1, 1, tzinfo=UTC)] * count
    with pytest.raises(ValueError, match="fewer than two bar times"):
        Timeframe.of_spacing(times)
