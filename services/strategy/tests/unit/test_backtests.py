"""Backtests' pure parts: request validation, grid expansion, ranking, the worker process's
function against the library's Backtester, and the bars cache."""

from __future__ import annotations

import asyncio
import json
import math
import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest
from pydantic import ValidationError
from trademesh_events.marketdata import Bar
from trademesh_events.money import DECIMAL_PATTERN, plain, to_places
from trademesh_trading.backtest import Backtester, Sizing
from trademesh_trading.builtin import SmaCross, SmaCrossConfig
from trademesh_trading.fills import FillModel
from trademesh_trading.strategy import Context, Strategy, StrategyConfig

from trademesh_strategy.backtests.bars import BarsCache
from trademesh_strategy.backtests.grid import (
    GridEntry,
    GridTooLarge,
    expand_grid,
    grid_size,
    rank,
    stat_value,
)
from trademesh_strategy.backtests.jobs import BacktestStatus, describe_error
from trademesh_strategy.backtests.requests import BacktestRequest, GridRequest
from trademesh_strategy.backtests.results import encode_result, run_backtest

pytestmark = pytest.mark.unit

INSTRUMENT = "test:ABC/USD"
BASE: dict[str, Any] = {
    "strategy": "sma_cross",
    "params": {"fast": 3, "slow": 8},
    "instrument_id": INSTRUMENT,
    "timeframe": "1d",
    "start": "2024-01-01T00:00:00Z",
    "end": "2024-06-01T00:00:00Z",
}


def bars(count: int = 120) -> list[Bar]:
    """Daily bars whose closes swing (a sine with a drift), so an SMA cross trades both ways."""
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


# ---- requests ---------------------------------------------------------------------------------


def test_defaults_are_ten_thousand_cash_all_equity_and_no_costs() -> None:
    request = BacktestRequest.model_validate(BASE)
    assert request.cash == Decimal(10_000)
    assert request.sizing == Sizing(kind="equity_pct", value=Decimal(100), step=Decimal(1))
    assert (request.slippage_bps, request.fee_bps) == (Decimal(0), Decimal(0))


def test_naive_datetimes_are_utc_and_others_are_converted() -> None:
    request = BacktestRequest.model_validate(
        BASE | {"start": "2024-01-01T00:00:00", "end": "2024-06-01T02:00:00+02:00"}
    )
    assert request.start == datetime(2024, 1, 1, tzinfo=UTC)
    assert request.start.tzinfo is UTC
    assert request.end == datetime(2024, 6, 1, tzinfo=UTC)
    assert request.end.utcoffset() == timedelta(0)
    aware = datetime(2024, 1, 1, 5, tzinfo=timezone(timedelta(hours=5)))
    assert BacktestRequest.model_validate(BASE | {"start": aware}).start == datetime(
        2024, 1, 1, tzinfo=UTC
    )


@pytest.mark.parametrize("end", ["2024-01-01T00:00:00Z", "2023-12-31T00:00:00Z"])
def test_an_end_not_after_the_start_is_refused(end: str) -> None:
    with pytest.raises(ValidationError, match="end must be after start"):
        BacktestRequest.model_validate(BASE | {"end": end})


@pytest.mark.parametrize(
    "change",
    [
        {"user_id": str(uuid4())},  # the owner is the caller, never the body
        {"status": "SUCCEEDED"},
        {"timeframe": "1x"},
        {"instrument_id": "no-venue"},
        {"cash": "0"},
        {"fee_bps": "-1"},
        {"slippage_bps": "-0.5"},
        {"sizing": {"kind": "equity_pct", "value": "100", "lots": 2}},
    ],
)
def test_bad_or_unknown_fields_are_refused(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        BacktestRequest.model_validate(BASE | change)


def test_the_timeframe_is_kept_as_its_label() -> None:
    assert BacktestRequest.model_validate(BASE | {"timeframe": "15m"}).timeframe == "15m"


def test_a_grid_defaults_to_sharpe_and_its_base_is_a_backtest() -> None:
    grid = GridRequest.model_validate(BASE | {"grid": {"fast": [2, 3]}})
    assert grid.rank_by == "sharpe"
    base = grid.base()
    assert type(base) is BacktestRequest
    assert base.model_dump() == BacktestRequest.model_validate(BASE).model_dump()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"grid": {"fast": []}}, "has no values"),
        ({"grid": {}}, "at least 1 item"),
        ({"grid": {"fast": [2]}, "rank_by": "luck"}, "rank_by"),
        ({"grid": {"fast": [2]}, "owner": "me"}, "Extra inputs"),
    ],
)
def test_bad_grids_are_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        GridRequest.model_validate(BASE | change)


