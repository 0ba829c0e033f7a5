"""Incremental indicators (O(1) per bar) on talipp, with bounded memory; values equal TA-Lib's.

talipp keeps every value it computed; a bot runs for months, so each wrapper drops what it no
longer needs. Indicators work in floats: they describe prices, they are not money (orders and
positions stay Decimal).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from talipp.indicators import BB, RSI, SMA, DonchianChannels
from talipp.ohlcv import OHLCV

_KEEP = 64  # values kept beyond what the indicator needs, before trimming in one go


class _Bounded:
    """Trims a talipp indicator's stored values (and its input) now and then.

    A backtest knows every bar in advance: `preload(values)` hands the indicator the series
    TA-Lib computed in one batch (equal to talipp's, as the tests check), and each update then
    returns the next value instead of computing it. A live bot never preloads.
    """

    def __init__(self, indicator: Any, need: int) -> None:
        self._indicator = indicator
        self._need = need
        self._preloaded: list[Any] | None = None
        self._next = 0

    def preload(self, values: list[Any]) -> None:
        self._preloaded, self._next = values, 0

    def _step(self, value: Any, convert: Callable[[Any], Any]) -> Any:
        """Add one input; the new output (None during warm-up), converted to our type."""
        if self._preloaded is not None:
            out = self._preloaded[self._next]  # already converted by batch()/batch_bands()
            self._next += 1
            return out
        self._indicator.add(value)
        out = self._indicator[-1]
        excess = len(self._indicator.input_values) - self._need - _KEEP
        if excess > _KEEP:
            self._indicator.purge_oldest(excess)
        return None if out is None else convert(out)


class Rsi(_Bounded):
    """Wilder's RSI (TA-Lib's RSI): None until `period` + 1 closes were seen."""

    def __init__(self, period: int = 14) -> None:
        super().__init__(RSI(period), period + 1)

    def update(self, close: float) -> float | None:
        return self._step(close, float)  # type: ignore[no-any-return]


class Sma(_Bounded):
    def __init__(self, period: int) -> None:
        super().__init__(SMA(period), period)

    def update(self, close: float) -> float | None:
        return self._step(close, float)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Band:
    lower: float
    middle: float
    upper: float


class Bollinger(_Bounded):
    """Bollinger bands: SMA(period) ± k population standard deviations (TA-Lib's BBANDS)."""

    def __init__(self, period: int = 20, k: float = 2.0) -> None:
        super().__init__(BB(period, k), period)

    def update(self, close: float) -> Band | None:
        return self._step(close, _band)  # type: ignore[no-any-return]


class Donchian(_Bounded):
    """Highest high and lowest low of the last `period` bars, this one included."""

    def __init__(self, period: int = 20) -> None:
        super().__init__(DonchianChannels(period), period)

    def update(self, high: float, low: float, close: float) -> Band | None:
        return self._step(OHLCV(None, high, low, close, None), _band)  # type: ignore[no-any-return]


def _band(value: Any) -> Band:
    return Band(value.lb, value.cb, value.ub)


def batch(values: Any) -> list[Any]:
    """A TA-Lib output array as a preload list: floats, None during the warm-up (NaN)."""
    return [None if v != v else float(v) for v in values]  # NaN is the only value != itself


def batch_bands(lower: Any, middle: Any, upper: Any) -> list[Band | None]:
    return [
        None if m != m else Band(float(lo), float(m), float(up))
        for lo, m, up in zip(lower, middle, upper, strict=True)
    ]
