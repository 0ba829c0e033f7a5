"""The optimiser on the real GOOG series: TPE finds the optimum the exhaustive grid finds, each
fold's best is validated on its out-of-sample window exactly as a plain backtest would give it,
a study resumes from its storage, and trials in worker processes give what trials here give."""

from __future__ import annotations

import multiprocessing
import pickle
import threading
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from decimal import Decimal
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState
from trademesh_events.marketdata import Bar
from trademesh_trading.backtest import Sizing
from trademesh_trading.builtin import SmaCross
from trademesh_trading.optimize.space import IntRange, SearchRange, search_space
from trademesh_trading.optimize.study import Interrupted, Plan, run_study
from trademesh_trading.optimize.trials import BacktestSpec, SharedBars
from trademesh_trading.optimize.walkforward import WalkForward, divergence
from trademesh_trading.registry import StrategyRegistry
from trademesh_trading.results import stats_data

pytestmark = pytest.mark.unit

REGISTRY = StrategyRegistry(load_entry_points=False)
SPEC = BacktestSpec("file:GOOG", "1d", "USD", sizing=Sizing(kind="quantity", value=Decimal(10)))
FAST, SLOW = range(5, 31, 5), range(20, 101, 10)  # 54 points, 50 with fast < slow


@pytest.fixture(autouse=True)
def _quiet() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def plan(**overrides: Any) -> Plan:
    space = search_space(
        REGISTRY.schema("sma_cross"),
        {"short": False},
        {
            "fast": SearchRange(low=FAST.start, high=FAST[-1], step=FAST.step),
            "slow": SearchRange(low=SLOW.start, high=SLOW[-1], step=SLOW.step),
        },
    )
    settings: dict[str, Any] = {
        "strategy": SmaCross,
        "space": space,
        "spec": SPEC,
        "fixed": {"short": False},
        "objective": "sharpe",
        "trials": 54,
        "sampler": "grid",
        "seed": 3,
    }
    return Plan(**(settings | overrides))


def backtest(bars: Sequence[Bar], window: range, params: dict[str, Any]) -> dict[str, Any]:
    """A plain backtest of `params` over bars[window], as a user would run it."""
    strategy = REGISTRY.create("sma_cross", params)
    result = SPEC.backtester(strategy).run(bars[window.start : window.stop])
    return stats_data(result.stats, "USD")


def exhaustive(
    bars: Sequence[Bar], window: range, objective: str = "sharpe"
) -> tuple[float, dict[str, Any]]:
    """The best `objective` over every admissible point of the grid, and its parameters."""
    scored = [
        (backtest(bars, window, p)[objective], p)
        for p in ({"fast": f, "slow": s, "short": False} for f in FAST for s in SLOW if f < s)
    ]
    return max(scored, key=lambda item: item[0])


def test_tpe_finds_the_grids_optimum_in_half_the_grids_trials(goog_bars: list[Bar]) -> None:
    window = WalkForward().windows(len(goog_bars))[0].in_sample
    best, params = exhaustive(goog_bars, window)
    result = run_study(plan(sampler="tpe", trials=27, seed=11), goog_bars)
    (fold,) = result.folds
    assert fold.trials == 27
    assert fold.in_sample_stats is not None
    assert fold.in_sample_stats["sharpe"] == best
    assert fold.params == params


def test_the_grid_visits_every_point_and_its_best_is_validated_out_of_sample(
    goog_bars: list[Bar],
) -> None:
    (split,) = WalkForward().windows(len(goog_bars))
    best, params = exhaustive(goog_bars, split.in_sample)
    result = run_study(plan(), goog_bars)
    (fold,) = result.folds
    assert (fold.trials, fold.infeasible, fold.failed) == (54, 4, 0)  # fast >= slow: 4 points
    assert fold.params == params == result.params
    assert fold.in_sample_stats == backtest(goog_bars, split.in_sample, params)
    assert fold.in_sample_stats["sharpe"] == best
    assert fold.out_of_sample_stats == backtest(goog_bars, split.out_of_sample, params)
    assert fold.in_sample.bars == len(split.in_sample)
    assert fold.out_of_sample.start == goog_bars[split.out_of_sample.start].open_time
    assert fold.out_of_sample.end == goog_bars[-1].close_time
    expected = divergence(fold.in_sample_stats["sharpe"], fold.out_of_sample_stats["sharpe"])
    assert fold.warning == expected == result.warning
    assert result.diverging_folds == (0 if expected is None else 1)


