"""The incremental indicators give TA-Lib's values on a real price series (after warm-up)."""

from __future__ import annotations

import numpy as np
import pytest
import talib
from trademesh_trading.indicators import Bollinger, Donchian, Rsi, Sma

pytestmark = pytest.mark.unit


def _close_enough(ours: list[float | None], theirs: np.ndarray, start: int) -> None:
    for i in range(start, len(theirs)):
        assert ours[i] == pytest.approx(theirs[i], rel=1e-9, abs=1e-9), i


def test_rsi_is_wilders_rsi_as_ta_lib_computes_it(
    goog_closes: list[tuple[float, float, float]],
) -> None:
    closes = [c for _, _, c in goog_closes]
    rsi = Rsi(14)
    ours = [rsi.update(c) for c in closes]
    assert ours[13] is None and ours[14] is not None
    _close_enough(ours, talib.RSI(np.array(closes), 14), 14)


@pytest.mark.parametrize("period", [10, 20, 50])
def test_sma(goog_closes: list[tuple[float, float, float]], period: int) -> None:
    closes = [c for _, _, c in goog_closes]
    sma = Sma(period)
    ours = [sma.update(c) for c in closes]
    _close_enough(ours, talib.SMA(np.array(closes), period), period - 1)


def test_bollinger_bands(goog_closes: list[tuple[float, float, float]]) -> None:
    closes = [c for _, _, c in goog_closes]
    bands = Bollinger(20, 2.0)
    ours = [bands.update(c) for c in closes]
    upper, middle, lower = talib.BBANDS(np.array(closes), 20, 2.0, 2.0)
    _close_enough([b.upper if b else None for b in ours], upper, 19)
    _close_enough([b.middle if b else None for b in ours], middle, 19)
    _close_enough([b.lower if b else None for b in ours], lower, 19)


def test_donchian_channel(goog_closes: list[tuple[float, float, float]]) -> None:
    highs = np.array([h for h, _, _ in goog_closes])
    lows = np.array([lo for _, lo, _ in goog_closes])
    channel = Donchian(20)
    ours = [channel.update(h, lo, c) for h, lo, c in goog_closes]
    _close_enough([b.upper if b else None for b in ours], talib.MAX(highs, 20), 19)
    _close_enough([b.lower if b else None for b in ours], talib.MIN(lows, 20), 19)


def test_memory_stays_bounded_over_a_long_run() -> None:
    rsi = Rsi(14)
    for n in range(50_000):
        rsi.update(100 + (n % 13))
    assert len(rsi._indicator.input_values) < 300
