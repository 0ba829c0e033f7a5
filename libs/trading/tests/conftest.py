"""A FakeContext that fills every order at once, and bars from plain numbers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from trademesh_events.marketdata import Bar

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def bar(n: int, close: float, high: float | None = None, low: float | None = None) -> Bar:
    c = Decimal(str(close))
    h = Decimal(str(high)) if high is not None else c
    lo = Decimal(str(low)) if low is not None else c
    return Bar(
        instrument_id="test:X/USD",
        timeframe="1d",
        open_time=T0 + timedelta(days=n),
        close_time=T0 + timedelta(days=n + 1),
        open=c,
        high=max(h, c),
        low=min(lo, c),
        close=c,
        volume=Decimal(1),
    )


class FakeContext:
    """Fills every order immediately at the bar's close; records what the strategy asked."""

    instrument_id = "test:X/USD"
    timeframe = "1d"

    def __init__(self, size: Decimal = Decimal(10)) -> None:
        self.size = size
        self.position = Decimal(0)
        self.cash = Decimal(10_000)
        self.history: list[Bar] = []
        self.targets: list[tuple[int, Decimal]] = []
        self.cancelled: list[str] = []

    @property
    def equity(self) -> Decimal:
        return self.cash + self.position * (self.history[-1].close if self.history else 0)

    @property
    def bars(self) -> Sequence[Bar]:
        return self.history

    @property
    def bar_index(self) -> int:
        return len(self.history) - 1

    def now(self) -> datetime:
        return self.history[-1].close_time

    def order_size(self) -> Decimal:
        return self.size

    def submit_order(self, side: str, quantity: Decimal, **_: object) -> str:
        signed = quantity if side == "buy" else -quantity
        return self.target_position(self.position + signed) or "order-none"

    def cancel_order(self, client_order_id: str) -> None:
        self.cancelled.append(client_order_id)  # orders fill at once: nothing to take back

    def target_position(self, quantity: Decimal, *, leg: str = "main") -> str | None:
        if quantity == self.position:
            return None
        self.targets.append((len(self.history) - 1, quantity))
        self.cash -= (quantity - self.position) * self.history[-1].close
        self.position = quantity
        return f"order-{len(self.targets)}"


def run(strategy: object, bars: list[Bar], ctx: FakeContext | None = None) -> FakeContext:
    ctx = ctx or FakeContext()
    strategy.on_start(ctx)  # type: ignore[attr-defined]
    for b in bars:
        ctx.history.append(b)
        strategy.on_bar(ctx, b)  # type: ignore[attr-defined]
    return ctx


@pytest.fixture
def goog_closes() -> list[tuple[float, float, float]]:
    """(high, low, close) of the real GOOG daily series the market-data service ships."""
    import csv
    from pathlib import Path

    path = (
        Path(__file__).resolve().parents[3]
        / "services/market-data/src/trademesh_market_data/data/GOOG.csv"
    )
    with path.open(newline="") as handle:
        return [
            (float(r["High"]), float(r["Low"]), float(r["Close"])) for r in csv.DictReader(handle)
        ]


@pytest.fixture(scope="session")
def goog_bars() -> list[Bar]:
    """The real GOOG daily series as bars."""
    from pathlib import Path

    from trademesh_trading.files import load_bars

    path = (
        Path(__file__).resolve().parents[3]
        / "services/market-data/src/trademesh_market_data/data/GOOG.csv"
    )
    bars, refused = load_bars(path, "file:GOOG", "1d", timedelta(days=1))
    assert not refused
    return bars
