"""`trademesh backtest run` over the real GOOG series: statistics, trades CSV, equity PNG, refusals."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from trademesh_cli.main import app
from typer.testing import CliRunner

pytestmark = pytest.mark.unit

GOOG = (
    Path(__file__).resolve().parents[4]
    / "services/market-data/src/trademesh_market_data/data/GOOG.csv"
)


def test_a_backtest_prints_statistics_and_writes_trades_and_the_curve(tmp_path: Path) -> None:
    trades, png = tmp_path / "trades.csv", tmp_path / "equity.png"
    result = CliRunner().invoke(
        app,
        [
            "backtest", "run", "sma_cross", "--data", str(GOOG),
            "--param", "fast=10", "--param", "slow=20", "--fee-bps", "10",
            "--trades", str(trades), "--png", str(png),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    for name in ("total return", "Sharpe", "Sortino", "max drawdown", "win rate", "trades"):
        assert name in result.output
    with trades.open() as handle:
        rows = list(csv.DictReader(handle))
    assert rows and {r["side"] for r in rows} == {"long"}  # short=false: long or flat
    assert all(r["exit_time"] for r in rows[:-1])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope"], "unknown strategy 'nope'"),
        (["sma_cross", "--param", "fast=30"], "fast must be shorter than slow"),
        (["sma_cross", "--param", "fast"], "use name=value"),
        (["sma_cross", "--timeframe", "1y"], "timeframe '1y'"),
        (["sma_cross", "--sizing", "lots:3"], "--sizing 'lots:3': use equity_pct:N"),
        (["sma_cross", "--sizing", "quantity:-1"], "(N > 0)"),
        (["sma_cross", "--cash", "lots"], "--cash 'lots': not a number"),
        (["sma_cross", "--fee-bps", "-5"], "a number of zero or more"),
        (["sma_cross", "--cash", "0"], "--cash '0': a number above zero"),
    ],
)
def test_bad_input_is_refused_with_a_message(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["backtest", "run", *args, "--data", str(GOOG)])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())


def test_a_file_without_valid_bars_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("date,open,high,low,close,volume\n2024-01-01,-1,1,1,1,1\n")
    result = CliRunner().invoke(app, ["backtest", "run", "rsi_cross", "--data", str(empty)])
    assert result.exit_code == 2
    assert "no valid bars (1 rows refused)" in " ".join(result.output.split())
