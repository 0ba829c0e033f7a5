"""/api/v1/accounts, /api/v1/kill-switch: limits, states and kill switches; an account's exposure
as risk sees it. (The instruments' venue rules are in instruments.py.)

An account's limits come in layers (docs/decisions/0102-default-risk-limits.md): the platform's
default limits (settings), an admin's limits for the account in their place (its ceilings), and
the account's own limits, which only tighten the ceilings. `PUT .../limits` sets the admin's
layer when an admin calls it and the account's own otherwise; an own limit above its ceiling is
a 422 problem, so that only an admin ever raises a limit.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from trademesh_events.ids import AccountId, InstrumentId, UserId
from trademesh_events.money import Amount, MoneyAmount
from trademesh_http import ProblemError
from trademesh_trading.buying_power import AccountTerms, MarginMode
from trademesh_trading.currencies import in_currency, quote_currency

from trademesh_risk.api.deps import Caller, CallerDep, RuntimeDep, require
from trademesh_risk.engine import Limits, TradingState, ceilings, effective, over_ceilings

router = APIRouter(tags=["risk"])

PositiveMoney = Annotated[Amount, Field(gt=0, max_digits=30, decimal_places=12)]
Count = Annotated[int, Field(ge=1, le=1_000_000)]


class LimitsIn(BaseModel):
    """Limits; a field left out (or null) is no limit. Zero is refused: HALTED stops trading."""

    model_config = ConfigDict(extra="forbid")

    max_order_quantity: PositiveMoney | None = None
    max_order_notional: PositiveMoney | None = None
    max_position: PositiveMoney | None = Field(None, description="Absolute, per instrument.")
    max_gross_exposure: PositiveMoney | None = Field(
        None, description="Sum over instruments of |position| * last price."
    )
    max_open_orders: Count | None = None
    daily_loss_limit: PositiveMoney | None = Field(
        None, description="Realised loss of the UTC day that switches the account to REDUCING."
    )
    price_collar_bps: PositiveMoney | None = Field(
        None, description="How far a limit price may be from the last price."
    )
    max_orders_per_second: Count | None = None
    max_orders_per_minute: Count | None = None

    def limits(self) -> Limits:
        return Limits(**self.model_dump(exclude_none=True))


class InstrumentLimitsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instrument_id: InstrumentId
    limits: LimitsIn


class SwitchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    engaged: bool
    reason: str | None = Field(None, max_length=500)


class StateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: TradingState
    reason: str | None = Field(None, max_length=500)


class BuyingPowerIn(BaseModel):
    """An account's buying power as risk counts it: `cash` (no borrowing; a sell needs the asset
    held unless `allow_short`) or `margin` (gross exposure up to `max_leverage` x equity), its
    cash and the fee rate its orders are costed at. Set by an admin only."""

    model_config = ConfigDict(extra="forbid")

    margin_mode: MarginMode = MarginMode.CASH
    max_leverage: Annotated[Amount, Field(ge=1, le=100, max_digits=6, decimal_places=2)] | None = (
        Field(None, description="Admin only (margin). Left out: kept; 1 for a cash account.")
    )
    allow_short: bool = False
    cash: Annotated[Amount, Field(ge=0, max_digits=30, decimal_places=12)] | None = Field(
        None,
        description="The account's cash as risk counts it from now on (fills move it). Left "
        "out: unchanged.",
    )
    fee_bps: Annotated[Amount, Field(ge=0, le=1000, max_digits=8, decimal_places=4)] | None = Field(
        None, description="The fee rate orders are costed at. Left out: kept."
    )


class BuyingPowerOut(BaseModel):
    margin_mode: MarginMode
    max_leverage: Amount
    allow_short: bool
    fee_bps: Amount
    cash: MoneyAmount | None = Field(
        description="Cash as risk counts it (null: never funded, orders not checked for cash)."
    )
    reserved: MoneyAmount = Field(description="What open approved orders reserve of it.")
    currency: str | None = Field(
        None,
        description="An exchange account's settlement currency: `cash` is its venue's total of "
        "it, checked for orders quoted in it (null: a paper account).",
    )
    holdings: dict[str, Amount] | None = Field(
        None,
        description="An exchange account's other currencies held at its venue, as last read "
        "and moved by its fills since: what a sell may take.",
    )


class PositionOut(BaseModel):
    instrument_id: str
    position: Amount
    avg_price: Amount
    realised: MoneyAmount
    pending_buy: Amount
    pending_sell: Amount
    last_price: Amount | None


LimitSource = Literal["default", "admin", "account"]


class AccountOut(BaseModel):
    account_id: UUID
    state: TradingState
    state_reason: str | None
    kill_switch: bool
    kill_reason: str | None
    global_kill_switch: bool
    pnl_day: date | None
    realised_today: MoneyAmount
    limits_in_force: dict[str, object] = Field(
        description="The account-wide limits orders are checked against: the stricter of the "
        "ceilings (default_limits, admin_limits in their place) and the account's own limits."
    )
    limit_sources: dict[str, LimitSource] = Field(
        description="Where each limit in force comes from: the platform's default, an admin's "
        "limit for the account, or the account's own."
    )
    instrument_limits_in_force: dict[str, dict[str, object]] = Field(
        description="Per instrument with limits of its own: the limits in force on it."
    )
    default_limits: dict[str, object] = Field(
        description="The platform's default limits (risk's settings), every account's ceilings "
        "unless an admin sets others."
    )
    admin_limits: dict[str, object] = Field(
        description="An admin's limits for the account, in place of the defaults (higher or lower)."
    )
    limits: dict[str, object] = Field(
        description="The account's own limits: at or under the ceilings, they only tighten them."
    )
    instrument_limits: dict[str, dict[str, object]] = Field(
        description="The account's own limits per instrument (the stricter applies)."
    )
    positions: list[PositionOut]
    buying_power: BuyingPowerOut


class GlobalSwitchOut(BaseModel):
    engaged: bool
    reason: str | None


def _limits_out(limits: Limits | None) -> dict[str, object]:
    if limits is None:
        return {}
    return {k: v for k, v in limits.__dict__.items() if v is not None}


async def _own(runtime: RuntimeDep, account_id: AccountId, caller: Caller) -> None:
    """404 unless the account is the caller's (execution, which keeps accounts, says so); an
    admin may act on every account. Risk keeps limits by account id and cannot tell owners
    apart itself."""
    await runtime.accounts.check(account_id, caller, admin_may=True)


def _sources(in_force: Limits, defaults: Limits, admin: Limits | None) -> dict[str, LimitSource]:
    """Which layer each limit in force comes from: the account's own where it is under its
    ceiling (or has none), else the ceiling's (an admin's, or the default)."""
    ceiling = ceilings(defaults, admin)
    out: dict[str, LimitSource] = {}
    for name in _limits_out(in_force):
        value, top = getattr(in_force, name), getattr(ceiling, name)
        if top is None or value < top:
            out[name] = "account"
        elif admin is not None and getattr(admin, name) is not None:
            out[name] = "admin"
        else:
            out[name] = "default"
    return out


async def _within_ceilings(runtime: RuntimeDep, account_id: AccountId, limits: Limits) -> None:
    """422 problem if the account's own `limits` would raise one of its ceilings: only an admin
    raises a limit (by setting the account's admin limits)."""
    defaults = runtime.decider.default_limits
    admin = await runtime.store.admin_limits(account_id)
    over = over_ceilings(limits, ceilings(defaults, admin))
    if not over:
        return
    sources = _sources(ceilings(defaults, admin), defaults, admin)
    said = "; ".join(
        f"{name} {value} is above its ceiling {top} "
        f"({'an admin' if sources[name] == 'admin' else 'the default'})"
        for name, (value, top) in over.items()
    )
    raise ProblemError(
        422,
        "Limit above its ceiling",
        f"{said}. An account's own limits may only tighten its ceilings; an admin raises them.",
        type="/problems/limit-above-ceiling",
        ceilings={name: str(top) for name, (_, top) in over.items()},
    )


async def _account(runtime: RuntimeDep, account_id: AccountId) -> AccountOut:
    store = runtime.store
    row = await store.account(account_id)
    account_limits, _ = await store.limits(account_id, None)
    admin_limits = await store.admin_limits(account_id)
    defaults = runtime.decider.default_limits
    in_force = await runtime.decider.limits_in_force(None, account_id, None)
    own_per_instrument = await store.instrument_limits(account_id)
    global_on, _ = await store.global_switch()
    positions = {p.instrument_id: p for p in await store.positions(account_id)}
    assert runtime.db is not None
    async with runtime.db.transaction() as conn:
        pending, _ = await store.pending(conn, account_id)
    out = []
    for instrument in sorted({*positions, *pending}):
        held = positions.get(instrument)
        buy, sell = pending.get(instrument, (Decimal(0), Decimal(0)))
        out.append(
            PositionOut(
                instrument_id=instrument,
                position=held.position if held else Decimal(0),
                avg_price=held.avg_price if held else Decimal(0),
                realised=in_currency(held.realised, quote_currency(instrument))
                if held
                else Decimal(0),
                pending_buy=buy,
                pending_sell=sell,
                last_price=runtime.prices.get(instrument),
            )
        )
    # Money is shown at its currency's places: a position's in its quote currency, the
    # account's in its settlement currency (a paper account has none: 8 places).
    currency = row.currency if row else None
    return AccountOut(
        account_id=account_id,
        state=row.state if row else TradingState.ACTIVE,
        state_reason=row.state_reason if row else None,
        kill_switch=row.kill_switch if row else False,
        kill_reason=row.kill_reason if row else None,
        global_kill_switch=global_on,
        pnl_day=row.pnl_day if row else None,
        realised_today=in_currency(row.realised_today, currency) if row else Decimal(0),
        limits_in_force=_limits_out(in_force),
        limit_sources=_sources(in_force, defaults, admin_limits),
        instrument_limits_in_force={
            k: _limits_out(effective(in_force, v)) for k, v in own_per_instrument.items()
        },
        default_limits=_limits_out(defaults),
        admin_limits=_limits_out(admin_limits),
        limits=_limits_out(account_limits),
        instrument_limits={k: _limits_out(v) for k, v in own_per_instrument.items()},
        positions=out,
        buying_power=BuyingPowerOut(
            margin_mode=MarginMode(row.margin_mode) if row else MarginMode.CASH,
            max_leverage=row.max_leverage if row else Decimal(1),
            allow_short=row.allow_short if row else False,
            fee_bps=row.fee_bps if row else Decimal(0),
            cash=in_currency(row.cash, currency) if row and row.cash is not None else None,
            reserved=in_currency(await store.reserved(account_id), currency),
            currency=row.currency if row else None,
            holdings=dict(row.holdings) if row and row.holdings is not None else None,
        ),
    )


@router.get("/accounts/{account_id}", summary="An account as risk sees it: state, limits, exposure")
async def get_account(account_id: AccountId, caller: CallerDep, runtime: RuntimeDep) -> AccountOut:
    await _own(runtime, account_id, caller)
    return await _account(runtime, account_id)


@router.put(
    "/accounts/{account_id}/limits",
    summary="Set the account's limits: an admin's replace the defaults, a trader's tighten them",
    description="Called by an admin, sets the account's admin limits: in place of the platform's "
    "default limits, field by field, higher or lower (a field left out is the default's). Called "
    "by a trader, sets the account's own limits, which may only be at or under those ceilings "
    "(422 problem `/problems/limit-above-ceiling` otherwise). The stricter of both applies.",
    responses={422: {"description": "A bad body, or a trader's limit above its ceiling."}},
)
async def put_limits(
    account_id: AccountId, body: LimitsIn, caller: CallerDep, runtime: RuntimeDep
) -> AccountOut:
    require(caller, "admin", "trader")
    await _own(runtime, account_id, caller)
    if caller.role == "admin":
        await runtime.store.put_admin_limits(account_id, body.limits())
    else:
        await _within_ceilings(runtime, account_id, body.limits())
        await runtime.store.put_limits(account_id, body.limits())
    return await _account(runtime, account_id)


@router.put(
    "/accounts/{account_id}/instrument-limits",
    summary="Set the account's limits for one instrument (the stricter of both applies)",
    description="They only tighten the account's limits: one above its ceiling (the default, "
    "or an admin's limit for the account) is a 422 problem `/problems/limit-above-ceiling`.",
    responses={422: {"description": "A bad body, or a limit above its ceiling."}},
)
async def put_instrument_limits(
    account_id: AccountId, body: InstrumentLimitsIn, caller: CallerDep, runtime: RuntimeDep
) -> AccountOut:
    require(caller, "admin", "trader")
    await _own(runtime, account_id, caller)
    await _within_ceilings(runtime, account_id, body.limits.limits())
    await runtime.store.put_limits(account_id, body.limits.limits(), body.instrument_id)
    return await _account(runtime, account_id)


@router.post(
    "/accounts/{account_id}/kill-switch",
    summary="Engage or release the account's kill switch (engaging cancels its open orders)",
)
async def account_kill_switch(
    account_id: AccountId, body: SwitchIn, caller: CallerDep, runtime: RuntimeDep
) -> AccountOut:
    require(caller, "admin", "trader")
    await _own(runtime, account_id, caller)
    await runtime.decider.set_kill_switch(
        account_id, body.engaged, body.reason, by=UserId(caller.user_id)
    )
    return await _account(runtime, account_id)


@router.post("/accounts/{account_id}/state", summary="Set the account's trading state (admin)")
async def set_state(
    account_id: AccountId, body: StateIn, caller: CallerDep, runtime: RuntimeDep
) -> AccountOut:
    require(caller, "admin")
    await runtime.decider.set_state(account_id, body.state, body.reason, by=UserId(caller.user_id))
    return await _account(runtime, account_id)


@router.get("/kill-switch", summary="The platform-wide kill switch")
async def get_global(caller: CallerDep, runtime: RuntimeDep) -> GlobalSwitchOut:
    engaged, reason = await runtime.store.global_switch()
    return GlobalSwitchOut(engaged=engaged, reason=reason)


@router.post(
    "/kill-switch",
    summary="Engage or release the platform-wide kill switch (admin; cancels open orders)",
)
async def set_global(body: SwitchIn, caller: CallerDep, runtime: RuntimeDep) -> GlobalSwitchOut:
    require(caller, "admin")
    await runtime.decider.set_global_switch(body.engaged, body.reason, by=UserId(caller.user_id))
    engaged, reason = await runtime.store.global_switch()
    return GlobalSwitchOut(engaged=engaged, reason=reason)


@router.put(
    "/accounts/{account_id}/buying-power",
    summary="Override risk's copy of an account's buying power (admin)",
    description="Risk learns an account's cash and terms from execution (AccountChanged: a "
    "paper account's when it is opened or its terms change, an exchange account's from its "
    "venue's balances) and moves the cash with every fill. An admin sets them here for an "
    "account execution does not announce or to correct them (the next AccountChanged replaces "
    "them); `cash` left out keeps it. 403 problem for anyone but an admin.",
    responses={403: {"description": "Not an admin."}},
)
async def put_buying_power(
    account_id: AccountId, body: BuyingPowerIn, caller: CallerDep, runtime: RuntimeDep
) -> AccountOut:
    require(caller, "admin")
    row = await runtime.store.account(account_id)
    leverage = body.max_leverage
    if leverage is None:
        margin = body.margin_mode is MarginMode.MARGIN
        leverage = row.max_leverage if row is not None and margin else Decimal(1)
    if body.margin_mode is MarginMode.CASH and leverage != 1:
        raise ProblemError(
            422,
            "Invalid buying power",
            "A cash account borrows nothing: its max_leverage is 1.",
            type="/problems/invalid-buying-power",
        )
    fee = body.fee_bps if body.fee_bps is not None else (row.fee_bps if row else Decimal(0))
    terms = AccountTerms(body.margin_mode, leverage, body.allow_short, fee)
    await runtime.store.put_buying_power(account_id, terms, body.cash, body.cash is not None)
    return await _account(runtime, account_id)
