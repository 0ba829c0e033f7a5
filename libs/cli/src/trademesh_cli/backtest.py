"""`trademesh backtest run`: a strategy over a price file; its statistics as a table or as JSON,
and on request the trades and the equity curve as CSV, a PNG and an HTML report (report.py)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from rich.table import Table
from trademesh_events.marketdata import Bar
from trademesh_events.money import plain
from trademesh_trading.backtest import Backtester, BacktestResult, Sizing
from trademesh_trading.buying_power import AccountTerms
from trademesh_trading.currencies import in_currency
from trademesh_trading.files import bar_times, load_bars
from trademesh_trading.fills import FillModel
from trademesh_trading.registry import StrategyRegistry
from trademesh_trading.results import (
    EquitySeries,
    equity_series,
    json_number,
    stats_data,
    trade_data,
)
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


@dataclass(frozen=True)
class BacktestRun:
    """A finished backtest of a price file, with what it was run on and with."""

    strategy: str
    params: dict[str, Any]  # as the strategy took them, defaults filled in
    data: Path
    timeframe: Timeframe
    inferred: bool  # the timeframe came from the data's bar spacing, not from --timeframe
    currency: str | None  # what the prices, and so the money, are in
    cash: Decimal
    sizing: Sizing
    fills: FillModel
    bars: list[Bar]
    refused: list[str]  # one line per row of the file that is not a valid bar
    result: BacktestResult

    def series(self) -> EquitySeries:
        return equity_series(self.result, self.bars, self.cash)


def run_backtest(
    strategy: str,
    data: Path,
    params: dict[str, str],
    *,
    timeframe: str | None,
    cash: Decimal,
    fills: FillModel,
    sizing: Sizing,
    allow_short: bool = False,
    currency: str | None = "USD",
) -> BacktestRun:
    """Run `strategy` over the bars of `data`. Without `timeframe`, the bars are as long as the
    median gap between their open times (Timeframe.of_spacing)."""
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
    bars, tf, refused = file_bars(data, timeframe)
    backtester = Backtester(
        instance, instrument_id=file_instrument(data), timeframe=tf.label, cash=cash, fill_model=fills,
        sizing=sizing, terms=AccountTerms(allow_short=allow_short),
    )  # fmt: skip
    return BacktestRun(
        strategy=strategy,
        params=instance.config.model_dump(mode="json"),
        data=data,
        timeframe=tf,
        inferred=timeframe is None,
        currency=currency,
        cash=cash,
        sizing=sizing,
        fills=fills,
        bars=bars,
        refused=refused,
        result=backtester.run(bars),
    )


def run_data(run: BacktestRun) -> dict[str, Any]:
    """What `--json` prints: the run's setting, the bars it covered, and the statistics at full
    precision (floats as Python writes them, which read back to the same value; non-finite ones
    as the strings "Infinity" / "NaN"; money at the places of the currency)."""
    sizing = run.sizing
    return {
        "strategy": run.strategy,
        "params": run.params,
        "data": str(run.data),
        "timeframe": run.timeframe.label,
        "timeframe_inferred": run.inferred,
        "currency": run.currency,
        "cash": plain(run.cash),
        "sizing": {"kind": sizing.kind, "value": plain(sizing.value), "step": plain(sizing.step)},
        "fee_bps": plain(run.fills.fee_bps),
        "slippage_bps": plain(run.fills.slippage_bps),
        "bars": len(run.bars),
        "first_bar_at": run.bars[0].open_time.isoformat(),
        "last_bar_at": run.bars[-1].open_time.isoformat(),
        "refused_rows": len(run.refused),
        "stats": {k: json_number(v) for k, v in stats_data(run.result.stats, run.currency).items()},
    }


def stats_rows(run: BacktestRun) -> list[tuple[str, str]]:
    """The statistics as (name, value) for people: percentages and ratios rounded, money at the
    places of the currency."""
    stats = run.result.stats
    final = in_currency(stats.final_equity, run.currency)
    rows: list[tuple[str, str]] = [
        ("final equity", f"{final:,}" + (f" {run.currency}" if run.currency else "")),
        ("total return", f"{stats.total_return:.2%}"),
        ("buy and hold return", f"{stats.buy_and_hold_return:.2%}"),
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
        ("signals sized to zero", str(stats.zero_size_signals)),
        ("bars", f"{len(run.bars)} x {run.timeframe.label}"),
        ("first bar", run.bars[0].open_time.isoformat()),
        ("last bar", run.bars[-1].open_time.isoformat()),
    ]
    return rows


def stats_table(run: BacktestRun, title: str) -> Table:
    table = Table(title=title)
    table.add_column("statistic")
    table.add_column("value", justify="right")
    for name, value in stats_rows(run):
        table.add_row(name, value)
    return table


def zero_size_warning(run: BacktestRun) -> str | None:
    """What to tell when entries were sized to nothing: how many, and the way out."""
    count = run.result.stats.zero_size_signals
    if not count:
        return None
    step = plain(run.sizing.step)
    return (
        f"{count} signal{'s' if count != 1 else ''} sized to 0 and placed no order: the sizing "
        f"({run.sizing.kind}:{plain(run.sizing.value)}) rounds quantities down to a multiple of "
        f"{step}, more than it could buy. For fractional quantities pass a smaller --qty-step "
        "(e.g. 0.0001); or more --cash."
    )


TRADE_FIELDS = [
    "side",
    "quantity",
    "entry_signal_time",
    "entry_time",
    "entry_price",
    "exit_signal_time",
    "exit_time",
    "exit_price",
    "pnl",
    "fees",
    "open",
]
"""The trades CSV's columns: a signal is the strategy's decision at a bar's close, the fill comes
at a later bar's open; `open` is true for a trade still open at the end, whose PnL is unrealised."""


