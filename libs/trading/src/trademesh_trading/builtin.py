"""The built-in strategies. Each docstring states its rules exactly; sizes come from the bot."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Self

import numpy as np
import talib
from pydantic import Field, model_validator
from trademesh_events.marketdata import Bar

from trademesh_trading.indicators import (
    Band,
    Bollinger,
    Donchian,
    Rsi,
    Sma,
    batch_bands,
)
from trademesh_trading.strategy import (
    Context,
    Strategy,
    StrategyConfig,
    close_of,
    float_closes,
)

ZERO = Decimal(0)


class RsiCrossConfig(StrategyConfig):
    period: int = Field(14, ge=2, le=500, description="RSI period (Wilder's smoothing).")
    oversold: float = Field(30.0, gt=0, lt=100, description="Buy when RSI crosses up through it.")
    overbought: float = Field(
        70.0, gt=0, lt=100, description="Sell when RSI crosses down through it."
    )

    @model_validator(mode="after")
    def _levels(self) -> Self:
        if self.oversold >= self.overbought:
            raise ValueError("oversold must be below overbought")
        return self


class RsiCross(Strategy[RsiCrossConfig]):
    """RSI cross, long only.

    On each final bar, with RSI(period) of the closes (Wilder's) and its previous value:
    - flat and RSI crosses *up* through `oversold` (previous < oversold <= current): buy the
      bot's order size;
    - long and RSI crosses *down* through `overbought` (previous > overbought >= current): sell
      the whole position.
    Nothing happens before RSI has a previous value (period + 2 bars).
    """

    name = "rsi_cross"
    config_class = RsiCrossConfig

    def __init__(self, config: RsiCrossConfig) -> None:
        super().__init__(config)
        self.rsi = Rsi(config.period)
        self.previous: float | None = None
        self.signals: list[int] | None = None  # prepared: +1 crossed up, -1 crossed down
        self.active: list[int] | None = None  # prepared: the bars with a signal

    def warmup(self) -> int:
        return self.config.period * 10  # Wilder's smoothing converges slowly

    def prepare(self, bars: Sequence[Bar]) -> None:
        c = self.config
        rsi = talib.RSI(_closes(bars), c.period)
        up = _crossed(rsi, lambda prev, cur: (prev < c.oversold) & (c.oversold <= cur))
        down = _crossed(rsi, lambda prev, cur: (prev > c.overbought) & (c.overbought >= cur))
        self.signals, self.active = _signals(up, down)

    def active_bars(self) -> list[int] | None:
        return self.active

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        if self.signals is not None:
            signal = self.signals[ctx.bar_index]
        else:
            value = self.rsi.update(close_of(bar))
            previous, self.previous = self.previous, value
            if value is None or previous is None:
                return
            c = self.config
            signal = (
                1
                if previous < c.oversold <= value
                else -1
                if previous > c.overbought >= value
                else 0
            )
        if signal > 0 and ctx.position == ZERO:
            ctx.target_position(ctx.order_size())
        elif signal < 0 and ctx.position > ZERO:
            ctx.target_position(ZERO)


class SmaCrossConfig(StrategyConfig):
    fast: int = Field(10, ge=1, le=1000, description="Fast SMA period.")
    slow: int = Field(20, ge=2, le=5000, description="Slow SMA period.")
    short: bool = Field(False, description="Go short on a cross down instead of flat.")

    @model_validator(mode="after")
    def _periods(self) -> Self:
        if self.fast >= self.slow:
            raise ValueError("fast must be shorter than slow")
        return self


class SmaCross(Strategy[SmaCrossConfig]):
    """Moving-average crossover, long only unless `short`.

    With SMA(fast) and SMA(slow) of the closes, on each final bar where both exist now and on
    the previous bar:
    - fast crosses *above* slow (previous fast <= previous slow, current fast > current slow):
      hold +order size (closing a short first);
    - fast crosses *below* slow (previous fast >= previous slow, current fast < current slow):
      hold -order size when `short`, else nothing (flat).
    """

    name = "sma_cross"
    config_class = SmaCrossConfig

    def __init__(self, config: SmaCrossConfig) -> None:
        super().__init__(config)
        self.fast, self.slow = Sma(config.fast), Sma(config.slow)
        self.previous: tuple[float, float] | None = None
        self.signals: list[int] | None = None  # prepared: +1 crossed above, -1 crossed below
        self.active: list[int] | None = None  # prepared: the bars with a signal

    def warmup(self) -> int:
        return self.config.slow + 1

    def prepare(self, bars: Sequence[Bar]) -> None:
        closes = _closes(bars)
        fast = talib.SMA(closes, self.config.fast)
        slow = talib.SMA(closes, self.config.slow)
        gap = fast - slow  # NaN until both exist: every comparison with it is False
        above = _crossed(gap, lambda prev, cur: (prev <= 0) & (cur > 0))
        below = _crossed(gap, lambda prev, cur: (prev >= 0) & (cur < 0))
        self.signals, self.active = _signals(above, below)

    def active_bars(self) -> list[int] | None:
        return self.active

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        if self.signals is not None:
            signal = self.signals[ctx.bar_index]
        else:
            close = close_of(bar)
            fast, slow = self.fast.update(close), self.slow.update(close)
            if fast is None or slow is None:
                return
            previous, self.previous = self.previous, (fast, slow)
            if previous is None:
                return
            if previous[0] <= previous[1] and fast > slow:
                signal = 1
            elif previous[0] >= previous[1] and fast < slow:
                signal = -1
            else:
                return
        if signal > 0:
            ctx.target_position(ctx.order_size())
        elif signal < 0:
            ctx.target_position(-ctx.order_size() if self.config.short else ZERO)


class BollingerReversionConfig(StrategyConfig):
    period: int = Field(20, ge=2, le=1000, description="Band period (SMA and deviation).")
    k: float = Field(2.0, gt=0, le=10, description="Band width in standard deviations.")
    short: bool = Field(False, description="Also sell above the upper band.")


class BollingerReversion(Strategy[BollingerReversionConfig]):
    """Bollinger-band mean reversion, long only unless `short`.

    With the bands of the closes (SMA(period) ± k population standard deviations), on each
    final bar:
    - flat and close < lower band: buy the order size;
    - long and close >= middle band: sell the whole position;
    - when `short`: flat and close > upper band: sell short the order size; short and
      close <= middle band: buy it back.
    """

    name = "bollinger_reversion"
    config_class = BollingerReversionConfig

    def __init__(self, config: BollingerReversionConfig) -> None:
        super().__init__(config)
        self.bands = Bollinger(config.period, config.k)

    def warmup(self) -> int:
        return self.config.period

    def prepare(self, bars: Sequence[Bar]) -> None:
        c = self.config
        upper, middle, lower = talib.BBANDS(_closes(bars), c.period, c.k, c.k)
        self.bands.preload(batch_bands(lower, middle, upper))

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        close = close_of(bar)
        band = self.bands.update(close)
        if band is None:
            return
        held = ctx.position
        if held == ZERO:
            if close < band.lower:
                ctx.target_position(ctx.order_size())
            elif self.config.short and close > band.upper:
                ctx.target_position(-ctx.order_size())
        elif (held > ZERO and close >= band.middle) or (held < ZERO and close <= band.middle):
            ctx.target_position(ZERO)


class DonchianBreakoutConfig(StrategyConfig):
    period: int = Field(20, ge=2, le=1000, description="Channel length in bars.")
    short: bool = Field(False, description="Go short on a break down instead of flat.")


class DonchianBreakout(Strategy[DonchianBreakoutConfig]):
    """Donchian channel breakout, long only unless `short`.

    The channel is the highest high and the lowest low of the `period` bars *before* the
    current one. On each final bar:
    - close > that highest high: hold +order size (closing a short first);
    - close < that lowest low: hold -order size when `short`, else flat.
    """

    name = "donchian_breakout"
    config_class = DonchianBreakoutConfig

    def __init__(self, config: DonchianBreakoutConfig) -> None:
        super().__init__(config)
        self.channel = Donchian(config.period)
        self.previous: Band | None = None  # the channel up to the previous bar

    def warmup(self) -> int:
        return self.config.period + 1

    def prepare(self, bars: Sequence[Bar]) -> None:
        highs = np.array([float(b.high) for b in bars])
        lows = np.array([float(b.low) for b in bars])
        upper = talib.MAX(highs, self.config.period)
        lower = talib.MIN(lows, self.config.period)
        self.channel.preload(batch_bands(lower, (upper + lower) / 2, upper))

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        channel, current = (
            self.previous,
            self.channel.update(float(bar.high), float(bar.low), close_of(bar)),
        )
        self.previous = current
        if channel is None:
            return
        close = close_of(bar)
        if close > channel.upper and ctx.position <= ZERO:
            ctx.target_position(ctx.order_size())
        elif close < channel.lower and ctx.position >= ZERO:
            target = -ctx.order_size() if self.config.short else ZERO
            if ctx.position != target:
                ctx.target_position(target)


def _closes(bars: Sequence[Bar]) -> np.ndarray:
    return float_closes(bars)


def _crossed(values: np.ndarray, rule: Any) -> np.ndarray:
    """rule(previous, current) for every bar with a previous value (False for the first; NaN
    compares False, so warm-up bars never signal)."""
    out = np.zeros(len(values), dtype=bool)
    if len(values) > 1:
        out[1:] = rule(values[:-1], values[1:])
    return out


def _signals(up: np.ndarray, down: np.ndarray) -> tuple[list[int], list[int]]:
    """Per bar +1 (up), -1 (down) or 0, and the bars with a signal: both from the arrays (a
    million-bar list back into an array costs more than the rest of prepare())."""
    signals = up.astype(np.int8) - down.astype(np.int8)
    active: list[int] = np.flatnonzero(signals).tolist()
    return signals.tolist(), active


BUILTIN: tuple[type[Strategy], ...] = (  # type: ignore[type-arg]
    RsiCross,
    SmaCross,
    BollingerReversion,
    DonchianBreakout,
)
