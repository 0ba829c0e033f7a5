"""The search space from a strategy's JSON Schema: bounds, user ranges within them, fixed
parameters left out, booleans only when named, and clear refusals."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from trademesh_trading.optimize.space import (
    Choices,
    FloatRange,
    IntRange,
    SearchRange,
    SpaceError,
    grid_size,
    search_space,
)
from trademesh_trading.registry import StrategyRegistry

pytestmark = pytest.mark.unit

REGISTRY = StrategyRegistry(load_entry_points=False)


def test_by_default_the_bounded_numbers_are_searched_over_the_schemas_bounds() -> None:
    assert search_space(REGISTRY.schema("sma_cross")) == {
        "fast": IntRange(1, 1000),
        "slow": IntRange(2, 5000),
    }  # `short` (a boolean) changes what the strategy is: searched only when named


def test_exclusive_bounds_move_inwards() -> None:
    space = search_space(REGISTRY.schema("rsi_cross"))
    oversold = space["oversold"]
    assert isinstance(oversold, FloatRange)
    assert 0 < oversold.low < 1e-300 and 99.99999 < oversold.high < 100
    assert space["period"] == IntRange(2, 500)


def test_ranges_narrow_the_space_and_fixed_parameters_leave_it() -> None:
    space = search_space(
        REGISTRY.schema("sma_cross"),
        fixed={"slow": 50},
        ranges={"fast": SearchRange(low=5, high=48, step=5), "short": SearchRange()},
    )
    assert space == {"fast": IntRange(5, 45, 5), "short": Choices((False, True))}
    assert space["fast"].values() == [5, 10, 15, 20, 25, 30, 35, 40, 45]
    assert grid_size(space) == 18


def test_number_ranges_take_a_step_or_a_log_scale() -> None:
    schema = REGISTRY.schema("bollinger_reversion")
    stepped = search_space(schema, ranges={"k": SearchRange(low=1.0, high=3.1, step=0.5)})["k"]
    assert stepped == FloatRange(1.0, 3.0, 0.5)
    assert stepped.values() == [1.0, 1.5, 2.0, 2.5, 3.0]
    logged = search_space(schema, ranges={"k": SearchRange(low=0.5, high=4, log=True)})["k"]
    assert logged == FloatRange(0.5, 4.0, None, True)
    with pytest.raises(SpaceError, match="a grid needs a step"):
        grid_size({"k": logged})


def test_a_grid_too_large_to_list_is_refused_before_it_is_made() -> None:
    fine = FloatRange(0.0, 1e9, 1e-3)  # 10^12 points
    with pytest.raises(SpaceError, match="at most 100000: use larger steps"):
        grid_size({"k": fine, "period": IntRange(2, 1000)})


@pytest.mark.parametrize(
    ("fixed", "ranges", "message"),
    [
        ({}, {"fats": SearchRange(low=1, high=5)}, "unknown parameter(s) fats"),
        ({"fast": 5}, {"fast": SearchRange(low=1, high=5)}, "fast: fixed in params and searched"),
        ({}, {"fast": SearchRange(low=0, high=5)}, "leaves the schema's bounds 1..1000"),
        ({}, {"slow": SearchRange(low=10, high=6000)}, "leaves the schema's bounds 2..5000"),
        ({}, {"fast": SearchRange(low=1.5, high=5)}, "needs whole numbers, not 1.5"),
        ({}, {"short": SearchRange(low=0, high=1)}, "only integer and number parameters"),
        ({}, {"short": SearchRange(choices=[1, 0])}, "a boolean's choices are true and false"),
        ({"fast": 5, "slow": 9}, {}, "nothing to search"),
    ],
)
def test_a_space_that_cannot_be_built_is_refused_with_the_parameter(
    fixed: dict[str, object], ranges: dict[str, SearchRange], message: str
) -> None:
    with pytest.raises(SpaceError) as caught:
        search_space(REGISTRY.schema("sma_cross"), fixed, ranges)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    "bad",
    [
        {"low": 1},
        {"low": 5, "high": 1},
        {"low": 1, "high": 5, "choices": [2]},
        {"choices": []},
        {"low": 0, "high": 5, "log": True},
        {"low": 1, "high": 5, "step": 1, "log": True},
        {"low": 1, "high": 5, "step": 0},
        {"low": 1, "high": 5, "stride": 1},
        {"low": 1, "high": float("inf")},
        {"choices": [float("nan")]},
    ],
)
def test_a_malformed_range_is_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        SearchRange.model_validate(bad)


def test_integers_stay_integers_through_json() -> None:
    parsed = SearchRange.model_validate_json('{"low": 5, "high": 50, "step": 5}')
    assert (type(parsed.low), type(parsed.high), type(parsed.step)) == (int, int, int)
