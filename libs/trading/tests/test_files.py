"""Price files: the bar times a timeframe is inferred from."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from trademesh_trading.files import bar_times
from trademesh_trading.timeframes import Timeframe

pytestmark = pytest.mark.unit


def test_bar_times_skip_rows_without_a_readable_time(tmp_path: Path) -> None:
    path = tmp_path / "hourly.csv"
    path.write_text(
        "timestamp,open,high,low,close,volume\n"
        "2024-03-01T10:00:00Z,1,1,1,1,1\n"
        "not a time,1,1,1,1,1\n"
        "1709290800,1,1,1,1,1\n"  # epoch seconds: 11:00
        "2024-03-01T12:00:00,1,1,1,1,1\n"  # naive: UTC
    )
    times = bar_times(path)
    assert times == [datetime(2024, 3, 1, hour, tzinfo=UTC) for hour in (10, 11, 12)]
    assert Timeframe.of_spacing(times).label == "1h"
