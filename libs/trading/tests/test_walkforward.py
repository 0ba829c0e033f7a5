"""Walk-forward windows (rolling and anchored folds tiling the series' end) and the divergence rule."""

from __future__ import annotations

import itertools
import math

import pytest
from pydantic import ValidationError
from trademesh_trading.optimize.walkforward import (
    MIN_WINDOW_BARS,
    Fold,
    WalkForward,
    WindowsTooShort,
    divergence,
)

pytestmark = pytest.mark.unit


def test_one_fold_is_a_hold_out_split_of_three_quarters_and_a_quarter() -> None:
    assert WalkForward().windows(1000) == [Fold(1, range(0, 750), range(750, 1000))]


def test_rolling_folds_slide_an_in_sample_window_of_constant_length() -> None:
    folds = WalkForward(folds=3, mode="rolling", oos_fraction=0.25).windows(1000)
    # out-of-sample windows of floor(1000 / (3 + 3)) = 166 bars tile the end
    assert [f.out_of_sample for f in folds] == [range(502, 668), range(668, 834), range(834, 1000)]
    assert [f.in_sample for f in folds] == [range(0, 502), range(166, 668), range(332, 834)]
    assert [f.number for f in folds] == [1, 2, 3]


def test_anchored_folds_grow_the_in_sample_window_from_the_first_bar() -> None:
    folds = WalkForward(folds=3, mode="anchored", oos_fraction=0.25).windows(1000)
    assert [f.out_of_sample for f in folds] == [range(502, 668), range(668, 834), range(834, 1000)]
    assert [f.in_sample for f in folds] == [range(0, 502), range(0, 668), range(0, 834)]


@pytest.mark.parametrize("mode", ["rolling", "anchored"])
@pytest.mark.parametrize(
    ("count", "folds", "share"), [(2148, 4, 0.2), (997, 5, 0.5), (300, 2, 0.1)]
)
def test_every_fold_trains_before_it_validates_and_the_validations_never_overlap(
    mode: str, count: int, folds: int, share: float
) -> None:
    windows = WalkForward(folds=folds, mode=mode, oos_fraction=share).windows(count)  # type: ignore[arg-type]
    assert len(windows) == folds
    assert windows[-1].out_of_sample.stop == count
    for fold in windows:
        assert fold.in_sample.stop == fold.out_of_sample.start  # no gap, no look-ahead
        assert fold.in_sample.start >= 0
        assert len(fold.out_of_sample) >= MIN_WINDOW_BARS
    for earlier, later in itertools.pairwise(windows):
        assert earlier.out_of_sample.stop == later.out_of_sample.start
        assert len(earlier.out_of_sample) == len(later.out_of_sample)


def test_a_series_too_short_for_the_folds_is_refused_with_the_reason() -> None:
    with pytest.raises(WindowsTooShort, match="each needs at least 20: use fewer folds"):
        WalkForward(folds=10).windows(250)  # out-of-sample windows of 19 bars: too few
    assert len(WalkForward(folds=10).windows(300)) == 10  # 23 out of sample, 70 in: enough


@pytest.mark.parametrize(
    "bad", [{"folds": 0}, {"folds": 21}, {"oos_fraction": 0.6}, {"mode": "expanding"}, {"x": 1}]
)
def test_bad_walk_forward_settings_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        WalkForward.model_validate(bad)


@pytest.mark.parametrize(
    ("in_sample", "out_of_sample"), [(1.2, 0.6), (1.2, 1.5), (0.4, 0.21), (2.0, 2.0)]
)
def test_out_of_sample_sharpe_of_at_least_half_the_in_sample_one_bears_it_out(
    in_sample: float, out_of_sample: float
) -> None:
    assert divergence(in_sample, out_of_sample) is None


@pytest.mark.parametrize(
    ("in_sample", "out_of_sample", "reason"),
    [
        (1.2, 0.59, "below 50% of in-sample 1.20"),
        (1.2, 0.0, "below 50% of in-sample 1.20"),
        (1.2, -0.3, "opposite sign"),
        (0.0, 0.8, "in-sample Sharpe 0.00 is not positive"),
        (-0.5, -0.9, "in-sample Sharpe -0.50 is not positive"),
        (math.inf, 1.0, "not finite"),
        (1.0, math.nan, "not finite"),
    ],
)
def test_a_divergence_says_why(in_sample: float, out_of_sample: float, reason: str) -> None:
    warning = divergence(in_sample, out_of_sample)
    assert warning is not None and reason in warning
