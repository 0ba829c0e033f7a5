"""/api/v1/backtests: submit backtests and grid searches, follow them, read their results.

Everything is the caller's: another user's backtest or grid does not exist for the caller (404).
A submission is checked before anything is stored (the strategy and its parameters, the range
against market-data's stored bars); it is then QUEUED and the service's backtest workers run it
(202 Accepted, Location names it; poll GET until SUCCEEDED or FAILED).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field
from trademesh_events.ids import UserId
from trademesh_events.money import Amount, MoneyAmount
from trademesh_http import Caller, ProblemError
from trademesh_http.pagination import Page, PageDep, paginate
from trademesh_trading.registry import InvalidParameters, UnknownStrategy

from trademesh_strategy.api.bots import start_problem
from trademesh_strategy.api.deps import CallerDep, OnBehalfDep, Runtime, RuntimeDep, owned
from trademesh_strategy.backtests.grid import GridEntry, GridTooLarge, expand_grid
from trademesh_strategy.backtests.jobs import BacktestStatus
from trademesh_strategy.backtests.requests import BacktestRequest, GridRequest, RankBy
from trademesh_strategy.backtests.store import BacktestRecord, GridRecord, GridSummary
from trademesh_strategy.history import MarketDataUnavailable, NoMarketData

router = APIRouter(prefix="/backtests", tags=["backtests"])


class StatsOut(BaseModel):
    """A finished backtest's statistics. Non-finite values (a profit factor without a losing
    trade is infinite) are the strings "Infinity", "-Infinity", "NaN"."""

    model_config = ConfigDict(ser_json_inf_nan="strings")

    total_return: float = Field(description="Final equity / cash - 1.")
    annual_return: float
    sharpe: float = Field(description="Annualised, from the bar-to-bar equity returns.")
    sortino: float
    max_drawdown: float = Field(description="Largest fall from a peak, a fraction of the peak.")
    max_drawdown_duration: float = Field(description="Longest time below a peak, in seconds.")
    win_rate: float = Field(description="Share of closed trades with a positive PnL.")
    profit_factor: float = Field(description="Gross profit / gross loss of closed trades.")
    exposure: float = Field(description="Share of bars with a position.")
    trades: int
    final_equity: MoneyAmount
    refused_orders: int = Field(
        0, description="Orders over the account's buying power when placed (risk denies them)."
    )
    refused_fills: int = Field(
        0, description="Fills over it when they came (the paper venue cancels their orders)."
    )
    buy_and_hold_return: float | None = Field(
        None,
        description="The benchmark: last close / first close - 1 (null for backtests stored "
        "before it was recorded).",
    )
    zero_size_signals: int | None = Field(
        None,
        description="Entries the sizing rounded down to no quantity (one unit cost more than it "
        "allowed: see sizing.step); null for backtests stored before they were counted.",
    )


class BacktestOut(BaseModel):
    backtest_id: UUID
    grid_id: UUID | None
    status: BacktestStatus
    request: BacktestRequest
    error: str | None = Field(
        description="Why it FAILED; while QUEUED again, why its last attempt did not finish."
    )
    stats: StatsOut | None = Field(description="Once SUCCEEDED.")
    bars: int | None = Field(description="Bars the backtest ran over.")
    first_bar_at: datetime | None = Field(
        description="Open time of the first bar it ran over, once SUCCEEDED: later than "
        "request.start when market-data holds nothing earlier (or the range starts on a closed "
        "market's day)."
    )
    last_bar_at: datetime | None = Field(
        description="Open time of the last bar it ran over, once SUCCEEDED: the range it covered "
        "is [first_bar_at, last_bar_at + timeframe), beside the [start, end) it asked for."
    )
    attempts: int = Field(description="Times a worker took it.")
    created_at: datetime
    started_at: datetime | None = Field(description="When its latest attempt started.")
    finished_at: datetime | None


class BacktestPage(Page[BacktestOut]):
    pass


class TradeOut(BaseModel):
    """A round trip; an exit-less one was still open at the end (marked at the last close).
    A signal is the strategy's decision on a bar's close; the order fills on a later bar."""

    side: str
    quantity: Amount
    entry_signal_time: datetime | None = Field(
        None, description="Close of the bar whose signal opened it."
    )
    entry_time: datetime = Field(description="Open of the bar it was filled in.")
    entry_price: Amount
    exit_signal_time: datetime | None = Field(
        None, description="Close of the bar whose signal closed it."
    )
    exit_time: datetime | None
    exit_price: Amount | None
    pnl: MoneyAmount = Field(description="After fees; unrealised for an open trade.")
    fees: MoneyAmount
    open: bool | None = Field(
        None, description="Still open at the end: no exit, PnL marked at the last close."
    )


class RankedOut(BaseModel):
    rank: int = Field(description="1 is the best.")
    backtest_id: UUID
    params: dict[str, Any]
    stats: StatsOut


class FailedOut(BaseModel):
    backtest_id: UUID
    params: dict[str, Any]
    error: str | None


class GridOut(BaseModel):
    grid_id: UUID
    request: GridRequest
    rank_by: RankBy
    created_at: datetime
    combinations: int
    counts: dict[BacktestStatus, int] = Field(description="The grid's backtests by status.")
    done: bool = Field(description="No backtest of the grid is QUEUED or RUNNING any more.")
    ranking: list[RankedOut] = Field(description="The SUCCEEDED backtests, best first.")
    failed: list[FailedOut]


def _out(record: BacktestRecord) -> BacktestOut:
    return BacktestOut.model_validate(record, from_attributes=True)


def _grid_out(summary: GridSummary) -> GridOut:
    grid = summary.grid

    def ranked(position: int, entry: GridEntry) -> RankedOut:
        return RankedOut(
            rank=position,
            backtest_id=entry.backtest_id,
            params=entry.params,
            stats=StatsOut.model_validate(entry.stats),
        )

    return GridOut(
        grid_id=grid.grid_id,
        request=GridRequest.model_validate(grid.request),
        rank_by=grid.rank_by,
        created_at=grid.created_at,
        combinations=summary.combinations,
        counts=summary.counts,
        done=summary.done,
        ranking=[ranked(n, e) for n, e in enumerate(summary.ranking, start=1)],
        failed=[
            FailedOut(backtest_id=e.backtest_id, params=e.params, error=e.error)
            for e in summary.failed
        ],
    )


async def check_range(runtime: Runtime, request: BacktestRequest, who: Caller) -> int:
    """The number of stored bars in the request's range: at least one and at most
    backtest_max_bars, or a 422 problem (503 when market-data does not answer). market-data is
    asked on the caller's behalf: their access token goes with the request."""
    try:
        bars = await runtime.market.bars(
            request.instrument_id,
            request.timeframe,
            request.start,
            request.end,
            headers=who.auth_headers(),
        )
    except (NoMarketData, MarketDataUnavailable) as exc:
        raise start_problem(exc, runtime.registry.names()) from None
    if not bars:
        raise ProblemError(
            422,
            "Empty range",
            f"market-data has no {request.timeframe} bars of {request.instrument_id} opening in "
            f"[{request.start.isoformat()}, {request.end.isoformat()}).",
            type="/problems/empty-range",
        )
    limit = runtime.settings.backtest_max_bars
    if len(bars) > limit:
        raise ProblemError(
            422,
            "Range too large",
            f"The range holds {len(bars)} bars; a backtest covers at most {limit}.",
            type="/problems/range-too-large",
            bars=len(bars),
            max_bars=limit,
        )
    return len(bars)