# ---- grids --------------------------------------------------------------------------------------


def test_a_grid_is_the_cartesian_product_over_the_base_params() -> None:
    combos = expand_grid(
        {"fast": 1, "slow": 50, "short": True},
        {"fast": [5, 10], "slow": [20, 30, 40]},
        limit=6,
    )
    assert combos == [
        {"fast": 5, "slow": 20, "short": True},
        {"fast": 5, "slow": 30, "short": True},
        {"fast": 5, "slow": 40, "short": True},
        {"fast": 10, "slow": 20, "short": True},
        {"fast": 10, "slow": 30, "short": True},
        {"fast": 10, "slow": 40, "short": True},
    ]


def test_a_grid_larger_than_the_limit_is_refused_before_it_is_made() -> None:
    huge = {f"p{n}": list(range(100)) for n in range(12)}  # 10**24 combinations
    assert grid_size(huge) == 100**12
    with pytest.raises(GridTooLarge) as raised:
        expand_grid({}, huge, limit=500)
    assert (raised.value.size, raised.value.limit) == (100**12, 500)
    with pytest.raises(GridTooLarge):
        expand_grid({}, {"a": [1, 2, 3], "b": [1, 2]}, limit=5)
    assert len(expand_grid({}, {"a": [1, 2, 3], "b": [1, 2]}, limit=6)) == 6


# ---- ranking ------------------------------------------------------------------------------------


def entry(
    stats: dict[str, Any] | None, status: BacktestStatus = BacktestStatus.SUCCEEDED
) -> GridEntry:
    return GridEntry(uuid4(), {"n": len(str(stats))}, status, stats, None)


def test_ranking_is_descending_with_non_finite_values_last() -> None:
    good, better, bad = entry({"sharpe": 1.0}), entry({"sharpe": 2.5}), entry({"sharpe": -0.3})
    nan, inf, text = (
        entry({"sharpe": math.nan}),
        entry({"sharpe": math.inf}),
        entry({"sharpe": "NaN"}),
    )
    queued = entry(None, BacktestStatus.QUEUED)
    failed = entry(None, BacktestStatus.FAILED)
    ranked = rank([nan, good, queued, inf, bad, failed, better, text], "sharpe")
    assert ranked[:3] == [better, good, bad]
    assert ranked[3:] == [nan, inf, text]  # unranked ones come last, in the grid's order


def test_max_drawdown_ranks_ascending() -> None:
    deep, shallow, none = (
        entry({"max_drawdown": 0.4}),
        entry({"max_drawdown": 0.1}),
        entry({"max_drawdown": 0.0}),
    )
    broken = entry({"max_drawdown": "Infinity"})
    assert rank([deep, broken, shallow, none], "max_drawdown") == [none, shallow, deep, broken]


def test_an_infinite_profit_factor_ranks_last_and_ties_keep_the_grid_order() -> None:
    first, second = entry({"profit_factor": 1.5}), entry({"profit_factor": 1.5})
    flawless = entry({"profit_factor": "Infinity"})
    assert rank([flawless, first, second], "profit_factor") == [first, second, flawless]


def test_stored_statistics_read_back_as_floats() -> None:
    assert stat_value({"x": "Infinity"}, "x") == math.inf
    assert stat_value({"x": "-Infinity"}, "x") == -math.inf
    assert math.isnan(stat_value({"x": "NaN"}, "x"))
    assert math.isnan(stat_value({}, "x"))
    assert stat_value({"x": 0.25}, "x") == 0.25