def write_trades(run: BacktestRun, path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=TRADE_FIELDS)
        writer.writeheader()
        for trade in run.result.trades:
            row = trade_data(trade, run.currency)
            writer.writerow({k: _cell(row[k]) for k in TRADE_FIELDS})


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


EQUITY_FIELDS = ["time", "equity", "drawdown", "buy_and_hold"]
"""The equity CSV's columns, per bar at its close: the equity, the drawdown as a fraction below
its running peak (0.25 = 25 % below), and the starting cash bought and held from the first close."""


def write_equity(run: BacktestRun, path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(EQUITY_FIELDS)
        writer.writerows(run.series().rows(run.currency))


def parse_decimal(option: str, text: str, *, positive: bool = False) -> Decimal:
    """A number option (cash, bps): zero or more, or above zero when `positive`."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise BacktestInputError(f"--{option} {text!r}: not a number") from None
    if not value.is_finite() or value < 0 or (positive and value == 0):
        least = "above zero" if positive else "of zero or more"
        raise BacktestInputError(f"--{option} {text!r}: a number {least}")
    return value


def parse_sizing(text: str, step: Decimal) -> Sizing:
    """`equity_pct:N`, `quantity:N` or `notional:N`, in multiples of `step`."""
    kind, _, amount = text.partition(":")
    try:
        return Sizing.model_validate({"kind": kind, "value": amount or "100", "step": step})
    except ValueError:
        raise BacktestInputError(
            f"--sizing {text!r}: use equity_pct:N, quantity:N or notional:N (N > 0)"
        ) from None


def file_instrument(data: Path) -> str:
    """The instrument id a price file's bars are given."""
    return f"file:{data.stem[:64] or 'data'}"


def file_bars(data: Path, timeframe: str | None) -> tuple[list[Bar], Timeframe, list[str]]:
    """The file's bars, their timeframe (`timeframe`, else the median spacing of the bars'
    times) and the rows refused; a BacktestInputError when none is valid."""
    try:
        tf = Timeframe.parse(timeframe) if timeframe is not None else None
    except ValueError as exc:
        raise BacktestInputError(str(exc)) from None
    if tf is None:
        try:
            tf = Timeframe.of_spacing(bar_times(data))
        except ValueError:
            raise BacktestInputError(
                f"{data}: fewer than two bar times to infer the timeframe from; give --timeframe"
            ) from None
    bars, refused = load_bars(data, file_instrument(data), tf.label, tf.delta)
    if not bars:
        raise BacktestInputError(f"{data}: no valid bars ({len(refused)} rows refused)")
    return bars, tf, refused