def _normalized(runtime: Runtime, strategy: str, params: dict[str, Any]) -> dict[str, Any]:
    """The parameters with the strategy's defaults filled in (as stored and shown); raises
    UnknownStrategy or InvalidParameters."""
    instance = runtime.registry.create(strategy, params)
    normalized: dict[str, Any] = instance.config.model_dump(mode="json")
    return normalized


@router.post("", status_code=202, summary="Submit a backtest (queued; poll it until it is done)")
async def submit(
    body: BacktestRequest,
    caller: CallerDep,
    who: OnBehalfDep,
    runtime: RuntimeDep,
    response: Response,
) -> BacktestOut:
    try:
        params = _normalized(runtime, body.strategy, body.params)
    except (UnknownStrategy, InvalidParameters) as exc:
        raise start_problem(exc, runtime.registry.names()) from None
    await check_range(runtime, body, who)
    record = await runtime.backtests.insert(caller, body.model_copy(update={"params": params}))
    response.headers["Location"] = f"/api/v1/backtests/{record.backtest_id}"
    return _out(record)


@router.get("", summary="The caller's backtests, newest first (grids' ones included)")
async def list_backtests(caller: CallerDep, runtime: RuntimeDep, request: PageDep) -> BacktestPage:
    after = request.after(datetime, UUID)
    rows = await runtime.backtests.page(caller, after, request.fetch)
    items, cursor = paginate(rows, request, lambda r: (r.created_at, r.backtest_id))
    return BacktestPage(items=[_out(r) for r in items], next_cursor=cursor)


