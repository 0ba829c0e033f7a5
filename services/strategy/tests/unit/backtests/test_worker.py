"""What the backtest workers (and the optimisation worker, through them) make of market-data's
answers when they fetch a range's bars: the bars, fetched once; or BarsUnavailable saying
whether a later attempt may have them. market-data is httpx's in-memory transport here."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from trademesh_db import Database
from trademesh_events.marketdata import Bar
from trademesh_trading.registry import StrategyRegistry

from trademesh_strategy.backtests.bars import BarsUnavailable
from trademesh_strategy.backtests.requests import BacktestRequest
from trademesh_strategy.backtests.store import BacktestStore
from trademesh_strategy.backtests.worker import BacktestWorker
from trademesh_strategy.config import Settings
from trademesh_strategy.history import MarketData

pytestmark = pytest.mark.unit

Answer = Callable[[httpx.Request], httpx.Response]


class Market:
    """market-data's /ohlcv as `answer` gives it; counts the requests."""

    def __init__(self) -> None:
        self.requests = 0
        self.answer: Answer = lambda _request: httpx.Response(503)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        return self.answer(request)


@pytest.fixture
def market() -> Market:
    return Market()


@pytest.fixture
async def worker(market: Market) -> AsyncIterator[BacktestWorker]:
    """A worker whose market-data is `market`; its database is never connected (fetching the
    bars does not touch it)."""
    client = MarketData("http://market-data", transport=httpx.MockTransport(market))
    db = Database("postgresql://nowhere/none", schema="strategy")
    yield BacktestWorker(
        db=db,
        store=BacktestStore(db),
        market=client,
        registry=StrategyRegistry(),
        settings=Settings(),
        service="strategy",
    )
    await client.close()


def items(bars: list[Bar]) -> dict[str, Any]:
    return {"items": [bar.model_dump(mode="json") for bar in bars], "next_start": None}


async def test_the_bars_of_a_range_are_fetched_once(
    worker: BacktestWorker,
    market: Market,
    backtest: dict[str, Any],
    daily_bars: Callable[..., list[Bar]],
) -> None:
    stored = daily_bars(30)
    market.answer = lambda _request: httpx.Response(200, json=items(stored))
    request = BacktestRequest.model_validate(backtest)
    got = await worker.fetch_bars(request)
    assert [(b.open_time, b.close) for b in got] == [(b.open_time, b.close) for b in stored]
    other_params = request.model_copy(update={"params": {"fast": 5, "slow": 9}})
    assert await worker.fetch_bars(other_params) is got  # a grid's other combinations
    assert market.requests == 1
    later = request.model_copy(update={"end": datetime(2024, 7, 1, tzinfo=UTC)})
    await worker.fetch_bars(later)
    assert market.requests == 2  # another range


@pytest.mark.parametrize(
    ("answer", "retry", "reason"),
    [
        (httpx.Response(503), True, "market data unavailable: market-data answered 503"),
        (
            httpx.Response(404, json={"title": "Unknown instrument"}),
            False,
            "no market data: market-data has no instrument 'test:ABC/USD'",
        ),
        (
            httpx.Response(422, json={"detail": "timeframe 1d is not stored"}),
            False,
            "no market data: timeframe 1d is not stored",
        ),
        (
            httpx.Response(200, json={"rows": []}),
            True,
            "fetching the bars failed: KeyError: 'items'",
        ),
    ],
)
async def test_what_market_data_answers_says_whether_to_try_again(
    worker: BacktestWorker,
    market: Market,
    backtest: dict[str, Any],
    answer: httpx.Response,
    retry: bool,
    reason: str,
) -> None:
    market.answer = lambda _request: answer
    request = BacktestRequest.model_validate(backtest)
    with pytest.raises(BarsUnavailable) as raised:
        await worker.fetch_bars(request)
    assert (str(raised.value), raised.value.retry) == (reason, retry)
    # A failed fetch is not kept: the next attempt asks market-data again.
    with pytest.raises(BarsUnavailable):
        await worker.fetch_bars(request)
    assert market.requests == 2


async def test_market_data_out_of_reach_is_worth_another_attempt(
    worker: BacktestWorker, market: Market, backtest: dict[str, Any]
) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    market.answer = refuse
    with pytest.raises(BarsUnavailable) as raised:
        await worker.fetch_bars(BacktestRequest.model_validate(backtest))
    assert raised.value.retry
    assert str(raised.value) == (
        "market data unavailable: market-data: ConnectError: connection refused"
    )
