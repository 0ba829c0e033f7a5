"""The Optuna studies of an optimisation: one per walk-forward fold, searching the in-sample
window (TPE by default, or the exhaustive grid), then the best feasible parameters backtested on
the out-of-sample window, and the two compared (walkforward.divergence).

Trials run through Optuna's ask-and-tell interface: this process asks for parameters, a pool of
worker processes backtests them (trials.run_trial), and this process tells the results, so up
to `parallel` trials run at once while one storage holds the study. With a persistent storage
(the strategy service's Postgres) a study survives its process: run again under the same name,
it fails the trials left running by the lost process and asks only for the ones still missing.

Parameters that the strategy's config refuses (fast >= slow) and non-finite objective values
make a trial infeasible (an Optuna constraint above zero), which TPE ranks below every feasible
trial and the best trial never is.
"""

from __future__ import annotations

import math
import statistics
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, Literal, get_args

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, Trial, TrialState
from trademesh_events.marketdata import Bar

from trademesh_trading.optimize.space import Choices, Dimension, FloatRange, IntRange, grid_size
from trademesh_trading.optimize.trials import (
    BacktestSpec,
    SharedBars,
    TrialJob,
    TrialOutcome,
    run_trial,
)
from trademesh_trading.optimize.walkforward import Fold, WalkForward, divergence
from trademesh_trading.strategy import Strategy

Objective = Literal[
    "total_return",
    "annual_return",
    "sharpe",
    "sortino",
    "max_drawdown",
    "win_rate",
    "profit_factor",
]
OBJECTIVES: tuple[str, ...] = get_args(Objective)
MINIMISED: frozenset[str] = frozenset({"max_drawdown"})
"""Objectives where smaller is better; the others are maximised."""
SamplerKind = Literal["tpe", "grid"]

_VALID = "valid"  # the constraint's name: 0 feasible, 1 not


class Interrupted(RuntimeError):
    """The optimisation was told to stop; its studies keep every trial told so far."""


@dataclass(frozen=True)
class Plan:
    """What to optimise: a strategy's searched parameters (the rest fixed), on which account and
    fills, for which objective, with how many trials per fold and which sampler."""

    strategy: type[Strategy[Any]]
    space: Mapping[str, Dimension]
    spec: BacktestSpec
    fixed: Mapping[str, Any] = field(default_factory=dict)
    objective: Objective = "sharpe"
    trials: int = 50
    sampler: SamplerKind = "tpe"
    seed: int | None = None
    walk_forward: WalkForward = field(default_factory=WalkForward)

    def trials_per_fold(self) -> int:
        """The trial budget of each fold: `trials`, or the grid's size when smaller."""
        return min(self.trials, grid_size(self.space)) if self.sampler == "grid" else self.trials


@dataclass(frozen=True)
class Window:
    start: datetime  # the first bar's open time
    end: datetime  # the last bar's close time
    bars: int


@dataclass(frozen=True)
class FoldResult:
    number: int
    in_sample: Window
    out_of_sample: Window
    trials: int  # finished: feasible, infeasible and failed
    infeasible: int  # parameters the strategy refused, or a non-finite objective
    failed: int  # the strategy raised
    best_trial: int | None
    params: dict[str, Any] | None  # the best feasible trial's, fixed ones included
    in_sample_stats: dict[str, Any] | None
    out_of_sample_stats: dict[str, Any] | None
    warning: str | None  # walkforward.divergence, or why there is nothing to compare
    error: str | None  # what the first failed trial raised


@dataclass(frozen=True)
class OptimizationResult:
    objective: Objective
    folds: list[FoldResult]
    # The last fold's best parameters: found on the most recent in-sample window.
    params: dict[str, Any] | None
    in_sample_objective: float | None  # means over the folds with both statistics
    out_of_sample_objective: float | None
    in_sample_sharpe: float | None
    out_of_sample_sharpe: float | None
    warning: str | None  # the divergence rule on the mean Sharpe ratios
    diverging_folds: int

    def to_data(self) -> dict[str, Any]:
        """Plain data (times as ISO text); floats may be non-finite."""
        data = asdict(self)
        for fold in data["folds"]:
            for side in ("in_sample", "out_of_sample"):
                window = fold[side]
                window["start"] = window["start"].isoformat()
                window["end"] = window["end"].isoformat()
        return data


def distribution(dimension: Dimension) -> BaseDistribution:
    if isinstance(dimension, IntRange):
        return IntDistribution(
            dimension.low, dimension.high, log=dimension.log, step=dimension.step
        )
    if isinstance(dimension, FloatRange):
        return FloatDistribution(
            dimension.low, dimension.high, log=dimension.log, step=dimension.step
        )
    assert isinstance(dimension, Choices)
    return CategoricalDistribution(dimension.options)


