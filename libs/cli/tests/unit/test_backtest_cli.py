"""`trademesh backtest run` over the real GOOG series and made-up bitcoin prices: statistics as a
table or JSON, trades and equity CSV, the PNG and the HTML report, entries sized to nothing, the
timeframe inferred, refusals."""

from __future__ import annotations

import csv
import json
import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from trademesh_cli.main import app
from trademesh_trading.backtest import Backtester, Sizing
from trademesh_trading.builtin import SmaCross, SmaCrossConfig
from trademesh_trading.currencies import money_in
from trademesh_trading.files import load_bars
from trademesh_trading.fills import FillModel
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
    # GOOG's rows are trading days: 1d, from their median spacing, said on stderr
    assert "timeframe 1d: the median spacing of the bars" in result.stderr


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
        (["sma_cross", "--qty-step", "0"], "--qty-step '0': a number above zero"),
        (["sma_cross", "--qty-step", "some"], "--qty-step 'some': not a number"),
    ],
)
def test_bad_input_is_refused_with_a_message(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["backtest", "run", *args, "--data", str(GOOG)])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())


def test_a_file_without_valid_bars_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("date,open,high,low,close,volume\n2024-01-01,-1,1,1,1,1\n")
    result = CliRunner().invoke(
        app, ["backtest", "run", "rsi_cross", "--data", str(empty), "--timeframe", "1d"]
    )
    assert result.exit_code == 2
    assert "no valid bars (1 rows refused)" in " ".join(result.output.split())


def test_a_file_of_one_bar_needs_a_timeframe_to_be_given(tmp_path: Path) -> None:
    single = tmp_path / "single.csv"
    single.write_text("date,open,high,low,close,volume\n2024-01-01,1,1,1,1,1\n")
    result = CliRunner().invoke(app, ["backtest", "run", "rsi_cross", "--data", str(single)])
    assert result.exit_code == 2
    assert "fewer than two bar times" in " ".join(result.output.split())
    given = CliRunner().invoke(
        app, ["backtest", "run", "rsi_cross", "--data", str(single), "--timeframe", "1d"]
    )
    assert given.exit_code == 0, given.output


def library_backtester() -> Backtester:
    """What the command runs by default, as a user of the library would build it."""
    return Backtester(
        SmaCross(SmaCrossConfig(fast=10, slow=20)),
        instrument_id="file:GOOG",
        timeframe="1d",
        fill_model=FillModel(fee_bps=Decimal(10)),
        sizing=Sizing(),
    )


def test_json_prints_only_the_statistics_at_full_precision() -> None:
    result = CliRunner().invoke(
        app,
        ["backtest", "run", "sma_cross", "--data", str(GOOG), "--fee-bps", "10", "--json"],
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)  # stdout is the JSON document and nothing else
    bars, _ = load_bars(GOOG, "file:GOOG", "1d", timedelta(days=1))
    expected = library_backtester().run(bars).stats
    stats = printed["stats"]
    for name in ("total_return", "annual_return", "sharpe", "sortino", "max_drawdown", "exposure"):
        assert stats[name] == getattr(expected, name), name  # the float itself, not a rounding
    assert stats["final_equity"] == money_in(expected.final_equity, "USD")  # USD: 2 places
    assert stats["buy_and_hold_return"] == expected.buy_and_hold_return
    pf = stats["profit_factor"]
    assert (float(pf) if isinstance(pf, str) else pf) == expected.profit_factor
    assert printed["params"] == {"fast": 10, "slow": 20, "short": False}
    assert (printed["timeframe"], printed["timeframe_inferred"]) == ("1d", True)
    assert printed["bars"] == len(bars)
    assert printed["first_bar_at"] == bars[0].open_time.isoformat()
    assert printed["last_bar_at"] == bars[-1].open_time.isoformat()
    assert "timeframe 1d" in result.stderr


