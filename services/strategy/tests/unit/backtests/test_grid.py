"""A grid search's pure logic, without a database: its combinations over the base parameters,
the limit checked before any is made, and the ranking of its results (direction per statistic,
non-finite values last, ties in the grid's order, unfinished backtests left out)."""

from __future__ import annotations

import math
from typing import Any, get_args
from uuid import uuid4

import pytest

from trademesh_strategy.backtests.grid import (
    ASCENDING,
    GridEntry,
    GridTooLarge,
    expand_grid,
    grid_size,
    rank,
    stat_value,
)
from trademesh_strategy.backtests.jobs import BacktestStatus
from trademesh_strategy.backtests.requests import RankBy

pytestmark = pytest.mark.unit


def entry(
    stats: dict[str, Any] | None, status: BacktestStatus = BacktestStatus.SUCCEEDED
) -> GridEntry:
    return GridEntry(uuid4(), {"n": len(str(stats))}, status, stats, None)


# ---- expansion --------------------------------------------------------------------------------


def test_a_grid_is_the_cartesian_product_over_the_base_params() -> None:
    combos = expand_grid(
        {"fast": 1, "slow": 50, "short": True},
        {"fast": [5, 10], "slow": [20, 30, 40]},
        limit=6,
    )
    assert combos == [
        {"fast": 5, "slow": 20, "short": True},
        {"fast": 5, "slow": 30, "short": True},
        {"fast": 5, "slow": 40, "short": True},
        {"fast": 10, "slow": 20, "short": True},
        {"fast": 10, "slow": 30, "short": True},
        {"fast": 10, "slow": 40, "short": True},
    ]


def test_the_first_grid_parameter_varies_slowest_whatever_its_name() -> None:
    combos = expand_grid({}, {"z": [1, 2], "a": ["x", "y"]}, limit=10)
    assert [(c["z"], c["a"]) for c in combos] == [(1, "x"), (1, "y"), (2, "x"), (2, "y")]


def test_one_parameter_of_one_value_is_the_base_with_that_value() -> None:
    base = {"fast": 3, "slow": 8}
    assert expand_grid(base, {"fast": [4]}, limit=1) == [{"fast": 4, "slow": 8}]
    assert base == {"fast": 3, "slow": 8}  # the base is not changed


def test_values_of_any_json_type_are_kept_as_given() -> None:
    combos = expand_grid({"k": 0}, {"k": [1.5, None, "wide", False, [1, 2]]}, limit=5)
    assert [c["k"] for c in combos] == [1.5, None, "wide", False, [1, 2]]


# ---- limits -------------------------------------------------------------------------------------


def test_a_grid_larger_than_the_limit_is_refused_before_it_is_made() -> None:
    huge = {f"p{n}": list(range(100)) for n in range(12)}  # 10**24 combinations
    assert grid_size(huge) == 100**12
    with pytest.raises(GridTooLarge) as raised:
        expand_grid({}, huge, limit=500)
    assert (raised.value.size, raised.value.limit) == (100**12, 500)
    with pytest.raises(GridTooLarge):
        expand_grid({}, {"a": [1, 2, 3], "b": [1, 2]}, limit=5)
    assert len(expand_grid({}, {"a": [1, 2, 3], "b": [1, 2]}, limit=6)) == 6


def test_a_grid_at_the_limit_is_allowed_and_one_over_it_says_both_numbers() -> None:
    grid = {"a": [1, 2, 3, 4], "b": [1, 2]}
    assert grid_size(grid) == 8
    assert len(expand_grid({}, grid, limit=8)) == 8
    with pytest.raises(GridTooLarge, match=r"^the grid has 8 combinations; at most 7 are allowed$"):
        expand_grid({}, grid, limit=7)


def test_a_grid_too_large_is_a_value_error() -> None:
    # The API turns it into a 422 problem; callers that only know ValueError still catch it.
    assert issubclass(GridTooLarge, ValueError)


# ---- ranking ------------------------------------------------------------------------------------


def test_ranking_is_descending_with_non_finite_values_last() -> None:
    good, better, bad = entry({"sharpe": 1.0}), entry({"sharpe": 2.5}), entry({"sharpe": -0.3})
    nan, inf, text = (
        entry({"sharpe": math.nan}),
        entry({"sharpe": math.inf}),
        entry({"sharpe": "NaN"}),
    )
    queued = entry(None, BacktestStatus.QUEUED)
    failed = entry(None, BacktestStatus.FAILED)
    ranked = rank([nan, good, queued, inf, bad, failed, better, text], "sharpe")
    assert ranked[:3] == [better, good, bad]
    assert ranked[3:] == [nan, inf, text]  # unranked ones come last, in the grid's order


def test_max_drawdown_ranks_ascending() -> None:
    deep, shallow, none = (
        entry({"max_drawdown": 0.4}),
        entry({"max_drawdown": 0.1}),
        entry({"max_drawdown": 0.0}),
    )
    broken = entry({"max_drawdown": "Infinity"})
    assert rank([deep, broken, shallow, none], "max_drawdown") == [none, shallow, deep, broken]


@pytest.mark.parametrize("statistic", get_args(RankBy))
def test_every_statistic_but_max_drawdown_ranks_the_larger_first(statistic: RankBy) -> None:
    small, large = entry({statistic: 0.1}), entry({statistic: 0.9})
    best_first = [small, large] if statistic == "max_drawdown" else [large, small]
    assert rank([small, large], statistic) == best_first
    assert (statistic in ASCENDING) is (statistic == "max_drawdown")


def test_an_infinite_profit_factor_ranks_last_and_ties_keep_the_grid_order() -> None:
    first, second = entry({"profit_factor": 1.5}), entry({"profit_factor": 1.5})
    flawless = entry({"profit_factor": "Infinity"})
    assert rank([flawless, first, second], "profit_factor") == [first, second, flawless]


def test_a_missing_statistic_ranks_last_and_negative_infinity_too() -> None:
    low, without = entry({"sortino": -5.0}), entry({"sharpe": 1.0})
    falling = entry({"sortino": "-Infinity"})
    assert rank([without, falling, low], "sortino") == [low, without, falling]


def test_only_succeeded_backtests_with_statistics_are_ranked() -> None:
    done = entry({"sharpe": 0.5})
    running = entry({"sharpe": 9.0}, BacktestStatus.RUNNING)  # never ranked before it is done
    failed = entry({"sharpe": 9.0}, BacktestStatus.FAILED)
    empty = entry(None)
    entries = [running, failed, empty, done]
    assert rank(entries, "sharpe") == [done]
    assert entries == [running, failed, empty, done]  # the grid's list is left as it was
    assert rank([], "sharpe") == []


def test_stored_statistics_read_back_as_floats() -> None:
    assert stat_value({"x": "Infinity"}, "x") == math.inf
    assert stat_value({"x": "-Infinity"}, "x") == -math.inf
    assert math.isnan(stat_value({"x": "NaN"}, "x"))
    assert math.isnan(stat_value({}, "x"))
    assert math.isnan(stat_value({"x": None}, "x"))
    assert math.isnan(stat_value({"x": "lots"}, "x"))
    assert stat_value({"x": 0.25}, "x") == 0.25
    assert stat_value({"x": 3}, "x") == 3.0
