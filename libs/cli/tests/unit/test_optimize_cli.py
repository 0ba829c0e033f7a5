"""`trademesh backtest optimize` over the real GOOG series: the folds in and out of sample as the
library computes them, and bad input refused with a message."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from trademesh_cli.main import app
from trademesh_trading.builtin import SmaCross
from trademesh_trading.files import load_bars
from trademesh_trading.optimize.space import SearchRange, search_space
from trademesh_trading.optimize.study import Plan, run_study
from trademesh_trading.optimize.trials import BacktestSpec
from trademesh_trading.optimize.walkforward import WalkForward
from trademesh_trading.registry import StrategyRegistry
from typer.testing import CliRunner

pytestmark = pytest.mark.unit

GOOG = (
    Path(__file__).resolve().parents[4]
    / "services/market-data/src/trademesh_market_data/data/GOOG.csv"
)


def words(text: str) -> str:
    return " ".join(text.split())


def test_an_optimisation_prints_each_fold_in_and_out_of_sample() -> None:
    result = CliRunner().invoke(
        app,
        [
            "backtest", "optimize", "sma_cross", "--data", str(GOOG),
            "--space", "fast=5:30:5", "--space", "slow=20:100:10", "--sampler", "grid",
            "--folds", "2", "--mode", "anchored", "--objective", "total_return",
            "--workers", "1", "--seed", "3",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    # The same search through the library: the command shows its folds.
    bars, _ = load_bars(GOOG, "file:GOOG", "1d", timedelta(days=1))
    registry = StrategyRegistry()
    space = search_space(
        registry.schema("sma_cross"),
        {},
        {
            "fast": SearchRange(low=5, high=30, step=5),
            "slow": SearchRange(low=20, high=100, step=10),
        },
    )
    expected = run_study(
        Plan(
            strategy=SmaCross,
            space=space,
            spec=BacktestSpec("file:GOOG", "1d", "USD"),
            objective="total_return",
            trials=100,
            sampler="grid",
            seed=3,
            walk_forward=WalkForward(folds=2, mode="anchored"),
        ),
        bars,
    )
    shown = words(result.output)
    for fold in expected.folds:
        assert fold.params is not None and fold.in_sample_stats and fold.out_of_sample_stats
        assert (
            f"fold {fold.number}: {fold.in_sample.bars} bars in sample, "
            f"{fold.out_of_sample.bars} out; 54 trials (4 infeasible, 0 failed)"
        ) in shown
        ins, outs = fold.in_sample_stats["total_return"], fold.out_of_sample_stats["total_return"]
        assert f"{ins:.2%} / {outs:.2%}" in shown
        sharpe = f"{fold.in_sample_stats['sharpe']:.2f} / {fold.out_of_sample_stats['sharpe']:.2f}"
        assert sharpe in shown
        if fold.warning is not None:
            assert words(fold.warning) in shown
    assert expected.params is not None
    chosen = ", ".join(f"{k}={v}" for k, v in expected.params.items())
    assert f"from the most recent in-sample window): {chosen}" in shown
    assert f"folds with a warning: {expected.diverging_folds} of 2" in shown


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope"], "unknown strategy 'nope'"),
        (["sma_cross", "--space", "fats=1:5"], "search space: unknown parameter(s) fats"),
        (["sma_cross", "--space", "fast=0:5"], "leaves the schema's bounds 1..1000"),
        (["sma_cross", "--space", "fast"], "--space 'fast': use name=low:high[:step]"),
        (["sma_cross", "--space", "fast=9:5"], "low must not be above high"),
        (["sma_cross", "--param", "fast=0"], "invalid parameters for sma_cross: fast"),
        (["sma_cross", "--objective", "luck"], "--objective 'luck': one of total_return"),
        (["sma_cross", "--sampler", "random"], "--sampler 'random': tpe or grid"),
        (["sma_cross", "--folds", "30"], "--folds: Input should be less than or equal to 20"),
        (["sma_cross", "--oos", "0.9"], "--oos: Input should be less than or equal to 0.5"),
        (["sma_cross", "--cash", "0"], "--cash '0': a number above zero"),
        (["sma_cross", "--qty-step", "0"], "--qty-step '0': a number above zero"),
        (["sma_cross", "--timeframe", "1y"], "timeframe '1y'"),
        (
            ["bollinger_reversion", "--sampler", "grid", "--space", "k=1:3"],
            "a grid needs a step for every number range",
        ),
    ],
)
def test_bad_input_is_refused_with_a_message(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["backtest", "optimize", *args, "--data", str(GOOG)])
    assert result.exit_code == 2, result.output
    assert message in words(result.output)


def test_a_file_too_short_for_the_folds_is_refused(tmp_path: Path) -> None:
    short = tmp_path / "short.csv"
    short.write_text("\n".join(GOOG.read_text().splitlines()[:61]) + "\n")  # 60 bars
    result = CliRunner().invoke(
        app, ["backtest", "optimize", "sma_cross", "--data", str(short), "--folds", "2"]
    )
    assert result.exit_code == 2
    assert "each needs at least 20: use fewer folds or more bars" in words(result.output)
