"""Backtests through the API on the real Postgres, the real broker and the real market-data app
replaying its GOOG daily fixture: results equal to the library's Backtester on the same bars,
the range a backtest covered beside the range it asked for, a crashed worker's backtest claimed
again, problems for bad submissions (with nothing stored),
callers kept apart, grids run and ranked, and retries while market-data is away.

Each test starts both apps and replays the fixture (a few seconds), and the first backtest of
an app spawns its worker processes (a few more): related checks share a test to keep it short."""

from __future__ import annotations

import asyncio
import math
import socket
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from trademesh_db import Database, migrate
from trademesh_events.marketdata import Bar
from trademesh_testing.marketdata import Replayed, history, replayed
from trademesh_testing.waiting import eventually
from trademesh_trading.backtest import Backtester, BacktestResult
from trademesh_trading.buying_power import AccountTerms
from trademesh_trading.currencies import in_currency, money_in
from trademesh_trading.fills import FillModel
from trademesh_trading.registry import StrategyRegistry

from trademesh_strategy.app import MIGRATIONS
from trademesh_strategy.backtests.requests import BacktestRequest
from trademesh_strategy.backtests.store import BacktestStore
from trademesh_strategy.backtests.worker import BacktestWorker
from trademesh_strategy.config import Settings
from trademesh_strategy.history import MarketData

pytestmark = pytest.mark.integration

Headers = Callable[[uuid.UUID], dict[str, str]]  # the conftest's fixtures
Settled = Callable[..., Awaitable[dict[str, Any]]]
Refused = Callable[[str, dict[str, Any], uuid.UUID], Awaitable[dict[str, Any]]]

START, END = "2006-01-01T00:00:00Z", "2011-01-01T00:00:00Z"  # 1259 of the fixture's 2148 days
QUOTE = "USD"  # the replayed instruments are priced in it (trademesh_testing.marketdata): 2 places
MAX_BARS = 1500
MAX_COMBINATIONS = 8
FLOAT_STATS = (
    "total_return",
    "annual_return",
    "sharpe",
    "sortino",
    "max_drawdown",
    "win_rate",
    "profit_factor",
    "exposure",
)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Limits small enough to be reached by the fixture's bars and a small grid."""
    return settings.model_copy(
        update={"backtest_max_bars": MAX_BARS, "grid_max_combinations": MAX_COMBINATIONS}
    )


@pytest.fixture
async def goog(market: httpx.AsyncClient) -> Replayed:
    """A fresh instrument with the GOOG fixture replayed into it and stored; its bars in range."""
    replay = await replayed(market, START, END)
    assert 1000 < len(replay.bars) <= MAX_BARS
    return replay


# ---- helpers ------------------------------------------------------------------------------------


def body(instrument: str, **overrides: Any) -> dict[str, Any]:
    return {
        "strategy": "sma_cross",
        "params": {"fast": 10, "slow": 30},
        "instrument_id": instrument,
        "timeframe": "1d",
        "start": START,
        "end": END,
    } | overrides


def library(request: dict[str, Any], bars: list[Bar]) -> BacktestResult:
    """The library's Backtester, as a user would run it on the same bars."""
    spec = BacktestRequest.model_validate(request)
    backtester = Backtester(
        StrategyRegistry().create(spec.strategy, spec.params),
        instrument_id=spec.instrument_id,
        timeframe=spec.timeframe,
        cash=spec.cash,
        fill_model=FillModel(slippage_bps=spec.slippage_bps, fee_bps=spec.fee_bps),
        sizing=spec.sizing,
        terms=AccountTerms(spec.margin_mode, spec.max_leverage, spec.allow_short),
    )
    return backtester.run(bars)


def same_float(got: Any, expected: float) -> bool:
    value = float(got)  # non-finite ones come as the strings Infinity / NaN
    return (math.isnan(value) and math.isnan(expected)) or value == expected