# ---- the worker process's function --------------------------------------------------------------


def library(request: dict[str, Any], data: list[Bar]) -> Any:
    spec = BacktestRequest.model_validate(request)
    backtester = Backtester(
        SmaCross(SmaCrossConfig.model_validate(spec.params)),
        instrument_id=spec.instrument_id,
        timeframe=spec.timeframe,
        cash=spec.cash,
        fill_model=FillModel(slippage_bps=spec.slippage_bps, fee_bps=spec.fee_bps),
        sizing=spec.sizing,
    )
    return backtester.run(data)


@pytest.mark.parametrize(
    "change",
    [
        {},
        {
            "params": {"fast": 4, "slow": 10, "short": True},
            "cash": "2500.50",
            "fee_bps": "7.5",
            "slippage_bps": "3",
            "sizing": {"kind": "quantity", "value": "7", "step": "1"},
        },
    ],
)
def test_the_process_function_gives_what_the_backtester_gives(change: dict[str, Any]) -> None:
    request = json.loads(BacktestRequest.model_validate(BASE | change).model_dump_json())
    data = bars()
    expected = library(request, data)
    assert expected.trades, "the data is meant to make the strategy trade"

    got = run_backtest(request, data)
    assert got == run_backtest(request, data, SmaCross)  # the service's class, or the registry's
    json.dumps(got)  # plain data, picklable and storable
    assert got["bars"] == len(data)
    # the range it covered: the open times of the first and the last bar
    assert got["first_bar_at"] == data[0].open_time.isoformat()
    assert got["last_bar_at"] == data[-1].open_time.isoformat()
    assert got["stats"]["buy_and_hold_return"] == expected.stats.buy_and_hold_return
    assert got["stats"]["zero_size_signals"] == expected.stats.zero_size_signals
    assert [(t["entry_signal_time"], t["exit_signal_time"], t["open"]) for t in got["trades"]] == [
        (
            t.entry_signal_time.isoformat() if t.entry_signal_time else None,
            t.exit_signal_time.isoformat() if t.exit_signal_time else None,
            t.open,
        )
        for t in expected.trades
    ]
    # money is stored as the API returns it: rounded to the places of the instrument's quote
    # currency (USD: 2), written plain
    assert got["stats"]["final_equity"] == plain(to_places(expected.stats.final_equity, 2))
    assert Decimal(got["stats"]["final_equity"]) == to_places(expected.equity[-1][1], 2)
    assert got["stats"]["trades"] == len(expected.trades)
    for name in ("total_return", "sharpe", "sortino", "max_drawdown", "win_rate", "exposure"):
        assert got["stats"][name] == getattr(expected.stats, name), name
    assert got["stats"]["max_drawdown_duration"] == (
        expected.stats.max_drawdown_duration.total_seconds()
    )
    assert [
        (
            t["side"],
            Decimal(t["quantity"]),
            datetime.fromisoformat(t["entry_time"]),
            Decimal(t["entry_price"]),
            t["exit_time"] and datetime.fromisoformat(t["exit_time"]),
            t["exit_price"] and Decimal(t["exit_price"]),
            Decimal(t["pnl"]),
            Decimal(t["fees"]),
        )
        for t in got["trades"]
    ] == [
        (
            t.side,
            t.quantity,
            t.entry_time,
            t.entry_price,
            t.exit_time,
            t.exit_price,
            to_places(t.pnl, 2),
            to_places(t.fees, 2),
        )
        for t in expected.trades
    ]
    assert [(datetime.fromisoformat(t), Decimal(v)) for t, v in got["equity"]] == [
        (t, to_places(v, 2)) for t, v in expected.equity
    ]
    assert all(re.fullmatch(DECIMAL_PATTERN, v) for _, v in got["equity"])