def test_the_equity_csv_has_drawdown_and_buy_and_hold_per_bar(tmp_path: Path) -> None:
    equity = tmp_path / "equity.csv"
    result = CliRunner().invoke(
        app,
        ["backtest", "run", "sma_cross", "--data", str(GOOG), "--fee-bps", "10", "--json",
         "--equity", str(equity)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)["stats"]  # the note that it was written went to stderr
    assert f"equity curve written to {equity}" in " ".join(result.stderr.split())
    with equity.open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["time", "equity", "drawdown", "buy_and_hold"]
    assert rows[0]["equity"] == rows[0]["buy_and_hold"] == "10000"
    assert max(float(r["drawdown"]) for r in rows) == stats["max_drawdown"]
    assert rows[-1]["equity"] == stats["final_equity"]
    first_close, last_close = 100.34, 806.19  # GOOG.csv's first and last closes
    held = Decimal(10_000) * Decimal(str(last_close)) / Decimal(str(first_close))
    assert rows[-1]["buy_and_hold"] == money_in(held, "USD")  # at USD's 2 places
    assert datetime.fromisoformat(rows[1]["time"]) > datetime.fromisoformat(rows[0]["time"])


def test_trades_carry_their_signal_times_and_an_open_flag(tmp_path: Path) -> None:
    trades = tmp_path / "trades.csv"
    result = CliRunner().invoke(
        app, ["backtest", "run", "sma_cross", "--data", str(GOOG), "--trades", str(trades)]
    )
    assert result.exit_code == 0, result.output
    with trades.open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == [
        "side", "quantity", "entry_signal_time", "entry_time", "entry_price", "exit_signal_time",
        "exit_time", "exit_price", "pnl", "fees", "open",
    ]  # fmt: skip
    for row in rows:
        assert datetime.fromisoformat(row["entry_signal_time"]) <= datetime.fromisoformat(
            row["entry_time"]
        )
        assert row["open"] == ("true" if not row["exit_time"] else "false")
    closed = [r for r in rows if r["open"] == "false"]
    assert closed and all(r["exit_signal_time"] for r in closed)


def bitcoin(path: Path, days: int = 200) -> Path:
    """Daily bitcoin-like prices around 30,000 that swing enough for an SMA cross to trade."""
    start = datetime(2023, 1, 1, tzinfo=UTC)
    lines = ["timestamp,open,high,low,close,volume"]
    previous = 30_000.0
    for n in range(days):
        close = round(30_000 + 4_000 * math.sin(n / 9) + 10 * n, 2)
        high, low = max(previous, close) + 150, min(previous, close) - 150
        moment = (start + timedelta(days=n)).isoformat()
        lines.append(f"{moment},{previous},{high},{low},{close},12.5")
        previous = close
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_signal_sized_to_zero_is_warned_about_and_a_qty_step_trades_fractions(
    tmp_path: Path,
) -> None:
    data = bitcoin(tmp_path / "BTCUSD.csv")
    args = ["backtest", "run", "sma_cross", "--data", str(data), "--cash", "1000", "--json"]
    whole = CliRunner().invoke(app, args)
    assert whole.exit_code == 0, whole.output
    stats = json.loads(whole.stdout)["stats"]
    assert stats["trades"] == 0 and stats["zero_size_signals"] > 0
    warning = " ".join(whole.stderr.split())
    assert f"warning: {stats['zero_size_signals']} signals sized to 0" in warning
    assert "--qty-step" in warning

    trades = tmp_path / "trades.csv"
    fractional = CliRunner().invoke(app, [*args, "--qty-step", "0.0001", "--trades", str(trades)])
    assert fractional.exit_code == 0, fractional.output
    stats = json.loads(fractional.stdout)["stats"]
    assert stats["trades"] > 0 and stats["zero_size_signals"] == 0
    assert "warning" not in fractional.stderr
    with trades.open() as handle:
        quantities = [Decimal(r["quantity"]) for r in csv.DictReader(handle)]
    assert all(0 < q < 1 and q % Decimal("0.0001") == 0 for q in quantities)


def test_an_hourly_file_is_inferred_as_hourly(tmp_path: Path) -> None:
    path = tmp_path / "hourly.csv"
    start = datetime(2024, 5, 1, tzinfo=UTC)
    rows = [
        f"{(start + timedelta(hours=n)).isoformat()},100,101,99,{100 + n % 7},5" for n in range(60)
    ]
    path.write_text("time,open,high,low,close,volume\n" + "\n".join(rows) + "\n")
    result = CliRunner().invoke(
        app, ["backtest", "run", "sma_cross", "--data", str(path), "--json"]
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert (printed["timeframe"], printed["timeframe_inferred"]) == ("1h", True)
    given = CliRunner().invoke(
        app, ["backtest", "run", "sma_cross", "--data", str(path), "--json", "--timeframe", "2h"]
    )
    assert json.loads(given.stdout)["timeframe"] == "2h"
    assert json.loads(given.stdout)["timeframe_inferred"] is False


def test_the_html_report_is_one_file_that_works_offline(tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    result = CliRunner().invoke(
        app,
        ["backtest", "run", "sma_cross", "--data", str(GOOG), "--param", "short=true",
         "--allow-short", "--html", str(report)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    text = report.read_text(encoding="utf-8")
    assert text.lstrip().lower().startswith("<!doctype html>")
    fetched = _fetched(text)
    assert fetched == [], fetched  # no script or stylesheet from a CDN: it works offline
    assert "Bokeh.embed.embed_items" in text and "Bokeh.set_log_level" in text  # inline BokehJS
    for label in ("price, entries and exits", "buy and hold", "drawdown", "max drawdown",
                  "Sharpe", "long entry", "short entry", "exit"):  # fmt: skip
        assert label in text, label
    assert f"report written to {report}" in " ".join(result.output.split())


def _fetched(text: str) -> list[str]:
    """What a browser would fetch to show the page: script sources and linked stylesheets."""
    from html.parser import HTMLParser

    found: list[str] = []

    class Sources(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            named = dict(attrs)
            if tag == "script" and named.get("src"):
                found.append(str(named["src"]))
            if tag == "link" and named.get("href"):
                found.append(str(named["href"]))

    Sources().feed(text)
    return found


def test_the_png_has_the_drawdown_panel_and_the_benchmark(tmp_path: Path) -> None:
    import matplotlib.image

    png = tmp_path / "chart.png"
    result = CliRunner().invoke(
        app, ["backtest", "run", "sma_cross", "--data", str(GOOG), "--png", str(png)]
    )
    assert result.exit_code == 0, result.output
    height, width = matplotlib.image.imread(png).shape[:2]
    assert (width, height) == (1000, 600)  # two panels: equity and buy and hold over drawdown
