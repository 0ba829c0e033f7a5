"""Backtest speed: SMA crossover (10, 20) over the GOOG daily fixture repeated to >= 1M bars, and
the same backtest in the `backtesting` package (PyPI) in the same run.

Both sides are configured alike, as that package's README strategy is: long on a cross up and
short on a cross down (close and reverse), market orders filled at the next bar's open, all
available equity in whole units, no commission; trademesh's account may short, with buying power
to spare (that package checks none). `backtesting` is AGPL: it is only run here, as
a benchmark dependency; none of its code is used by trademesh.

same_trades compares the round trips (direction, entry and exit bar) of both on the unrepeated
fixture. Sizes may differ: that package sizes at the fill price, trademesh at the signal close.

Last line: BENCH backtest_speed bars_per_s=... ratio=... same_trades=true|false
(targets: >= 200k bars/s and ratio >= 5, same trades)
"""

from __future__ import annotations

import time
import warnings
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from trademesh_events.marketdata import Bar
from trademesh_trading.backtest import Backtester, BacktestResult, Sizing
from trademesh_trading.builtin import SmaCross, SmaCrossConfig
from trademesh_trading.buying_power import AccountTerms, MarginMode
from trademesh_trading.files import load_bars

GOOG = (
    Path(__file__).resolve().parents[1]
    / "services/market-data/src/trademesh_market_data/data/GOOG.csv"
)
TARGET_BARS = 1_000_000


def repeated(bars: list[Bar], count: int) -> list[Bar]:
    """The series played again and again, each copy shifted after the last (time moves on)."""
    span = bars[-1].close_time - bars[0].open_time + timedelta(days=1)
    out: list[Bar] = []
    for n in range(count):
        shift = span * n
        out += [
            b.model_copy(
                update={"open_time": b.open_time + shift, "close_time": b.close_time + shift}
            )
            for b in bars
        ]
    return out


def ours(bars: list[Bar]) -> BacktestResult:
    strategy = SmaCross(SmaCrossConfig(fast=10, slow=20, short=True))
    return Backtester(
        strategy,
        instrument_id="file:GOOG",
        timeframe="1d",
        cash=Decimal(10_000),
        sizing=Sizing(kind="equity_pct", value=Decimal(100), step=Decimal(1)),
        # Close and reverse, as that package does it: a short allowed, and headroom in buying
        # power so that the rule never binds (sizing still puts 100 % of equity in each trade).
        # A cash account refuses the first short, and at leverage 1 the market order's collar
        # refuses a reversal after a loss: the trades would then differ for that reason alone.
        terms=AccountTerms(MarginMode.MARGIN, Decimal(2), allow_short=True),
    ).run(bars)


def theirs(path: Path, repeat: int = 1) -> tuple[float, list[tuple[str, int, int]]]:
    import pandas as pd
    from backtesting import Backtest, Strategy
    from backtesting.lib import crossover
    from backtesting.test import SMA

    frame = pd.read_csv(path, index_col=0, parse_dates=True)
    frame.columns = [c.capitalize() for c in frame.columns]
    if repeat > 1:
        span = frame.index[-1] - frame.index[0] + pd.Timedelta(days=1)
        frame = pd.concat([frame.set_index(frame.index + span * n) for n in range(repeat)])

    class SmaCrossTheirs(Strategy):  # the package README's strategy
        def init(self) -> None:
            self.sma1 = self.I(SMA, self.data.Close, 10)
            self.sma2 = self.I(SMA, self.data.Close, 20)

        def next(self) -> None:
            if crossover(self.sma1, self.sma2):
                self.position.close()
                self.buy()
            elif crossover(self.sma2, self.sma1):
                self.position.close()
                self.sell()

    backtest = Backtest(frame, SmaCrossTheirs, cash=10_000, commission=0, finalize_trades=True)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stats = backtest.run()
    elapsed = time.perf_counter() - started
    trades = stats["_trades"]
    return elapsed, [
        ("long" if size > 0 else "short", int(entry), int(exit_))
        for size, entry, exit_ in zip(
            trades["Size"], trades["EntryBar"], trades["ExitBar"], strict=True
        )
    ]


def main() -> None:
    bars, refused = load_bars(GOOG, "file:GOOG", "1d", timedelta(days=1))
    assert not refused, refused
    index = {b.open_time: i for i, b in enumerate(bars)}
    small = ours(bars)
    mine = [
        (t.side, index[t.entry_time], index[t.exit_time] if t.exit_time else len(bars) - 1)
        for t in small.trades
    ]
    _, other = theirs(GOOG)
    same = mine == other
    copies = -(-TARGET_BARS // len(bars))
    big = repeated(bars, copies)
    started = time.perf_counter()
    ours(big)
    elapsed = time.perf_counter() - started
    bars_per_s = len(big) / elapsed
    # The package is timed on a tenth of the bars (it is much slower); rates are per bar.
    their_copies = max(1, copies // 10)
    their_elapsed, _ = theirs(GOOG, their_copies)
    their_per_s = their_copies * len(bars) / their_elapsed
    print(f"trademesh: {len(big):,} bars in {elapsed:.2f}s = {bars_per_s:,.0f} bars/s")
    print(
        f"backtesting: {their_copies * len(bars):,} bars in {their_elapsed:.2f}s = {their_per_s:,.0f} bars/s"
    )
    print(f"round trips on the fixture: trademesh {len(mine)}, backtesting {len(other)}")
    if not same:
        diff = next((i for i, (a, b) in enumerate(zip(mine, other, strict=False)) if a != b), None)
        print(
            f"first difference at trade {diff}: {mine[diff] if diff is not None else None} vs "
            f"{other[diff] if diff is not None else None}"
        )
    print(
        f"BENCH backtest_speed bars_per_s={bars_per_s:.0f} ratio={bars_per_s / their_per_s:.1f} "
        f"same_trades={str(same).lower()}"
    )


if __name__ == "__main__":
    main()
