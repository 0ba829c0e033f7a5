"""Bar lengths: parsing, alignment, and which add up to which."""

from __future__ import annotations

from datetime import UTC, datetime

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
