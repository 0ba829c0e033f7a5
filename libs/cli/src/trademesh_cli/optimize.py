"""`trademesh backtest optimize`: an Optuna search of a strategy's parameters over a price file,
validated walk-forward, printed as a table of folds (in-sample beside out-of-sample)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.table import Table
from trademesh_trading.backtest import Sizing
from trademesh_trading.buying_power import AccountTerms
from trademesh_trading.optimize.space import SearchRange, SpaceError, grid_size, search_space
from trademesh_trading.optimize.study import (
    Objective,
    OptimizationResult,
    Plan,
    SamplerKind,
    run_study,
)
from trademesh_trading.optimize.trials import BacktestSpec, SharedBars
from trademesh_trading.optimize.walkforward import WalkForward, WindowsTooShort
from trademesh_trading.registry import InvalidParameters, StrategyRegistry, UnknownStrategy

from trademesh_cli.backtest import (
    BacktestInputError,
    file_bars,
    file_instrument,
)


def _value(text: str) -> bool | int | float | str:
    """A choice as typed: true/false, an integer, a number, else the text."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text.strip()


def parse_space(pairs: Sequence[str]) -> dict[str, SearchRange]:
    """`name=low:high[:step]`, `name=low:high:log` or `name=a,b,...` (choices) per parameter."""
    ranges: dict[str, SearchRange] = {}
    for pair in pairs:
        name, sep, spec = pair.partition("=")
        name = name.strip()
        if not sep or not name or not spec.strip():
            raise BacktestInputError(
                f"--space {pair!r}: use name=low:high[:step], name=low:high:log or name=a,b"
            )
        try:
            if ":" in spec:
                low, high, *rest = spec.split(":")
                if len(rest) > 1:
                    raise ValueError("too many parts")
                extra = rest[0].strip().lower() if rest else ""
                ranges[name] = SearchRange(
                    low=_value(low),
                    high=_value(high),
                    step=None if extra in ("", "log") else _value(extra),
                    log=extra == "log",
                )
            else:
                ranges[name] = SearchRange(choices=[_value(v) for v in spec.split(",")])
        except (ValidationError, ValueError) as exc:
            reason = (
                "; ".join(e["msg"] for e in exc.errors(include_input=False, include_url=False))
                if isinstance(exc, ValidationError)
                else str(exc)
            )
            raise BacktestInputError(f"--space {pair!r}: {reason}") from None
    return ranges


def optimize_file(
    strategy: str,
    data: Path,
    params: dict[str, str],
    ranges: dict[str, SearchRange],
    *,
    timeframe: str | None,
    currency: str | None,
    cash: Decimal,
    slippage_bps: Decimal,
    fee_bps: Decimal,
    sizing: Sizing,
    allow_short: bool,
    objective: Objective,
    trials: int,
    sampler: SamplerKind,
    walk_forward: WalkForward,
    workers: int,
    seed: int | None,
) -> tuple[OptimizationResult, list[str]]:
    """The optimisation of `strategy` over the file's bars, and the rows refused."""
    registry = StrategyRegistry()
    try:
        cls = registry.get(strategy)
    except UnknownStrategy:
        raise BacktestInputError(
            f"unknown strategy {strategy!r}; known: {', '.join(registry.names())}"
        ) from None
    fixed = _fixed(registry, strategy, params)
    try:
        space = search_space(registry.schema(strategy), fixed, ranges)
        if sampler == "grid":
            grid_size(space)  # a number range without a step has no grid
    except SpaceError as exc:
        raise BacktestInputError(f"search space: {exc}") from None
    bars, tf, refused = file_bars(data, timeframe)
    try:
        walk_forward.windows(len(bars))
    except WindowsTooShort as exc:
        raise BacktestInputError(str(exc)) from None
    plan = Plan(
        strategy=cls,
        space=space,
        spec=BacktestSpec(
            instrument_id=file_instrument(data),
            timeframe=tf.label,
            currency=currency,
            cash=cash,
            slippage_bps=slippage_bps,
            fee_bps=fee_bps,
            sizing=sizing,
            terms=AccountTerms(allow_short=allow_short),
        ),
        fixed=fixed,
        objective=objective,
        trials=trials,
        sampler=sampler,
        seed=seed,
        walk_forward=walk_forward,
    )
    if workers <= 1:
        return run_study(plan, bars), refused
    # This command starts no threads, so the platform's default start method (fork on Linux)
    # is safe and spares each worker the imports a spawned process would do again. Each worker
    # gets the bars once, when it starts; trials then carry their parameters only.
    shared = SharedBars(bars)
    initializer, initargs = shared.preload()
    with ProcessPoolExecutor(workers, initializer=initializer, initargs=initargs) as pool:
        return run_study(plan, shared, executor=pool, parallel=workers), refused