@router.post("/grids", status_code=202, summary="Submit a grid search: a backtest per combination")
async def submit_grid(
    body: GridRequest,
    caller: CallerDep,
    who: OnBehalfDep,
    runtime: RuntimeDep,
    response: Response,
) -> GridOut:
    names = runtime.registry.names()
    try:
        runtime.registry.get(body.strategy)
    except UnknownStrategy as exc:
        raise start_problem(exc, names) from None
    limit = runtime.settings.grid_max_combinations
    try:
        combinations = expand_grid(body.params, body.grid, limit=limit)
    except GridTooLarge as exc:
        raise ProblemError(
            422,
            "Too many combinations",
            f"{exc}; narrow the grid.",
            type="/problems/grid-too-large",
            combinations=exc.size,
            max_combinations=exc.limit,
        ) from None
    base = body.base()
    backtests: list[BacktestRequest] = []
    for number, params in enumerate(combinations, start=1):
        try:
            normalized = _normalized(runtime, body.strategy, params)
        except InvalidParameters as exc:
            raise ProblemError(
                422,
                "Invalid parameters",
                f"Combination {number} of {len(combinations)}, {json.dumps(params)}, does not "
                f"fit {body.strategy}'s schema.",
                type="/problems/invalid-parameters",
                params=params,
                errors=exc.errors,
            ) from None
        backtests.append(base.model_copy(update={"params": normalized}))
    await check_range(runtime, base, who)
    store = runtime.backtests
    grid_id = await store.insert_grid(caller, body, backtests)
    grid = await store.get_grid(grid_id)
    assert grid is not None
    response.headers["Location"] = f"/api/v1/backtests/grids/{grid_id}"
    return _grid_out(await store.grid_summary(grid))


async def _own_grid(runtime: Runtime, grid_id: UUID, caller: UserId) -> GridRecord:
    return owned(await runtime.backtests.get_grid(grid_id), caller, "grid", grid_id)


@router.get("/grids/{grid_id}", summary="A grid's progress, and its finished backtests ranked")
async def get_grid(grid_id: UUID, caller: CallerDep, runtime: RuntimeDep) -> GridOut:
    grid = await _own_grid(runtime, grid_id, caller)
    return _grid_out(await runtime.backtests.grid_summary(grid))


async def _own(runtime: Runtime, backtest_id: UUID, caller: UserId) -> BacktestRecord:
    return owned(await runtime.backtests.get(backtest_id), caller, "backtest", backtest_id)


def _succeeded(record: BacktestRecord) -> None:
    if record.status is not BacktestStatus.SUCCEEDED:
        detail = f"Backtest {record.backtest_id} is {record.status.value}"
        detail += f": {record.error}" if record.status is BacktestStatus.FAILED else "; try later."
        raise ProblemError(
            409,
            "Backtest not succeeded",
            detail,
            type="/problems/backtest-not-succeeded",
            backtest_status=record.status.value,
        )


def _json(text: str | None) -> Response:
    # The stored JSON as it is: an equity curve has a point per bar (millions, possibly), which
    # parsing and re-serialising through models would only slow down.
    assert text is not None, "a SUCCEEDED backtest has its results"
    return Response(content=text, media_type="application/json")


@router.get("/{backtest_id}", summary="A backtest: its status, error, statistics when done")
async def get_backtest(backtest_id: UUID, caller: CallerDep, runtime: RuntimeDep) -> BacktestOut:
    return _out(await _own(runtime, backtest_id, caller))


@router.get(
    "/{backtest_id}/trades",
    summary="A succeeded backtest's trades, oldest first (409 before it has succeeded)",
    response_class=Response,
    responses={200: {"model": list[TradeOut], "content": {"application/json": {}}}},
)
async def trades(backtest_id: UUID, caller: CallerDep, runtime: RuntimeDep) -> Response:
    record = await _own(runtime, backtest_id, caller)
    _succeeded(record)
    return _json(await runtime.backtests.trades_json(backtest_id))


@router.get(
    "/{backtest_id}/equity",
    summary="A succeeded backtest's equity curve: [close time, equity] per bar (409 before)",
    response_class=Response,
    responses={
        200: {"model": list[tuple[datetime, MoneyAmount]], "content": {"application/json": {}}}
    },
)
async def equity(backtest_id: UUID, caller: CallerDep, runtime: RuntimeDep) -> Response:
    record = await _own(runtime, backtest_id, caller)
    _succeeded(record)
    return _json(await runtime.backtests.equity_json(backtest_id))
