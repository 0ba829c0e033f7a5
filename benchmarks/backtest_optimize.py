"""Optimiser speed: trials per second of trademesh's optimiser (Optuna ask-and-tell, trials in
worker processes) on SMA cross over the GOOG daily fixture, against the `backtesting` package's
`Backtest.optimize()` (PyPI) over the same grid in the same run.

Both search the same grid (fast 5..50 step 5, slow 20..200 step 10, fast < slow) on the same
bars (the in-sample window of trademesh's default hold-out split, the first 75 % of the series),
long-only (buy on a cross up, close on a cross down, next bar's open, no commission, 10 shares
per entry so that both sides' returns are equal trade for trade), maximising the total return;
each with as many worker processes as the machine has cores. trademesh uses Optuna's grid
sampler here so that both visit every point (its default, TPE, is run after with a third of the
budget, to show that it finds the same optimum). trademesh's time includes starting its process
pool and validating the best parameters out of sample. Rates count the grid's admissible points.
`backtesting` is AGPL: it is only run here, as a benchmark dependency.

Last line: BENCH backtest_optimize trials_per_s=... ratio=... same_best=true|false
(target: ratio >= 5, the same best parameters)
"""

from __future__ import annotations

import os
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

os.environ.setdefault("TQDM_DISABLE", "1")  # `backtesting` draws progress bars on stderr

import optuna
import pandas as pd
from backtesting import Backtest, Strategy
from backtesting.lib import crossover
from backtesting.test import SMA
from trademesh_trading.backtest import Sizing
from trademesh_trading.files import load_bars
from trademesh_trading.optimize.space import SearchRange, search_space
from trademesh_trading.optimize.study import OptimizationResult, Plan, run_study
from trademesh_trading.optimize.trials import BacktestSpec, SharedBars
from trademesh_trading.optimize.walkforward import WalkForward
from trademesh_trading.registry import StrategyRegistry

GOOG = (
    Path(__file__).resolve().parents[1]
    / "services/market-data/src/trademesh_market_data/data/GOOG.csv"
)
FAST = range(5, 51, 5)
SLOW = range(20, 201, 10)
SHARES = 10
WORKERS = os.cpu_count() or 1


def admissible() -> list[tuple[int, int]]:
    return [(f, s) for f in FAST for s in SLOW if f < s]


def ours(sampler: str, trials: int) -> tuple[float, OptimizationResult]:
    bars, refused = load_bars(GOOG, "file:GOOG", "1d", timedelta(days=1))
    assert not refused, refused
    registry = StrategyRegistry(load_entry_points=False)
    space = search_space(
        registry.schema("sma_cross"),
        {"short": False},
        {
            "fast": SearchRange(low=FAST.start, high=FAST[-1], step=FAST.step),
            "slow": SearchRange(low=SLOW.start, high=SLOW[-1], step=SLOW.step),
        },
    )
    plan = Plan(
        strategy=registry.get("sma_cross"),
        space=space,
        spec=BacktestSpec(
            "file:GOOG", "1d", "USD", sizing=Sizing(kind="quantity", value=Decimal(SHARES))
        ),
        fixed={"short": False},
        objective="total_return",
        trials=trials,
        sampler=sampler,  # type: ignore[arg-type]
        seed=7,
        walk_forward=WalkForward(folds=1),
    )
    started = time.perf_counter()  # as `trademesh backtest optimize` runs it
    shared = SharedBars(bars)
    initializer, initargs = shared.preload()
    with ProcessPoolExecutor(WORKERS, initializer=initializer, initargs=initargs) as pool:
        result = run_study(plan, shared, executor=pool, parallel=WORKERS)
    return time.perf_counter() - started, result


class SmaCrossTheirs(Strategy):  # at module level: their worker processes import it
    fast = 10
    slow = 20

    def init(self) -> None:
        self.sma1 = self.I(SMA, self.data.Close, self.fast)
        self.sma2 = self.I(SMA, self.data.Close, self.slow)

    def next(self) -> None:
        if crossover(self.sma1, self.sma2):
            self.buy(size=SHARES)
        elif crossover(self.sma2, self.sma1):
            self.position.close()


def theirs(bars: int) -> tuple[float, dict[str, Any]]:
    frame = pd.read_csv(GOOG, index_col=0, parse_dates=True)
    frame.columns = [c.capitalize() for c in frame.columns]
    frame = frame.iloc[:bars]
    backtest = Backtest(frame, SmaCrossTheirs, cash=10_000, commission=0, finalize_trades=True)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stats = backtest.optimize(
            fast=list(FAST),
            slow=list(SLOW),
            constraint=lambda p: p.fast < p.slow,
            maximize="Return [%]",
        )
    elapsed = time.perf_counter() - started
    strategy = stats["_strategy"]
    return elapsed, {"fast": int(strategy.fast), "slow": int(strategy.slow)}


def main() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    points = len(admissible())
    grid = len(FAST) * len(SLOW)
    elapsed, result = ours("grid", grid)
    fold = result.folds[0]
    assert fold.params is not None
    best = {"fast": fold.params["fast"], "slow": fold.params["slow"]}
    their_elapsed, their_best = theirs(fold.in_sample.bars)
    same = best == their_best
    rate, their_rate = points / elapsed, points / their_elapsed
    tpe_elapsed, tpe = ours("tpe", grid // 3)
    tpe_best = tpe.folds[0].params or {}
    tpe_found = {"fast": tpe_best.get("fast"), "slow": tpe_best.get("slow")} == best
    print(f"grid: {grid} points, {points} admissible (fast < slow); {WORKERS} worker processes")
    print(f"trademesh (grid sampler): {elapsed:.2f}s = {rate:,.0f} trials/s; best {best}")
    print(
        f"backtesting optimize(): {their_elapsed:.2f}s = {their_rate:,.0f} trials/s; best {their_best}"
    )
    print(
        f"trademesh (TPE, {grid // 3} trials): {tpe_elapsed:.2f}s = "
        f"{(grid // 3) / tpe_elapsed:,.0f} trials/s; best {tpe_best}; "
        f"found the grid's best: {str(tpe_found).lower()}"
    )
    print(
        f"BENCH backtest_optimize trials_per_s={rate:.0f} ratio={rate / their_rate:.1f} "
        f"same_best={str(same).lower()}"
    )


if __name__ == "__main__":
    main()
