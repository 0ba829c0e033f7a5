"""A backtest's charts: the PNG (equity against buy and hold, drawdown) and one self-contained
HTML report (Bokeh, its JavaScript inline, so the file works offline): price with entries and
exits, equity against buy and hold, drawdown, and the statistics."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np

from trademesh_cli.backtest import BacktestRun, stats_rows


def write_png(run: BacktestRun, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers and CI
    import matplotlib.pyplot as plt

    series = run.series()
    times: Any = series.times  # matplotlib plots datetimes; its stubs say floats
    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(10, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    top.plot(times, [float(v) for v in series.equity], label=f"{run.strategy}")
    top.plot(times, [float(v) for v in series.buy_and_hold], label="buy and hold", alpha=0.7)
    top.set_title(title)
    top.set_ylabel("equity")
    top.legend(loc="upper left")
    top.grid(alpha=0.3)
    bottom.fill_between(times, -series.drawdown * 100, 0, color="tab:red", alpha=0.4, lw=0)
    bottom.set_ylabel("drawdown %")
    bottom.grid(alpha=0.3)
    figure.autofmt_xdate()
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=100)
    plt.close(figure)


def write_html(run: BacktestRun, path: Path, title: str) -> None:
    """The report as one HTML file: Bokeh's JavaScript inline (no CDN), plots that pan and zoom
    together, a hover on each line."""
    from bokeh.embed import file_html
    from bokeh.layouts import column
    from bokeh.models import ColumnDataSource, HoverTool, NumeralTickFormatter
    from bokeh.models.widgets.markups import Div
    from bokeh.plotting import figure
    from bokeh.resources import INLINE

    series = run.series()
    when = np.array([t.timestamp() * 1000 for t in series.times])  # ms, Bokeh's datetime axis
    per_bar = ColumnDataSource(
        {
            "time": when,
            "close": np.array([float(b.close) for b in run.bars]),
            "equity": np.array([float(v) for v in series.equity]),
            "held": np.array([float(v) for v in series.buy_and_hold]),
            "drawdown": -series.drawdown,
        }
    )
    common: dict[str, Any] = {
        "x_axis_type": "datetime",
        "sizing_mode": "stretch_width",
        "tools": "xpan,xwheel_zoom,box_zoom,reset,save",
        "active_scroll": "xwheel_zoom",
    }
    moment = ("time", "@time{%F %H:%M}")
    on_time: dict[str, Any] = {"@time": "datetime"}

    price = figure(title=f"{title}: price, entries and exits", height=320, **common)
    price.line("time", "close", source=per_bar, color="#555555", legend_label="close")
    # Entries and exits at their fills: the open of the bar after the signal, at the fill price.
    price.add_tools(
        HoverTool(tooltips=[moment, ("close", "@close")], formatters=on_time, mode="vline")
    )
    trades = run.result.trades
    for side, marker, color in (
        ("long", "triangle", "#2ca02c"),
        ("short", "inverted_triangle", "#d62728"),
    ):
        chosen = [t for t in trades if t.side == side]
        if chosen:
            price.scatter(
                [t.entry_time.timestamp() * 1000 for t in chosen],
                [float(t.entry_price) for t in chosen],
                marker=marker, size=10, color=color, legend_label=f"{side} entry",
            )  # fmt: skip
    exits = [t for t in trades if t.exit_time is not None and t.exit_price is not None]
    if exits:
        price.scatter(
            [t.exit_time.timestamp() * 1000 for t in exits if t.exit_time is not None],
            [float(t.exit_price) for t in exits if t.exit_price is not None],
            marker="x", size=10, line_width=2, color="#1f77b4", legend_label="exit",
        )  # fmt: skip
    price.legend.location = "top_left"
    price.legend.click_policy = "hide"

    equity = figure(title="equity", height=260, x_range=price.x_range, **common)
    equity.line("time", "equity", source=per_bar, color="#1f77b4", legend_label=run.strategy)
    equity.line("time", "held", source=per_bar, color="#ff7f0e", legend_label="buy and hold")
    equity.add_tools(
        HoverTool(
            tooltips=[moment, ("equity", "@equity{0,0.00}"), ("buy and hold", "@held{0,0.00}")],
            formatters=on_time,
            mode="vline",
        )
    )
    equity.legend.location = "top_left"
    equity.legend.click_policy = "hide"

    drawdown = figure(title="drawdown", height=180, x_range=price.x_range, **common)
    drawdown.varea(x="time", y1="drawdown", y2=0, source=per_bar, color="#d62728", alpha=0.4)
    drawdown.yaxis.formatter = NumeralTickFormatter(format="0 %")
    drawdown.add_tools(
        HoverTool(
            tooltips=[moment, ("drawdown", "@drawdown{0.00 %}")], formatters=on_time, mode="vline"
        )
    )

    heading = Div(
        text=f"<h1>{html.escape(title)}</h1><p>{html.escape(_setting(run))}</p>",
        sizing_mode="stretch_width",
    )
    table = Div(text=_stats_html(run), sizing_mode="stretch_width")
    layout = column(heading, price, equity, drawdown, table, sizing_mode="stretch_width")
    path.write_text(file_html(layout, resources=INLINE, title=title), encoding="utf-8")


def _setting(run: BacktestRun) -> str:
    params = ", ".join(f"{k}={v}" for k, v in run.params.items())
    sizing = run.sizing
    return (
        f"{run.strategy}({params}) on {run.data.name}, {len(run.bars)} bars of "
        f"{run.timeframe.label}{' (inferred)' if run.inferred else ''}; cash {run.cash}"
        f"{' ' + run.currency if run.currency else ''}; sizing {sizing.kind}:{sizing.value} "
        f"in steps of {sizing.step}; fees {run.fills.fee_bps} bps, slippage "
        f"{run.fills.slippage_bps} bps."
    )


def _stats_html(run: BacktestRun) -> str:
    rows = "".join(
        f"<tr><th style='text-align:left;padding-right:2em'>{html.escape(name)}</th>"
        f"<td style='text-align:right'>{html.escape(value)}</td></tr>"
        for name, value in stats_rows(run)
    )
    return f"<h2>statistics</h2><table class='stats'>{rows}</table>"
