"""/api/v1/bots: start a bot, list and inspect the caller's bots, pause, resume, stop, restart."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator
from trademesh_events.bots import BotState
from trademesh_events.ids import AccountId, BotId, InstrumentId, UserId
from trademesh_events.money import Amount, MoneyAmount
from trademesh_http import ProblemError
from trademesh_http.pagination import Page, PageDep, paginate
from trademesh_trading.backtest import Sizing
from trademesh_trading.currencies import in_currency, quote_currency
from trademesh_trading.registry import InvalidParameters, UnknownStrategy
from trademesh_trading.timeframes import Timeframe

from trademesh_strategy.api.deps import CallerDep, OnBehalfDep, RuntimeDep
from trademesh_strategy.engine import IllegalTransition, StrategyFailed
from trademesh_strategy.history import MarketDataUnavailable, NoMarketData
from trademesh_strategy.store import BotRecord, OrderRecord, RunRecord

router = APIRouter(prefix="/bots", tags=["bots"])


class BotCreate(BaseModel):
    """A bot to start. Its owner is the caller; its state is the service's (neither is taken
    from the body: unknown fields are refused)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("", max_length=100, description="A label; defaults to strategy@instrument.")
    strategy: str = Field(min_length=1, max_length=100, description="See GET /strategies.")
    params: dict[str, Any] = Field(
        default_factory=dict, description="The strategy's parameters (its JSON Schema)."
    )
    instrument_id: InstrumentId
    timeframe: str = Field(description="Bar length, e.g. 1m, 1h, 1d.")
    account_id: UUID = Field(description="The account the bot's orders go to.")
    venue: str = Field(
        "paper",
        pattern=r"^[a-z0-9_-]{1,32}$",
        description="`paper`, or the exchange of a live account (e.g. binance).",
    )
    sizing: Sizing = Field(
        default_factory=lambda: Sizing(kind="quantity", value=Decimal(1)),
        description="How much one entry buys: quantity, notional, or equity_pct of the capital.",
    )
    capital: MoneyAmount = Field(
        Decimal(10_000),
        gt=0,
        max_digits=20,
        decimal_places=8,
        description="The money the bot trades with: its cash at start, for equity sizing and PnL.",
    )
    approval: Literal["none", "required"] = Field(
        "none",
        description="`required`: each order waits for the owner's approval (API or a signed "
        "link in a notification) before it goes to risk.",
    )
    approval_expiry_s: int = Field(
        60,
        ge=10,
        le=86_400,
        description="How long an order waits for approval before it expires (seconds).",
    )

    @field_validator("timeframe")
    @classmethod
    def _timeframe(cls, value: str) -> str:
        return Timeframe.parse(value).label


class BotOut(BaseModel):
    bot_id: UUID
    name: str
    strategy: str
    params: dict[str, Any]
    instrument_id: str
    timeframe: str
    account_id: UUID
    venue: str
    sizing: Sizing
    capital: MoneyAmount
    approval: Literal["none", "required"]
    approval_expiry_s: int
    state: BotState
    error: str | None
    position: Amount
    cash: MoneyAmount
    warm_from: datetime | None = Field(
        description="Open time of the first bar the strategy saw (its warm-up's first)."
    )
    last_bar_time: datetime | None = Field(description="Open time of the last bar it saw.")
    bars_seen: int
    created_at: datetime
    updated_at: datetime


class BotPage(Page[BotOut]):
    pass


class RunOut(BaseModel):
    run_id: UUID
    started_at: datetime
    ended_at: datetime | None
    end_state: str | None
    reason: str | None
    bars: int
    orders: int
    fills: int


class OrderOut(BaseModel):
    client_order_id: str
    bar_time: datetime
    leg: str
    side: str
    order_type: str
    quantity: Amount
    limit_price: Amount | None
    stop_price: Amount | None
    status: str
    filled: Amount
    open: bool
    reason: str | None
    created_at: datetime


def _out(bot: BotRecord) -> BotOut:
    quote = quote_currency(bot.instrument_id)  # the bot's cash is an amount of it
    return BotOut(
        bot_id=bot.bot_id,
        name=bot.name,
        strategy=bot.strategy,
        params=bot.params,
        instrument_id=bot.instrument_id,
        timeframe=bot.timeframe,
        account_id=bot.account_id,
        venue=bot.venue,
        sizing=bot.sizing,
        capital=in_currency(bot.capital, quote),
        approval="required" if bot.approval == "required" else "none",
        approval_expiry_s=bot.approval_expiry_s,
        state=bot.state,
        error=bot.error,
        position=bot.position,
        cash=in_currency(bot.cash, quote),
        warm_from=bot.warm_from,
        last_bar_time=bot.last_bar_time,
        bars_seen=bot.bars_seen,
        created_at=bot.created_at,
        updated_at=bot.updated_at,
    )


def _run(run: RunRecord) -> RunOut:
    return RunOut(
        run_id=run.run_id,
        started_at=run.started_at,
        ended_at=run.ended_at,
        end_state=run.end_state,
        reason=run.reason,
        bars=run.bars,
        orders=run.orders,
        fills=run.fills,
    )


def _order(order: OrderRecord) -> OrderOut:
    return OrderOut(
        client_order_id=order.client_order_id,
        bar_time=order.bar_time,
        leg=order.leg,
        side=order.side,
        order_type=order.order_type,
        quantity=order.quantity,
        limit_price=order.limit_price,
        stop_price=order.stop_price,
        status=order.status,
        filled=order.filled,
        open=order.open,
        reason=order.reason,
        created_at=order.created_at,
    )