class _GridSampler(optuna.samplers.GridSampler):
    """Optuna's grid sampler without its stop: once the grid is visited it calls Study.stop(),
    which works only inside Study.optimize() and raises in tell(); the ask-and-tell loop here
    stops at the grid's size by itself."""

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        return None


def _sampler(plan: Plan, fold: int) -> optuna.samplers.BaseSampler:
    seed = None if plan.seed is None else plan.seed + fold - 1
    if plan.sampler == "grid":
        grid = {name: d.values() for name, d in plan.space.items()}
        return _GridSampler(grid, seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def describe_error(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _window(bars: Sequence[Bar], indices: range) -> Window:
    return Window(bars[indices.start].open_time, bars[indices.stop - 1].close_time, len(indices))


def _counted(trial: FrozenTrial) -> bool:
    """A trial that uses up the budget: finished, or failed by its strategy (not one failed
    because the process that ran it was lost)."""
    return trial.state is TrialState.COMPLETE or (
        trial.state is TrialState.FAIL and "error" in trial.user_attrs
    )


class _Search:
    """One fold's study: ask, run (in the executor or here), tell, until the budget is spent."""

    def __init__(
        self,
        plan: Plan,
        study: optuna.Study,
        shared: SharedBars,
        fold: Fold,
        executor: Executor | None,
        inflight: int,  # trials submitted and not yet told, at most
        stop: threading.Event,
        told: Callable[[], None],
    ) -> None:
        self.plan, self.study, self.shared, self.fold = plan, study, shared, fold
        self.executor, self.inflight, self.stop, self.told = executor, inflight, stop, told
        self.distributions = {name: distribution(d) for name, d in plan.space.items()}

    def job(self, params: Mapping[str, Any], window: range) -> TrialJob:
        return TrialJob(
            self.plan.strategy,
            {**self.plan.fixed, **params},
            self.shared,
            (window.start, window.stop),
            self.plan.spec,
        )

    def run(self) -> None:
        study = self.study
        for orphan in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            study.tell(orphan.number, state=TrialState.FAIL)  # its process is gone
        done = sum(1 for t in study.get_trials(deepcopy=False) if _counted(t))
        budget = self.plan.trials_per_fold()
        inflight: dict[Future[TrialOutcome], Trial] = {}
        try:
            while True:
                while (
                    not self.stop.is_set()
                    and done + len(inflight) < budget
                    and len(inflight) < self.inflight
                ):
                    trial = study.ask(self.distributions)
                    job = self.job(trial.params, self.fold.in_sample)
                    if self.executor is None:
                        self.tell(trial, partial(run_trial, job))
                        done += 1
                        continue
                    inflight[self.executor.submit(run_trial, job)] = trial
                if self.stop.is_set():
                    raise Interrupted("the optimisation was stopped")
                if not inflight:
                    return
                finished, _ = wait(inflight, timeout=0.5, return_when=FIRST_COMPLETED)
                for future in finished:
                    self.tell(inflight.pop(future), future.result)
                    done += 1
        finally:
            for future in inflight:
                future.cancel()

    def tell(self, trial: Trial, outcome: Callable[[], TrialOutcome]) -> None:
        try:
            result = outcome()
        except BrokenProcessPool:
            raise
        except Exception as exc:  # the strategy raised: this trial fails, the search goes on
            trial.set_user_attr("error", describe_error(exc))
            self.study.tell(trial, state=TrialState.FAIL)
            self.told()
            return
        value = math.nan
        if result.stats is not None:
            value = float(result.stats[self.plan.objective])
            trial.set_user_attr("stats", result.stats)
        if result.invalid is not None:
            trial.set_user_attr("invalid", result.invalid)
        elif not math.isfinite(value):
            trial.set_user_attr("invalid", f"{self.plan.objective} is {value}")
        feasible = math.isfinite(value) and result.invalid is None
        trial.set_constraint(_VALID, 0.0 if feasible else 1.0)
        self.study.tell(trial, value if feasible else 0.0)
        self.told()


def run_study(
    plan: Plan,
    bars: Sequence[Bar] | SharedBars,
    *,
    storage: optuna.storages.BaseStorage | str | None = None,
    name: str = "trademesh-optimization",
    executor: Executor | None = None,
    parallel: int = 1,
    stop: threading.Event | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> OptimizationResult:
    """Search `plan` over `bars`, fold by fold (studies `<name>-fold-<n>` in `storage`, Optuna's
    in-memory storage by default), and validate each fold's best parameters out of sample.

    With an `executor` (a process pool of `parallel` workers, which may have the bars already,
    through SharedBars.preload()), `parallel` trials run in it at once and as many wait; without,
    every trial runs here, one after the other. `progress(told, total)` hears of each trial
    told. Raises Interrupted once `stop` is set (between trials), WindowsTooShort when the bars
    are too few for the folds, and BrokenProcessPool when a worker process dies."""
    stop = stop or threading.Event()
    shared = bars if isinstance(bars, SharedBars) else SharedBars(bars)
    series = shared.bars
    folds = plan.walk_forward.windows(len(series))
    per_fold = plan.trials_per_fold()
    total = per_fold * len(folds)
    told = 0

    def one_more() -> None:
        nonlocal told
        told += 1
        if progress is not None:
            progress(min(told, total), total)

    direction: Literal["minimize", "maximize"] = (
        "minimize" if plan.objective in MINIMISED else "maximize"
    )
    results: list[FoldResult] = []
    for fold in folds:
        study = optuna.create_study(
            storage=storage,
            study_name=f"{name}-fold-{fold.number}",
            direction=direction,
            sampler=_sampler(plan, fold.number),
            load_if_exists=True,
        )
        # Twice as many trials in flight as workers: one waits behind each running trial, so a
        # worker never idles while this process tells a result and asks for the next trial.
        search = _Search(plan, study, shared, fold, executor, 2 * max(parallel, 1), stop, one_more)
        # The folds before are whole; this one may hold trials of an earlier run already.
        told = (fold.number - 1) * per_fold
        told += sum(1 for t in study.get_trials(deepcopy=False) if _counted(t))
        search.run()
        results.append(_validate(search, series))
    return _summary(plan.objective, results)


def _validate(search: _Search, bars: Sequence[Bar]) -> FoldResult:
    """The fold's best feasible trial, backtested on its out-of-sample window."""
    study, fold = search.study, search.fold
    trials = [t for t in study.get_trials(deepcopy=False) if _counted(t)]
    errors = [t.user_attrs["error"] for t in trials if "error" in t.user_attrs]
    fold_result = partial(
        FoldResult,
        number=fold.number,
        in_sample=_window(bars, fold.in_sample),
        out_of_sample=_window(bars, fold.out_of_sample),
        trials=len(trials),
        infeasible=sum(1 for t in trials if "invalid" in t.user_attrs),
        failed=len(errors),
        error=errors[0] if errors else None,
    )
    try:
        best = study.best_trial
    except ValueError:  # not one feasible trial
        return fold_result(
            best_trial=None,
            params=None,
            in_sample_stats=None,
            out_of_sample_stats=None,
            warning="no trial was feasible: nothing to validate out of sample",
        )
    job = search.job(best.params, fold.out_of_sample)
    if search.executor is None:
        outcome = run_trial(job)
    else:
        outcome = search.executor.submit(run_trial, job).result()
    in_stats: dict[str, Any] = best.user_attrs["stats"]
    out_stats = outcome.stats
    warning = (
        f"out of sample, the parameters are refused: {outcome.invalid}"
        if out_stats is None
        else divergence(float(in_stats["sharpe"]), float(out_stats["sharpe"]))
    )
    return fold_result(
        best_trial=best.number,
        params=dict(job.params),
        in_sample_stats=in_stats,
        out_of_sample_stats=out_stats,
        warning=warning,
    )


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _summary(objective: Objective, folds: list[FoldResult]) -> OptimizationResult:
    pairs = [
        (f.in_sample_stats, f.out_of_sample_stats)
        for f in folds
        if f.in_sample_stats is not None and f.out_of_sample_stats is not None
    ]
    in_sharpe = _mean([float(i["sharpe"]) for i, _ in pairs])
    out_sharpe = _mean([float(o["sharpe"]) for _, o in pairs])
    if in_sharpe is None or out_sharpe is None:
        warning: str | None = "no fold has both in-sample and out-of-sample statistics"
    else:
        warning = divergence(in_sharpe, out_sharpe)
    return OptimizationResult(
        objective=objective,
        folds=folds,
        params=folds[-1].params if folds else None,
        in_sample_objective=_mean([float(i[objective]) for i, _ in pairs]),
        out_of_sample_objective=_mean([float(o[objective]) for _, o in pairs]),
        in_sample_sharpe=in_sharpe,
        out_of_sample_sharpe=out_sharpe,
        warning=warning,
        diverging_folds=sum(1 for f in folds if f.warning is not None),
    )
