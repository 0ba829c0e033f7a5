"""`trademesh backtest run`: a strategy over a price file, statistics as a table, the equity
curve as a PNG and the trades as CSV on request."""

from __future__ import annotations

import csv
from dataclasses import asdict
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.table import Table
from trademesh_trading.backtest import Backtester, BacktestResult, Sizing, Stats
from trademesh_trading.buying_power import AccountTerms
from trademesh_trading.files import load_bars
from trademesh_trading.fills import FillModel
from trademesh_trading.registry import StrategyRegistry
from trademesh_trading.timeframes import Timeframe


class BacktestInputError(ValueError):
    """Bad input for a backtest: the message says what, for the user."""


def parse_params(pairs: list[str]) -> dict[str, str]:
    """`k=v` pairs; values stay text and the strategy's schema converts and checks them."""
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise BacktestInputError(f"--param {pair!r}: use name=value")
        params[key.strip()] = value.strip()
    return params


def run_backtest(
    strategy: str,
    data: Path,
    params: dict[str, str],
    *,
    timeframe: str,
    cash: Decimal,
    fills: FillModel,
    sizing: Sizing,
    allow_short: bool = False,
) -> tuple[BacktestResult, list[str]]:
    from trademesh_trading.registry import InvalidParameters, UnknownStrategy

    registry = StrategyRegistry()
    try:
        instance = registry.create(strategy, params)
    except UnknownStrategy:
        raise BacktestInputError(
            f"unknown strategy {strategy!r}; known: {', '.join(registry.names())}"
        ) from None
    except InvalidParameters as exc:
        where = "; ".join(f"{'.'.join(e['loc']) or strategy}: {e['msg']}" for e in exc.errors)
        raise BacktestInputError(f"invalid parameters for {strategy}: {where}") from None
    try:
        tf = Timeframe.parse(timeframe)
    except ValueError as exc:
        raise BacktestInputError(str(exc)) from None
    instrument = f"file:{data.stem[:64] or 'data'}"
    bars, refused = load_bars(data, instrument, tf.label, tf.delta)
    if not bars:
        raise BacktestInputError(f"{data}: no valid bars ({len(refused)} rows refused)")
    backtester = Backtester(
        instance, instrument_id=instrument, timeframe=tf.label, cash=cash, fill_model=fills,
        sizing=sizing, terms=AccountTerms(allow_short=allow_short),
    )  # fmt: skip
    return backtester.run(bars), refused


def stats_table(stats: Stats, title: str) -> Table:
    table = Table(title=title)
    table.add_column("statistic")
    table.add_column("value", justify="right")
    rows: list[tuple[str, str]] = [
        ("final equity", f"{stats.final_equity:,.2f}"),
        ("total return", f"{stats.total_return:.2%}"),
        ("annual return", f"{stats.annual_return:.2%}"),
        ("Sharpe", f"{stats.sharpe:.2f}"),
        ("Sortino", f"{stats.sortino:.2f}"),
        ("max drawdown", f"{stats.max_drawdown:.2%}"),
        ("max drawdown duration", str(stats.max_drawdown_duration)),
        ("win rate", f"{stats.win_rate:.2%}"),
        ("profit factor", f"{stats.profit_factor:.2f}"),
        ("exposure", f"{stats.exposure:.2%}"),
        ("trades", str(stats.trades)),
        ("orders refused (buying power)", str(stats.refused_orders)),
        ("fills refused (buying power)", str(stats.refused_fills)),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def write_trades(result: BacktestResult, path: Path) -> None:
    fields = [
        "side",
        "quantity",
        "entry_time",
        "entry_price",
        "exit_time",
        "exit_price",
        "pnl",
        "fees",
    ]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for trade in result.trades:
            row: dict[str, Any] = asdict(trade)
            writer.writerow({k: "" if row[k] is None else row[k] for k in fields})


def write_equity_png(result: BacktestResult, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers and CI
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(10, 4))
    times: Any = [t for t, _ in result.equity]  # matplotlib plots datetimes; its stubs say floats
    axis.plot(times, [float(v) for _, v in result.equity])
    axis.set_title(title)
    axis.set_ylabel("equity")
    axis.grid(alpha=0.3)
    figure.autofmt_xdate()
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=100)
    plt.close(figure)
