"""What the backtests' pure tests share: a valid backtest request as JSON data, and daily bars
that make an SMA cross trade both ways."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from trademesh_events.marketdata import Bar

INSTRUMENT = "test:ABC/USD"


@pytest.fixture
def backtest() -> dict[str, Any]:
    """A valid BacktestRequest's data (tests `|` their changes onto it)."""
    return {
        "strategy": "sma_cross",
        "params": {"fast": 3, "slow": 8},
        "instrument_id": INSTRUMENT,
        "timeframe": "1d",
        "start": "2024-01-01T00:00:00Z",
        "end": "2024-06-01T00:00:00Z",
    }


def _daily_bars(count: int = 120) -> list[Bar]:
    made: list[Bar] = []
    day = datetime(2024, 1, 1, tzinfo=UTC)
    previous = Decimal(100)
    for n in range(count):
        close = Decimal(str(round(100 + 12 * math.sin(n / 6) + n * 0.1, 2)))
        opening = previous
        made.append(
            Bar(
                instrument_id=INSTRUMENT,
                timeframe="1d",
                open_time=day + timedelta(days=n),
                close_time=day + timedelta(days=n + 1),
                open=opening,
                high=max(opening, close) + Decimal("0.5"),
                low=min(opening, close) - Decimal("0.5"),
                close=close,
                volume=Decimal(1000 + n),
            )
        )
        previous = close
    return made


@pytest.fixture
def daily_bars() -> Callable[..., list[Bar]]:
    """`daily_bars(count=120)`: daily bars of INSTRUMENT from 2024-01-01 whose closes swing (a
    sine with a drift), so an SMA cross trades both ways."""
    return _daily_bars
