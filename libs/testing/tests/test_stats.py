"""The benchmarks' percentiles."""

from __future__ import annotations

import math

import pytest
from trademesh_testing.stats import ms_summary, pct, verdicts

pytestmark = pytest.mark.unit


def test_percentiles_interpolate_between_the_values() -> None:
    values = [float(v) for v in range(1, 101)]
    assert pct(values, 50, 99) == pytest.approx([50.5, 99.01])


def test_one_value_is_every_percentile_and_none_is_nan() -> None:
    assert pct([7.0], 50, 99) == [7.0, 7.0]
    assert all(math.isnan(v) for v in pct([], 50, 99))


def test_the_summary_names_the_percentiles_the_max_and_the_count() -> None:
    line = ms_summary([1.0, 2.0, 3.0])
    assert line.split() == ["p50", "2.00", "p95", "2.90", "p99", "2.98", "max", "3.00", "(n=3)"]


def test_a_target_is_met_or_missed_in_its_own_sense() -> None:
    targets = {"p99_ms": (100.0, "<="), "rps": (1500.0, ">=")}
    assert verdicts(targets, {"p99_ms": 23.5, "rps": 1346.0}) == [
        "p99_ms <= 100: met (23.5)",
        "rps >= 1500: MISSED (1.35e+03)",
    ]
