"""A grid search, pure: its combinations (bounded before any is made) and its results ranked."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from trademesh_strategy.backtests.jobs import BacktestStatus
from trademesh_strategy.backtests.requests import RankBy

ASCENDING: frozenset[str] = frozenset({"max_drawdown"})
"""Statistics where smaller is better; the others rank descending."""


class GridTooLarge(ValueError):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"the grid has {size} combinations; at most {limit} are allowed")
        self.size = size
        self.limit = limit


def grid_size(grid: Mapping[str, Sequence[Any]]) -> int:
    """The number of combinations, without making them."""
    return math.prod(len(values) for values in grid.values())


def expand_grid(
    base: Mapping[str, Any], grid: Mapping[str, Sequence[Any]], *, limit: int
) -> list[dict[str, Any]]:
    """Every combination of the grid's values over `base`, the first parameter varying slowest.
    Raises GridTooLarge before making anything when there are more than `limit`."""
    size = grid_size(grid)
    if size > limit:
        raise GridTooLarge(size, limit)
    names = list(grid)
    return [
        {**base, **dict(zip(names, values, strict=True))}
        for values in itertools.product(*(grid[name] for name in names))
    ]


@dataclass(frozen=True)
class GridEntry:
    """One backtest of a grid, without its trades and equity curve."""

    backtest_id: UUID
    params: dict[str, Any]
    status: BacktestStatus
    stats: dict[str, Any] | None
    error: str | None


def stat_value(stats: Mapping[str, Any], name: str) -> float:
    """A statistic as a float; stored non-finite values are the strings NaN/Infinity."""
    value = stats.get(name)
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def rank(entries: Sequence[GridEntry], rank_by: RankBy) -> list[GridEntry]:
    """The SUCCEEDED entries, best first: `max_drawdown` ascending, the others descending. A
    NaN or infinite value cannot be compared with the others (a profit factor without a losing
    trade is infinite) and ranks last; ties keep the grid's order."""
    done = [e for e in entries if e.status is BacktestStatus.SUCCEEDED and e.stats is not None]
    sign = 1.0 if rank_by in ASCENDING else -1.0

    def key(entry: GridEntry) -> tuple[bool, float]:
        assert entry.stats is not None
        value = stat_value(entry.stats, rank_by)
        finite = math.isfinite(value)
        return (not finite, sign * value if finite else 0.0)

    return sorted(done, key=key)  # sorted is stable: ties stay in the grid's order
