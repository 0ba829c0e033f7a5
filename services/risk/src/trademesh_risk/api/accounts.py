"""/api/v1/accounts, /api/v1/kill-switch: limits, states and kill switches; an account's exposure
as risk sees it. (The instruments' venue rules are in instruments.py.)"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from trademesh_events.ids import InstrumentId

from trademesh_risk.api.deps import Caller, CallerDep, RuntimeDep, require
from trademesh_risk.engine import Limits, TradingState

router = APIRouter(tags=["risk"])

PositiveMoney = Annotated[Decimal, Field(gt=0, max_digits=30, decimal_places=12)]
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


class PositionOut(BaseModel):
    instrument_id: str
    position: Decimal
    avg_price: Decimal
    realised: Decimal
    pending_buy: Decimal
    pending_sell: Decimal
    last_price: Decimal | None


class AccountOut(BaseModel):
    account_id: UUID
    state: TradingState
    state_reason: str | None
    kill_switch: bool
    kill_reason: str | None
    global_kill_switch: bool
    pnl_day: date | None
    realised_today: Decimal
    limits: dict[str, object]
    instrument_limits: dict[str, dict[str, object]]
    positions: list[PositionOut]


class GlobalSwitchOut(BaseModel):
    engaged: bool
    reason: str | None


def _limits_out(limits: Limits | None) -> dict[str, object]:
    if limits is None:
        return {}
    return {k: v for k, v in limits.__dict__.items() if v is not None}


async def _own(runtime: RuntimeDep, account_id: UUID, caller: Caller) -> None:
    """404 unless the account is the caller's (execution, which keeps accounts, says so); an
    admin may act on every account. Risk keeps limits by account id and cannot tell owners
    apart itself."""
    await runtime.accounts.check(account_id, caller, admin_may=True)


async def _account(runtime: RuntimeDep, account_id: UUID) -> AccountOut:
    store = runtime.store
    row = await store.account(account_id)
    account_limits, _ = await store.limits(account_id, "")
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
                realised=held.realised if held else Decimal(0),
                pending_buy=buy,
                pending_sell=sell,
                last_price=runtime.prices.get(instrument),
            )
        )
    return AccountOut(
        account_id=account_id,
        state=row.state if row else TradingState.ACTIVE,
        state_reason=row.state_reason if row else None,
        kill_switch=row.kill_switch if row else False,
        kill_reason=row.kill_reason if row else None,
        global_kill_switch=global_on,
        pnl_day=row.pnl_day if row else None,
        realised_today=row.realised_today if row else Decimal(0),
        limits=_limits_out(account_limits),
        instrument_limits={
            k: _limits_out(v) for k, v in (await store.instrument_limits(account_id)).items()
        },
        positions=out,
    )


@router.get("/accounts/{account_id}", summary="An account as risk sees it: state, limits, exposure")
async def get_account(account_id: UUID, caller: CallerDep, runtime: RuntimeDep) -> AccountOut:
    await _own(runtime, account_id, caller)
    return await _account(runtime, account_id)


@router.put("/accounts/{account_id}/limits", summary="Set the account's limits")
async def put_limits(
    account_id: UUID, body: LimitsIn, caller: CallerDep, runtime: RuntimeDep
) -> AccountOut:
    require(caller, "admin", "trader")
    await _own(runtime, account_id, caller)
    await runtime.store.put_limits(account_id, body.limits())
    return await _account(runtime, account_id)


@router.put(
    "/accounts/{account_id}/instrument-limits",
    summary="Set the account's limits for one instrument (the stricter of both applies)",
)
async def put_instrument_limits(
    account_id: UUID, body: InstrumentLimitsIn, caller: CallerDep, runtime: RuntimeDep
) -> AccountOut:
    require(caller, "admin", "trader")
    await _own(runtime, account_id, caller)
    await runtime.store.put_limits(account_id, body.limits.limits(), body.instrument_id)
    return await _account(runtime, account_id)


@router.post(
    "/accounts/{account_id}/kill-switch",
    summary="Engage or release the account's kill switch (engaging cancels its open orders)",
)
async def account_kill_switch(
    account_id: UUID, body: SwitchIn, caller: CallerDep, runtime: RuntimeDep
) -> AccountOut:
    require(caller, "admin", "trader")
    await _own(runtime, account_id, caller)
    await runtime.decider.set_kill_switch(account_id, body.engaged, body.reason)
    return await _account(runtime, account_id)


@router.post("/accounts/{account_id}/state", summary="Set the account's trading state (admin)")
async def set_state(
    account_id: UUID, body: StateIn, caller: CallerDep, runtime: RuntimeDep
) -> AccountOut:
    require(caller, "admin")
    await runtime.decider.set_state(account_id, body.state, body.reason)
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
    await runtime.decider.set_global_switch(body.engaged, body.reason)
    engaged, reason = await runtime.store.global_switch()
    return GlobalSwitchOut(engaged=engaged, reason=reason)
