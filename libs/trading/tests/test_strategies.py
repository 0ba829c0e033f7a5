"""Each built-in strategy's signals on a small series checked by hand (values in the comments)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError
from trademesh_trading.builtin import (
    BollingerReversion,
    BollingerReversionConfig,
    DonchianBreakout,
    DonchianBreakoutConfig,
    RsiCross,
    RsiCrossConfig,
    SmaCross,
    SmaCrossConfig,
)
from trademesh_trading.indicators import Rsi

from .conftest import bar, run

pytestmark = pytest.mark.unit

TEN = Decimal(10)


def test_rsi_of_a_small_series_by_hand() -> None:
    # period 2, Wilder: the first averages are plain means of the first two changes, then
    # avg = (avg * 1 + change) / 2.  Changes: -1 -1 -1 +1 +1 +1 +1 -1.
    #   index 2: gain 0, loss 1 -> RSI 0;  3: 0/1 -> 0;  4: 0.5/0.5 -> 50;  5: 0.75/0.25 -> 75
    #   6: 0.875/0.125 -> 87.5;  7: 0.9375/0.0625 -> 93.75;  8: 0.46875/0.53125 -> 46.875
    rsi = Rsi(2)
    values = [rsi.update(c) for c in [10, 9, 8, 7, 8, 9, 10, 11, 10]]
    assert values[:2] == [None, None]
    assert values[2:] == pytest.approx([0, 0, 50, 75, 87.5, 93.75, 46.875])


def test_rsi_cross_buys_up_through_oversold_and_sells_down_through_overbought() -> None:
    strategy = RsiCross(RsiCrossConfig(period=2, oversold=30, overbought=70))
    ctx = run(strategy, [bar(i, c) for i, c in enumerate([10, 9, 8, 7, 8, 9, 10, 11, 10, 9])])
    # RSI 0 -> 50 at index 4 (up through 30): buy; 93.75 -> 46.875 at 8 (down through 70): sell
    assert ctx.targets == [(4, TEN), (8, Decimal(0))]


def test_sma_cross_long_on_cross_up_flat_or_short_on_cross_down() -> None:
    # closes   5   4   3    4     5    6    5     4    3
    # SMA2     -  4.5 3.5  3.5   4.5  5.5  5.5   4.5  3.5
    # SMA3     -   -   4  3.67    4    5  5.33    5    4
    # up at 4 (3.5 <= 3.67, then 4.5 > 4); down at 7 (5.5 >= 5.33, then 4.5 < 5)
    closes = [5, 4, 3, 4, 5, 6, 5, 4, 3]
    flat = run(SmaCross(SmaCrossConfig(fast=2, slow=3)), [bar(i, c) for i, c in enumerate(closes)])
    assert flat.targets == [(4, TEN), (7, Decimal(0))]
    short = run(
        SmaCross(SmaCrossConfig(fast=2, slow=3, short=True)),
        [bar(i, c) for i, c in enumerate(closes)],
    )
    assert short.targets == [(4, TEN), (7, -TEN)]


def test_bollinger_reversion() -> None:
    # period 3, k 1 (population deviation):
    #   index 3: [10 10 7] mean 9, sd 1.414 -> lower 7.586: close 7 below -> buy
    #   index 4: [10 7 10] mean 9: close 10 >= middle -> sell
    #   index 6: [10 11 12] mean 11, sd 0.816 -> upper 11.816: close 12 above -> short (if asked)
    closes = [10, 10, 10, 7, 10, 11, 12]
    bars = [bar(i, c) for i, c in enumerate(closes)]
    assert run(BollingerReversion(BollingerReversionConfig(period=3, k=1)), bars).targets == [
        (3, TEN),
        (4, Decimal(0)),
    ]
    both = run(BollingerReversion(BollingerReversionConfig(period=3, k=1, short=True)), bars)
    assert both.targets == [(3, TEN), (4, Decimal(0)), (6, -TEN)]


def test_donchian_breakout_uses_the_channel_of_the_bars_before() -> None:
    # period 3, high = low = close:
    #   index 3: channel of 5 6 7 -> [5, 7]: close 6 inside
    #   index 4: channel of 6 7 6 -> [6, 7]: close 8 above -> long
    #   index 5: channel of 7 6 8 -> [6, 8]: close 5 below -> flat
    #   index 6, 7: lower breaks again while flat -> nothing
    closes = [5, 6, 7, 6, 8, 5, 4, 3]
    ctx = run(
        DonchianBreakout(DonchianBreakoutConfig(period=3)),
        [bar(i, c) for i, c in enumerate(closes)],
    )
    assert ctx.targets == [(4, TEN), (5, Decimal(0))]


@pytest.mark.parametrize(
    ("config", "parameters"),
    [
        (RsiCrossConfig, {"oversold": 80, "overbought": 70}),
        (RsiCrossConfig, {"period": 1}),
        (SmaCrossConfig, {"fast": 20, "slow": 10}),
        (BollingerReversionConfig, {"k": 0}),
        (DonchianBreakoutConfig, {"period": 20, "extra": True}),
    ],
)
def test_bad_parameters_are_refused(config: type, parameters: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        config.model_validate(parameters)