def _fixed(registry: StrategyRegistry, strategy: str, params: dict[str, str]) -> dict[str, Any]:
    """The fixed parameters, converted by the strategy's schema; a rule across parameters is
    left to the trials (it may hold for some of the searched values)."""
    try:
        config = registry.create(strategy, params)
    except InvalidParameters as exc:
        wrong = [e for e in exc.errors if e["loc"]]
        if wrong:
            where = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in wrong)
            raise BacktestInputError(f"invalid parameters for {strategy}: {where}") from None
        return dict(params)
    dumped: dict[str, Any] = config.config.model_dump(mode="json")
    return {name: dumped[name] for name in params}


def default_workers() -> int:
    return max(os.cpu_count() or 1, 1)


def _number(value: Any, percent: bool = False) -> str:
    if value is None:
        return "-"
    number = float(value)
    return f"{number:.2%}" if percent else f"{number:.2f}"


def _params(params: dict[str, Any], sep: str) -> str:
    """name=value pairs; floats to 6 significant digits (the search's values are not rounder)."""
    return sep.join(
        f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
    )


def folds_table(result: OptimizationResult, title: str) -> Table:
    """One row per fold: its windows (months), its best parameters, the objective and Sharpe
    in and out of sample (Sharpe judges the divergence); fold_lines has the rest."""
    percent = result.objective in ("total_return", "annual_return", "max_drawdown", "win_rate")
    names = [result.objective] + (["sharpe"] if result.objective != "sharpe" else [])
    table = Table(title=title)
    table.add_column("fold")
    table.add_column("in-sample\nout-of-sample", no_wrap=True)
    table.add_column("parameters")
    for name in names:
        table.add_column(f"{name}\nIS / OOS", justify="right", no_wrap=True)
    for fold in result.folds:
        ins, outs = fold.in_sample_stats or {}, fold.out_of_sample_stats or {}
        cells = [
            str(fold.number) + ("" if fold.warning is None else " !"),
            f"{fold.in_sample.start:%Y-%m}..{fold.in_sample.end:%Y-%m}\n"
            f"{fold.out_of_sample.start:%Y-%m}..{fold.out_of_sample.end:%Y-%m}",
            "-" if fold.params is None else _params(fold.params, "\n"),
        ]
        for name in names:
            share = percent and name == result.objective
            cells.append(f"{_number(ins.get(name), share)} / {_number(outs.get(name), share)}")
        table.add_row(*cells)
    return table


def fold_lines(result: OptimizationResult) -> list[str]:
    """Each fold's trials, and its warning when it has one."""
    lines = []
    for fold in result.folds:
        line = (
            f"fold {fold.number}: {fold.in_sample.bars} bars in sample, "
            f"{fold.out_of_sample.bars} out; {fold.trials} trials ({fold.infeasible} "
            f"infeasible, {fold.failed} failed)"
        )
        if fold.error is not None:
            line += f"; first failure: {fold.error}"
        if fold.warning is not None:
            line += f"; ! {fold.warning}"
        lines.append(line)
    return lines


def summary_lines(result: OptimizationResult) -> list[str]:
    params = result.params
    lines = [
        "parameters (the last fold's, from the most recent in-sample window): "
        + ("none" if params is None else _params(params, ", ")),
        f"mean Sharpe: in-sample {_number(result.in_sample_sharpe)}, "
        f"out-of-sample {_number(result.out_of_sample_sharpe)}; "
        f"folds with a warning: {result.diverging_folds} of {len(result.folds)}",
    ]
    return lines