def test_each_walk_forward_fold_searches_its_own_window(goog_bars: list[Bar]) -> None:
    walk = WalkForward(folds=2, mode="anchored", oos_fraction=0.2)
    result = run_study(plan(walk_forward=walk, objective="total_return"), goog_bars)
    windows = walk.windows(len(goog_bars))
    assert [f.number for f in result.folds] == [1, 2]
    for fold, split in zip(result.folds, windows, strict=True):
        _, params = exhaustive(goog_bars, split.in_sample, "total_return")
        assert fold.params == params
        assert fold.in_sample_stats == backtest(goog_bars, split.in_sample, params)
        assert fold.out_of_sample_stats == backtest(goog_bars, split.out_of_sample, fold.params)
    assert result.params == result.folds[-1].params  # the most recent in-sample window's
    ins = [f.in_sample_stats["total_return"] for f in result.folds if f.in_sample_stats]
    assert result.in_sample_objective == pytest.approx(sum(ins) / 2)


def test_a_study_resumes_from_its_storage_without_redoing_what_was_told(
    goog_bars: list[Bar],
) -> None:
    storage = optuna.storages.InMemoryStorage()
    chosen = plan(sampler="tpe", trials=12, seed=5)
    stop = threading.Event()

    def stop_after_five(told: int, _total: int) -> None:
        if told >= 5:
            stop.set()

    with pytest.raises(Interrupted):
        run_study(
            chosen, goog_bars, storage=storage, name="resumed", stop=stop, progress=stop_after_five
        )
    study = optuna.load_study(study_name="resumed-fold-1", storage=storage)
    first = [(t.number, t.params) for t in study.get_trials()]
    assert len(first) == 5
    orphan = study.ask()  # a trial its lost process never told
    orphan.suggest_int("fast", 5, 30, step=5)
    seen: list[tuple[int, int]] = []
    result = run_study(
        chosen,
        goog_bars,
        storage=storage,
        name="resumed",
        progress=lambda d, t: seen.append((d, t)),
    )
    trials = study.get_trials()
    assert [(t.number, t.params) for t in trials[:5]] == first  # kept, not run again
    assert trials[5].number == orphan.number and trials[5].state is TrialState.FAIL
    assert sum(1 for t in trials if t.state is TrialState.COMPLETE) == 12
    assert result.folds[0].trials == 12
    assert seen[0] == (6, 12) and seen[-1] == (12, 12)


def test_trials_in_worker_processes_find_what_trials_here_find(goog_bars: list[Bar]) -> None:
    """Workers given the bars when they start (as the CLI starts them): jobs carry a key."""
    here = run_study(plan(), goog_bars)
    shared = SharedBars(goog_bars)
    initializer, initargs = shared.preload()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(2, context, initializer, initargs) as pool:
        there = run_study(plan(), shared, executor=pool, parallel=2)
    assert len(pickle.dumps(shared)) < 200  # the key, not the bars
    assert there.folds[0].trials == 54
    assert there.to_data() == here.to_data()


class Flaky(SmaCross):
    """SMA cross that raises for one fast period: a strategy bug hit by some parameters."""

    def prepare(self, bars: Sequence[Bar]) -> None:
        if self.config.fast == 15:
            raise ZeroDivisionError("fast 15 divides by zero")
        super().prepare(bars)


def test_a_trial_whose_strategy_raises_fails_alone_and_the_search_goes_on(
    goog_bars: list[Bar],
) -> None:
    result = run_study(plan(strategy=Flaky), goog_bars)
    (fold,) = result.folds
    assert fold.failed == len([s for s in SLOW if s > 15])
    assert fold.error == "ZeroDivisionError: fast 15 divides by zero"
    assert fold.trials == 54 and fold.params is not None and fold.params["fast"] != 15


def test_a_fold_without_a_feasible_trial_says_so() -> None:
    space = {"fast": IntRange(50, 60), "slow": IntRange(20, 30)}  # fast < slow never holds
    bars = _ramp(200)
    result = run_study(plan(space=space, trials=4, sampler="tpe"), bars)
    (fold,) = result.folds
    assert (fold.trials, fold.infeasible, fold.params) == (4, 4, None)
    assert fold.warning == "no trial was feasible: nothing to validate out of sample"
    assert result.params is None
    assert result.warning == "no fold has both in-sample and out-of-sample statistics"


def _ramp(count: int) -> list[Bar]:
    from datetime import UTC, datetime, timedelta

    start = datetime(2024, 1, 1, tzinfo=UTC)
    return [
        Bar(
            instrument_id="file:X",
            timeframe="1d",
            open_time=start + timedelta(days=n),
            close_time=start + timedelta(days=n + 1),
            open=Decimal(100 + n),
            high=Decimal(101 + n),
            low=Decimal(99 + n),
            close=Decimal(100 + n),
            volume=Decimal(1),
        )
        for n in range(count)
    ]