def assert_stats(stats: dict[str, Any], expected: BacktestResult) -> None:
    for name in FLOAT_STATS:
        assert same_float(stats[name], getattr(expected.stats, name)), name
    duration = expected.stats.max_drawdown_duration.total_seconds()
    assert stats["max_drawdown_duration"] == duration
    assert stats["trades"] == expected.stats.trades == len(expected.trades)
    # money as the API writes it: rounded to the places of the quote currency, plain
    assert stats["final_equity"] == money_in(expected.stats.final_equity, QUOTE)
    assert stats["refused_orders"] == expected.stats.refused_orders
    assert stats["refused_fills"] == expected.stats.refused_fills


def money(value: Decimal) -> Decimal:
    return in_currency(value, QUOTE)


def trade_rows(trades: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    def moment(text: str | None) -> datetime | None:
        return None if text is None else datetime.fromisoformat(text)

    def number(text: str | None) -> Decimal | None:
        return None if text is None else Decimal(text)

    return [
        (
            t["side"],
            Decimal(t["quantity"]),
            moment(t["entry_time"]),
            Decimal(t["entry_price"]),
            moment(t["exit_time"]),
            number(t["exit_price"]),
            Decimal(t["pnl"]),
            Decimal(t["fees"]),
        )
        for t in trades
    ]


# ---- tests --------------------------------------------------------------------------------------


async def test_a_backtest_runs_to_the_librarys_results_and_outlives_a_crashed_worker(
    client: httpx.AsyncClient,
    db: Database,
    goog: Replayed,
    headers: Headers,
    settled: Settled,
) -> None:
    user, other = uuid.uuid4(), uuid.uuid4()
    request = body(
        goog.instrument,
        params={"fast": 10, "slow": 30, "short": True},
        cash="25000",
        fee_bps="5",
        slippage_bps="2.5",
        sizing={"kind": "equity_pct", "value": "50", "step": "1"},
    )
    response = await client.post("/api/v1/backtests", json=request, headers=headers(user))
    assert response.status_code == 202, response.text
    submitted = response.json()
    backtest_id = submitted["backtest_id"]
    assert response.headers["location"] == f"/api/v1/backtests/{backtest_id}"
    assert submitted["status"] == "QUEUED"
    assert submitted["request"]["params"] == {"fast": 10, "slow": 30, "short": True}

    # Another user sees nothing of it.
    for path in ("", "/trades", "/equity"):
        hidden = await client.get(f"/api/v1/backtests/{backtest_id}{path}", headers=headers(other))
        assert hidden.status_code == 404, path
        assert hidden.headers["content-type"] == "application/problem+json"
    assert (await client.get("/api/v1/backtests", headers=headers(other))).json()["items"] == []

    done = await settled(f"/api/v1/backtests/{backtest_id}", user)
    expected = library(request, goog.bars)
    assert expected.trades, "the range is meant to make the strategy trade"
    assert done["bars"] == len(goog.bars)
    assert datetime.fromisoformat(done["first_bar_at"]) == goog.bars[0].open_time
    assert datetime.fromisoformat(done["last_bar_at"]) == goog.bars[-1].open_time
    assert done["attempts"] == 1 and done["error"] is None
    assert done["started_at"] <= done["finished_at"]
    assert_stats(done["stats"], expected)
    # A cash account that does not allow shorting: the strategy's short entries are refused,
    # and counted, as risk would deny them.
    assert done["stats"]["refused_orders"] > 0

    trades = await client.get(f"/api/v1/backtests/{backtest_id}/trades", headers=headers(user))
    assert trades.status_code == 200
    assert trade_rows(trades.json()) == [
        (
            t.side,
            t.quantity,
            t.entry_time,
            t.entry_price,
            t.exit_time,
            t.exit_price,
            money(t.pnl),
            money(t.fees),
        )
        for t in expected.trades
    ]
    curve = await client.get(f"/api/v1/backtests/{backtest_id}/equity", headers=headers(user))
    assert [(datetime.fromisoformat(t), Decimal(v)) for t, v in curve.json()] == [
        (t, money(v)) for t, v in expected.equity
    ]

    listed = (await client.get("/api/v1/backtests", headers=headers(user))).json()
    assert [item["backtest_id"] for item in listed["items"]] == [backtest_id]
    assert listed["items"][0]["stats"] == done["stats"]

    exported = (await client.get("/metrics")).text
    assert 'trademesh_strategy_backtests_total{service="strategy",status="SUCCEEDED"}' in exported
    assert "trademesh_strategy_backtest_seconds_count" in exported

    # A worker that claimed it and died would leave it RUNNING without results. While its
    # heartbeat is fresh nobody takes it over, and it has no results to show.
    await db.pool.execute(
        "UPDATE backtests SET status = 'RUNNING', heartbeat_at = now(), stats = NULL, "
        "trades = NULL, equity = NULL, finished_at = NULL WHERE backtest_id = $1",
        uuid.UUID(backtest_id),
    )
    early = await client.get(f"/api/v1/backtests/{backtest_id}/equity", headers=headers(user))
    assert early.status_code == 409
    assert early.json()["title"] == "Backtest not succeeded"
    await asyncio.sleep(0.6)  # three polls of the worker
    still = (await client.get(f"/api/v1/backtests/{backtest_id}", headers=headers(user))).json()
    assert (still["status"], still["attempts"]) == ("RUNNING", 1)

    # Its heartbeat goes stale: claimed again, run again, same result.
    await db.pool.execute(
        "UPDATE backtests SET heartbeat_at = now() - interval '5 minutes' WHERE backtest_id = $1",
        uuid.UUID(backtest_id),
    )
    again = await settled(f"/api/v1/backtests/{backtest_id}", user)
    assert again["attempts"] == 2
    assert again["stats"] == done["stats"]
    curve = await client.get(f"/api/v1/backtests/{backtest_id}/equity", headers=headers(user))
    assert [(datetime.fromisoformat(t), Decimal(v)) for t, v in curve.json()] == [
        (t, money(v)) for t, v in expected.equity
    ]


async def test_a_range_wider_than_the_data_states_the_range_it_covered(
    client: httpx.AsyncClient,
    market: httpx.AsyncClient,
    goog: Replayed,
    headers: Headers,
    settled: Settled,
) -> None:
    user = uuid.uuid4()
    start, end = "2003-01-01T00:00:00Z", "2005-03-01T00:00:00Z"  # the fixture starts 2004-08-19
    stored = await history(market, instrument=goog.instrument, timeframe="1d", start=start, end=end)
    first, last = (datetime.fromisoformat(stored[i]["open_time"]) for i in (0, -1))
    assert first > datetime.fromisoformat(start), "the data is meant to start after the range"
    request = body(goog.instrument, start=start, end=end, params={"fast": 5, "slow": 15})
    response = await client.post("/api/v1/backtests", json=request, headers=headers(user))
    assert response.status_code == 202, response.text
    assert response.json()["first_bar_at"] is None  # not known before it has run
    done = await settled(f"/api/v1/backtests/{response.json()['backtest_id']}", user)
    # Beside the range asked, the one covered: its first and last bar.
    assert datetime.fromisoformat(done["request"]["start"]) == datetime.fromisoformat(start)
    assert datetime.fromisoformat(done["first_bar_at"]) == first
    assert datetime.fromisoformat(done["last_bar_at"]) == last
    assert done["bars"] == len(stored)
    assert isinstance(done["stats"]["buy_and_hold_return"], float)
    assert done["stats"]["zero_size_signals"] == 0

    trades = await client.get(
        f"/api/v1/backtests/{done['backtest_id']}/trades", headers=headers(user)
    )
    listed = trades.json()
    assert listed, "the range is meant to make the strategy trade"
    for trade in listed:
        signal, filled = trade["entry_signal_time"], trade["entry_time"]
        assert datetime.fromisoformat(signal) <= datetime.fromisoformat(filled)
        assert trade["open"] is (trade["exit_time"] is None)


async def test_bad_submissions_are_problems_and_store_nothing(
    client: httpx.AsyncClient,
    db: Database,
    goog: Replayed,
    headers: Headers,
    refused: Refused,
) -> None:
    user = uuid.uuid4()

    async def problem(path: str, payload: dict[str, Any]) -> dict[str, Any]:
        return await refused(f"/api/v1/backtests{path}", payload, user)

    empty = await problem("", body(goog.instrument, start="1990-01-01", end="1991-01-01"))
    assert empty["title"] == "Empty range"
    unknown = await problem("", body("nasdaq:NOPE/USD"))
    assert unknown["title"] == "No market data"
    whole = await problem("", body(goog.instrument, start="2004-01-01", end="2014-01-01"))
    assert (whole["title"], whole["max_bars"]) == ("Range too large", MAX_BARS)
    assert whole["bars"] > MAX_BARS
    strategy = await problem("", body(goog.instrument, strategy="astrology"))
    assert strategy["title"] == "Unknown strategy"
    assert "sma_cross" in strategy["detail"]
    params = await problem("", body(goog.instrument, params={"fast": 30, "slow": 10}))
    assert params["title"] == "Invalid parameters"
    assert params["errors"]
    await problem("", body(goog.instrument, user_id=str(uuid.uuid4())))  # owner from the body
    await problem("", body(goog.instrument, end=START))
    await problem("", body(goog.instrument, cash="-1"))
    missing = await client.post("/api/v1/backtests", json=body(goog.instrument))
    assert missing.status_code == 401  # no caller

    grid = body(goog.instrument) | {"grid": {"fast": [5, 30], "slow": [20]}}
    bad_combination = await problem("/grids", grid)
    assert bad_combination["title"] == "Invalid parameters"
    assert bad_combination["params"] == {"fast": 30, "slow": 20}
    assert "Combination 2 of 2" in bad_combination["detail"]
    too_many = await problem("/grids", grid | {"grid": {"fast": [2, 3, 4], "slow": [20, 30, 40]}})
    assert (too_many["title"], too_many["combinations"]) == ("Too many combinations", 9)
    await problem("/grids", grid | {"grid": {"fast": [5], "slow": []}})
    await problem("/grids", grid | {"rank_by": "luck"})
    valid = grid | {"grid": {"fast": [5, 10], "slow": [20]}}
    empty_grid = await problem("/grids", valid | {"start": "1990-01-01", "end": "1991-01-01"})
    assert empty_grid["title"] == "Empty range"
    unknown_grid = await problem("/grids", valid | {"strategy": "astrology"})
    assert unknown_grid["title"] == "Unknown strategy"

    assert (await client.get("/api/v1/backtests", headers=headers(user))).json()["items"] == []
    assert await db.fetchval("SELECT count(*) FROM backtests") == 0
    assert await db.fetchval("SELECT count(*) FROM backtest_grids") == 0
    lost = await client.get(f"/api/v1/backtests/grids/{uuid.uuid4()}", headers=headers(user))
    assert (lost.status_code, lost.json()["title"]) == (404, "Unknown grid")


async def test_a_grid_runs_every_combination_and_ranks_them(
    client: httpx.AsyncClient, goog: Replayed, headers: Headers
) -> None:
    user, other = uuid.uuid4(), uuid.uuid4()
    request = body(goog.instrument, params={"short": True}, fee_bps="1") | {
        "grid": {"fast": [5, 10], "slow": [20, 30]}
    }
    response = await client.post("/api/v1/backtests/grids", json=request, headers=headers(user))
    assert response.status_code == 202, response.text
    grid = response.json()
    grid_id = grid["grid_id"]
    assert response.headers["location"] == f"/api/v1/backtests/grids/{grid_id}"
    assert (grid["combinations"], grid["rank_by"], grid["done"]) == (4, "sharpe", False)
    assert grid["counts"]["QUEUED"] + grid["counts"]["RUNNING"] + grid["counts"]["SUCCEEDED"] == 4
    hidden = await client.get(f"/api/v1/backtests/grids/{grid_id}", headers=headers(other))
    assert hidden.status_code == 404

    async def done() -> dict[str, Any] | None:
        found = await client.get(f"/api/v1/backtests/grids/{grid_id}", headers=headers(user))
        assert found.status_code == 200, found.text
        summary: dict[str, Any] = found.json()
        return summary if summary["done"] else None

    summary = await eventually(done, timeout=30)
    assert summary["counts"] == {"QUEUED": 0, "RUNNING": 0, "SUCCEEDED": 4, "FAILED": 0}
    assert summary["failed"] == []
    ranking = summary["ranking"]
    assert [r["rank"] for r in ranking] == [1, 2, 3, 4]
    assert sorted((r["params"]["fast"], r["params"]["slow"]) for r in ranking) == [
        (5, 20),
        (5, 30),
        (10, 20),
        (10, 30),
    ]
    sharpes = [float(r["stats"]["sharpe"]) for r in ranking]
    assert sharpes == sorted(sharpes, reverse=True)
    for entry in ranking:
        assert entry["params"]["short"] is True
        single = body(goog.instrument, params=entry["params"], fee_bps="1")
        assert_stats(entry["stats"], library(single, goog.bars))

    # The grid's backtests are the caller's backtests, newest first, a page at a time.
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/v1/backtests", params=params, headers=headers(user))).json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 4 and all(item["grid_id"] == grid_id for item in seen)
    assert [item["created_at"] for item in seen] == sorted(
        (item["created_at"] for item in seen), reverse=True
    )
    assert [
        (item["request"]["params"]["fast"], item["request"]["params"]["slow"]) for item in seen
    ] == [
        (10, 30),
        (10, 20),
        (5, 30),
        (5, 20),
    ]
    by_id = {r["backtest_id"]: r for r in ranking}
    for item in seen:
        assert item["stats"] == by_id[item["backtest_id"]]["stats"]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_a_backtest_waits_for_market_data_and_fails_after_the_last_attempt(
    settings: Settings,
) -> None:
    """A worker whose market-data does not answer: the backtest goes back to the queue with the
    reason, and after the last attempt it is FAILED. The worker stops promptly."""
    url = settings.database_url.get_secret_value()
    await asyncio.to_thread(migrate, url, settings.database_schema, [MIGRATIONS])
    db = Database(url, schema=settings.database_schema)
    await db.connect()
    market = MarketData(f"http://127.0.0.1:{_closed_port()}", timeout=2)
    store = BacktestStore(db)
    worker = BacktestWorker(
        db=db,
        store=store,
        market=market,
        registry=StrategyRegistry(),
        settings=settings,
        service="strategy",
    )
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    try:
        user = uuid.uuid4()
        record = await store.insert(user, BacktestRequest.model_validate(body("nasdaq:GOOG/USD")))

        async def row() -> dict[str, Any]:
            found = await db.pool.fetchrow(
                "SELECT status, attempts, error FROM backtests WHERE backtest_id = $1",
                record.backtest_id,
            )
            assert found is not None
            return dict(found)

        async def put_back() -> dict[str, Any] | None:
            current = await row()
            return current if current["attempts"] == 1 and current["status"] == "QUEUED" else None

        waiting = await eventually(put_back, timeout=10)
        assert waiting["error"].startswith("market data unavailable")
        await asyncio.sleep(0.6)  # within its retry delay it is not claimed again
        assert (await row())["attempts"] == 1

        # The fifth attempt, once its delay has passed, is the last.
        await db.pool.execute(
            "UPDATE backtests SET attempts = 4, heartbeat_at = now() - interval '1 hour' "
            "WHERE backtest_id = $1",
            record.backtest_id,
        )

        async def failed() -> dict[str, Any] | None:
            current = await row()
            return current if current["status"] == "FAILED" else None

        final = await eventually(failed, timeout=10)
        assert final["attempts"] == 5
        assert final["error"].startswith("market data unavailable")
        assert final["error"].endswith("(after 5 attempts)")
    finally:
        stop.set()
        await asyncio.wait_for(running, 5)
        await market.close()
        await db.close()