def start_problem(exc: Exception, strategies: list[str]) -> ProblemError:
    """The problem for a bot (or backtest) that cannot start; nothing was stored."""
    if isinstance(exc, UnknownStrategy):
        return ProblemError(
            422,
            "Unknown strategy",
            f"No strategy {exc.args[0]!r}; known: {', '.join(strategies)}.",
            type="/problems/unknown-strategy",
        )
    if isinstance(exc, InvalidParameters):
        return ProblemError(
            422,
            "Invalid parameters",
            f"The parameters do not fit {exc.strategy}'s schema.",
            type="/problems/invalid-parameters",
            errors=exc.errors,
        )
    if isinstance(exc, NoMarketData):
        return ProblemError(422, "No market data", str(exc), type="/problems/no-market-data")
    if isinstance(exc, StrategyFailed):
        return ProblemError(
            422,
            "Strategy failed during warm-up",
            exc.detail,
            type="/problems/strategy-failed",
        )
    if isinstance(exc, MarketDataUnavailable):
        return ProblemError(
            503,
            "Market data unavailable",
            "market-data did not answer; try again.",
            headers={"Retry-After": "5"},
        )
    raise exc


_START_ERRORS = (
    UnknownStrategy,
    InvalidParameters,
    NoMarketData,
    StrategyFailed,
    MarketDataUnavailable,
)


@router.post("", status_code=201, summary="Start a bot (warmed on stored history first)")
async def create_bot(
    body: BotCreate, caller: OnBehalfDep, runtime: RuntimeDep, response: Response
) -> BotOut:
    # The bot trades the account its body names: it must be the caller's own (execution, which
    # keeps accounts, says so; an admin gets no exception: a bot belongs to whoever starts it).
    await runtime.accounts.check(body.account_id, caller)
    try:
        bot = await runtime.runtime.create(
            user_id=UserId(caller.user_id),
            account_id=AccountId(body.account_id),
            name=body.name or f"{body.strategy}@{body.instrument_id}",
            strategy=body.strategy,
            params=body.params,
            instrument_id=body.instrument_id,
            timeframe=body.timeframe,
            venue=body.venue,
            sizing=body.sizing,
            capital=body.capital,
            approval=body.approval,
            approval_expiry_s=body.approval_expiry_s,
        )
    except _START_ERRORS as exc:
        raise start_problem(exc, runtime.registry.names()) from None
    response.headers["Location"] = f"/api/v1/bots/{bot.bot_id}"
    return _out(bot)


@router.get("", summary="The caller's bots, oldest first")
async def list_bots(caller: CallerDep, runtime: RuntimeDep, request: PageDep) -> BotPage:
    after = request.after(datetime, UUID)
    rows = await runtime.bots.page(caller, after, request.fetch)
    items, cursor = paginate(rows, request, lambda b: (b.created_at, b.bot_id))
    return BotPage(items=[_out(b) for b in items], next_cursor=cursor)


async def own_bot(runtime: RuntimeDep, bot_id: BotId, caller: UserId) -> BotRecord:
    bot = await runtime.bots.get(bot_id)
    if bot is None or bot.user_id != caller:  # another user's bot does not exist for the caller
        raise ProblemError(404, "Unknown bot", f"No bot {bot_id}.")
    return bot


@router.get("/{bot_id}", summary="A bot's state, position and progress")
async def get_bot(bot_id: BotId, caller: CallerDep, runtime: RuntimeDep) -> BotOut:
    return _out(await own_bot(runtime, bot_id, caller))


@router.post("/{bot_id}/{action}", summary="pause, resume, stop, or start again a stopped bot")
async def act(
    bot_id: BotId,
    action: Literal["pause", "resume", "stop", "start"],
    caller: CallerDep,
    runtime: RuntimeDep,
) -> BotOut:
    try:
        bot = await runtime.runtime.act(bot_id, caller, action)
    except IllegalTransition as exc:
        raise ProblemError(409, "Not allowed in this state", str(exc)) from None
    except _START_ERRORS as exc:
        raise start_problem(exc, runtime.registry.names()) from None
    if bot is None:
        raise ProblemError(404, "Unknown bot", f"No bot {bot_id}.")
    return _out(bot)


class RunPage(Page[RunOut]):
    pass


class BotOrderPage(Page[OrderOut]):
    pass


@router.get("/{bot_id}/runs", summary="A bot's runs: each start until it stopped or failed")
async def runs(bot_id: BotId, caller: CallerDep, runtime: RuntimeDep, request: PageDep) -> RunPage:
    await own_bot(runtime, bot_id, caller)
    rows = await runtime.bots.runs(bot_id, request.fetch, request.after(datetime, UUID))
    items, cursor = paginate(rows, request, lambda r: (r.started_at, r.run_id))
    return RunPage(items=[_run(r) for r in items], next_cursor=cursor)


@router.get("/{bot_id}/orders", summary="The orders a bot asked for, oldest first")
async def orders(
    bot_id: BotId,
    caller: CallerDep,
    runtime: RuntimeDep,
    request: PageDep,
) -> BotOrderPage:
    await own_bot(runtime, bot_id, caller)
    rows = await runtime.bots.orders(bot_id, request.fetch, request.after(datetime, str))
    items, cursor = paginate(rows, request, lambda o: (o.created_at, o.client_order_id))
    return BotOrderPage(items=[_order(o) for o in items], next_cursor=cursor)