def test_the_stored_json_keeps_non_finite_statistics_as_strings() -> None:
    request = json.loads(BacktestRequest.model_validate(BASE).model_dump_json())
    data = run_backtest(request, bars())
    data["stats"] |= {"profit_factor": math.inf, "sortino": -math.inf, "sharpe": math.nan}
    encoded = encode_result(data)
    stats = json.loads(encoded.stats)  # strict JSON: jsonb refuses NaN and Infinity
    assert (stats["profit_factor"], stats["sortino"], stats["sharpe"]) == (
        "Infinity",
        "-Infinity",
        "NaN",
    )
    assert stats["total_return"] == data["stats"]["total_return"]
    assert json.loads(encoded.trades) == data["trades"]
    assert json.loads(encoded.equity) == data["equity"]
    assert encoded.bars == len(bars())
    assert (encoded.first_bar_at, encoded.last_bar_at) == (
        bars()[0].open_time,
        bars()[-1].open_time,
    )


class _BoomConfig(StrategyConfig):
    after: int = 3


class _Boom(Strategy[_BoomConfig]):
    name = "boom"
    config_class = _BoomConfig

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        if len(ctx.bars) > self.config.after:
            raise ZeroDivisionError("the strategy divided by zero")


def test_a_strategy_error_propagates_and_reads_type_colon_message() -> None:
    request = json.loads(
        BacktestRequest.model_validate(BASE | {"strategy": "boom", "params": {}}).model_dump_json()
    )
    with pytest.raises(ZeroDivisionError) as raised:
        run_backtest(request, bars(10), _Boom)
    assert describe_error(raised.value) == "ZeroDivisionError: the strategy divided by zero"
    assert describe_error(KeyError()) == "KeyError"


# ---- the bars cache ---------------------------------------------------------------------------

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def key(name: str) -> tuple[str, str, datetime, datetime]:
    return (f"test:{name}", "1d", T0, T0 + timedelta(days=30))


class Fetcher:
    def __init__(self, count: int = 10, fail: bool = False) -> None:
        self.calls = 0
        self.count = count
        self.fail = fail
        self.release = asyncio.Event()

    async def __call__(self) -> list[Bar]:
        self.calls += 1
        await self.release.wait()
        if self.fail:
            raise RuntimeError("market-data went away")
        return bars(self.count)


async def test_concurrent_askers_of_a_range_share_one_fetch() -> None:
    cache = BarsCache(max_bars=1000)
    fetch = Fetcher()
    waiting = [asyncio.create_task(cache.get(key("a"), fetch)) for _ in range(3)]
    await asyncio.sleep(0)
    fetch.release.set()
    got = await asyncio.gather(*waiting)
    assert fetch.calls == 1
    assert got[0] is got[1] is got[2]
    assert await cache.get(key("a"), fetch) is got[0]
    assert fetch.calls == 1


async def test_a_failed_fetch_is_not_kept_and_a_cancelled_asker_leaves_it_to_others() -> None:
    cache = BarsCache(max_bars=1000)
    failing = Fetcher(fail=True)
    failing.release.set()
    with pytest.raises(RuntimeError):
        await cache.get(key("a"), failing)
    assert len(cache) == 0
    fetch = Fetcher()
    fetch.release.set()
    assert len(await cache.get(key("a"), fetch)) == 10

    slow = Fetcher()
    first = asyncio.create_task(cache.get(key("b"), slow))
    second = asyncio.create_task(cache.get(key("b"), slow))
    await asyncio.sleep(0)
    first.cancel()
    slow.release.set()
    assert len(await second) == 10
    assert slow.calls == 1


async def test_the_cache_is_bounded_in_ranges_bars_and_time() -> None:
    now = [0.0]
    cache = BarsCache(max_bars=25, max_entries=2, ttl_s=60, clock=lambda: now[0])
    for name in ("a", "b", "c"):
        fetch = Fetcher(10)
        fetch.release.set()
        await cache.get(key(name), fetch)
    assert len(cache) == 2  # at most two ranges

    big = Fetcher(20)
    big.release.set()
    await cache.get(key("big"), big)
    assert len(cache) == 1  # 10 + 20 bars > 25: the least recently used range went

    now[0] = 61.0
    cache.prune()
    assert len(cache) == 0  # expired

    again = Fetcher(10)
    again.release.set()
    await cache.get(key("big"), again)
    assert again.calls == 1
