"""Walk-forward validation: in-sample and out-of-sample windows over a series of bars, and the
rule that says when the out-of-sample result does not bear the in-sample one out.

The out-of-sample windows tile the end of the series, one per fold, oldest first, without
overlap: N bars, F folds and an out-of-sample share r of each fold's window give out-of-sample
windows of floor(N / ((1 - r) / r + F)) bars, and the first fold's in-sample window takes the
rest of the start. Each fold's in-sample window ends where its out-of-sample one begins:
`rolling` keeps it as long as the first fold's (it slides forward), `anchored` starts it at the
first bar (it grows). One fold is a plain hold-out split (75 % / 25 % by default).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

WalkForwardMode = Literal["rolling", "anchored"]

MIN_WINDOW_BARS = 20
"""The fewest bars of an in-sample or out-of-sample window: fewer make statistics of noise."""

DIVERGENCE_SHARE = 0.5
"""Out-of-sample Sharpe below this share of the in-sample Sharpe is a divergence."""


class WindowsTooShort(ValueError):
    """The series is too short for the folds asked for; the message says by how much."""


@dataclass(frozen=True)
class Fold:
    """One fold's windows, as index ranges into the series (stop excluded)."""

    number: int  # from 1
    in_sample: range
    out_of_sample: range


class WalkForward(BaseModel):
    """How the series is split into in-sample (searched) and out-of-sample (validated) windows."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    folds: int = Field(1, ge=1, le=20, description="Out-of-sample windows, tiling the series' end.")
    mode: WalkForwardMode = Field(
        "rolling",
        description="rolling: every in-sample window is as long as the first (it slides); "
        "anchored: every in-sample window starts at the first bar (it grows).",
    )
    oos_fraction: float = Field(
        0.25,
        ge=0.05,
        le=0.5,
        description="The out-of-sample share of a fold's window (in-sample + out-of-sample).",
    )

    def windows(self, count: int) -> list[Fold]:
        """The folds over a series of `count` bars; WindowsTooShort when a window would have
        fewer than MIN_WINDOW_BARS bars."""
        in_per_out = (1 - self.oos_fraction) / self.oos_fraction
        out = math.floor(count / (in_per_out + self.folds))
        first_in = count - self.folds * out
        if out < MIN_WINDOW_BARS or first_in < MIN_WINDOW_BARS:
            raise WindowsTooShort(
                f"{count} bars split into {self.folds} fold(s) at an out-of-sample share of "
                f"{self.oos_fraction:g} leave windows of {min(out, first_in)} bars; each needs "
                f"at least {MIN_WINDOW_BARS}: use fewer folds or more bars"
            )
        folds: list[Fold] = []
        for k in range(self.folds):
            start = first_in + k * out
            origin = 0 if self.mode == "anchored" else start - first_in
            folds.append(Fold(k + 1, range(origin, start), range(start, start + out)))
        return folds


def divergence(in_sample_sharpe: float, out_of_sample_sharpe: float) -> str | None:
    """Why the out-of-sample Sharpe does not bear the in-sample one out, or None when it does.

    Judged on Sharpe whatever the objective was (it has a natural zero and no scale): the
    in-sample Sharpe must be positive (else the search found no edge to validate) and the
    out-of-sample one at least DIVERGENCE_SHARE of it (which excludes the opposite sign)."""
    is_, oos = in_sample_sharpe, out_of_sample_sharpe
    if not (math.isfinite(is_) and math.isfinite(oos)):
        return f"a Sharpe ratio is not finite (in-sample {is_}, out-of-sample {oos})"
    if is_ <= 0:
        return f"in-sample Sharpe {is_:.2f} is not positive: the search found no edge to validate"
    if oos < 0:
        return f"out-of-sample Sharpe {oos:.2f} has the opposite sign of in-sample {is_:.2f}"
    if oos < DIVERGENCE_SHARE * is_:
        return (
            f"out-of-sample Sharpe {oos:.2f} is below {DIVERGENCE_SHARE:.0%} of in-sample "
            f"{is_:.2f}: the in-sample result is likely overfit"
        )
    return None
