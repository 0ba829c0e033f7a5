"""/api/v1/orders: the caller's orders (list, get with its history), cancel, and a manual
order's intent recorded before the gateway publishes it.

Every order has one story here (decision 0113): recorded (INITIALIZED) until risk decides it,
then DENIED with risk's reason, or placed (PENDING onwards) and worked to its end."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Response
from pydantic import BaseModel, Field
from trademesh_events.ids import ClientOrderId, UserId
from trademesh_events.money import Amount, MoneyAmount
from trademesh_events.orders import OrderStatus, SubmitOrder
from trademesh_http import ProblemError
from trademesh_http.pagination import Page, PageDep, paginate
from trademesh_trading.currencies import in_currency, quote_currency

from trademesh_execution.api.deps import CallerDep, RuntimeDep
from trademesh_execution.engine import OrderView
from trademesh_execution.store import order_view

router = APIRouter(prefix="/orders", tags=["orders"])


class TransitionOut(BaseModel):
    status: str
    reason: str | None
    at: datetime


class OrderOut(BaseModel):
    client_order_id: str
    account_id: UUID
    instrument_id: str
    side: str
    order_type: str
    quantity: Amount
    limit_price: Amount | None
    stop_price: Amount | None
    time_in_force: str
    status: OrderStatus
    filled: Amount
    avg_price: Amount | None
    fees: MoneyAmount
    venue_order_id: str | None
    created_at: datetime
    reason_code: str | None = Field(
        None, description="The decision's reason code (risk's, for a DENIED order)."
    )
    reason: str | None = Field(None, description="Why the order is where it is, in words.")
    history: list[TransitionOut] | None = None


def _out(order: OrderView, row: asyncpg.Record) -> OrderOut:
    return OrderOut(
        client_order_id=order.client_order_id,
        account_id=order.account_id,
        instrument_id=order.instrument_id,
        side=order.side,
        order_type=order.order_type.value,
        quantity=order.quantity,
        limit_price=order.limit_price,
        stop_price=order.stop_price,
        time_in_force=order.time_in_force.value,
        status=order.status,
        filled=order.filled,
        avg_price=order.avg_price,
        fees=in_currency(order.fees, quote_currency(order.instrument_id)),
        venue_order_id=order.venue_order_id,
        created_at=order.created_at,
        reason_code=row["reason_code"],
        reason=row["reason"],
    )


class OrderPage(Page[OrderOut]):
    pass


@router.get("", summary="The caller's orders, newest first")
async def list_orders(
    caller: CallerDep,
    runtime: RuntimeDep,
    request: PageDep,
    status: OrderStatus | None = None,
) -> OrderPage:
    accounts = [a.account_id for a in await runtime.store.accounts(caller)]
    after = request.after(datetime, str)
    rows = await runtime.store.orders_page(
        accounts, request.fetch, status.value if status else None, after
    )
    items, cursor = paginate(rows, request, lambda r: (r["created_at"], r["client_order_id"]))
    return OrderPage(items=[_out(order_view(row), row) for row in items], next_cursor=cursor)


@router.post(
    "",
    status_code=201,
    summary="Record a manual order before its intent is published (the gateway's call)",
    responses={
        200: {"description": "The same order was recorded before: the kept one."},
        409: {"description": "The client order id names another order."},
    },
)
async def record_intent(
    intent: SubmitOrder, caller: CallerDep, runtime: RuntimeDep, response: Response
) -> OrderOut:
    recorded = await runtime.orders.record_intent(intent, caller)
    if not recorded.created:
        response.status_code = 200
    return _out(recorded.order, recorded.row)


async def _own(
    runtime: RuntimeDep, client_order_id: ClientOrderId, caller: UserId
) -> tuple[OrderView, asyncpg.Record]:
    found = await runtime.store.order(client_order_id)
    if found is None or found[0].user_id != caller:
        raise ProblemError(404, "Unknown order", f"No order {client_order_id}.")
    return found


@router.get("/{client_order_id}", summary="One order and its state history")
async def get_order(client_order_id: str, caller: CallerDep, runtime: RuntimeDep) -> OrderOut:
    out = _out(*await _own(runtime, client_order_id, caller))
    out.history = [
        TransitionOut(status=r["status"], reason=r["reason"], at=r["at"])
        for r in await runtime.store.history(client_order_id)
    ]
    return out


@router.post("/{client_order_id}/cancel", summary="Cancel an open order")
async def cancel(client_order_id: str, caller: CallerDep, runtime: RuntimeDep) -> OrderOut:
    order, _ = await _own(runtime, client_order_id, caller)
    if order.status is OrderStatus.INITIALIZED:
        raise ProblemError(
            409,
            "Order not decided yet",
            f"Risk has not decided order {client_order_id}: cancel it once it is placed.",
        )
    assert runtime.db is not None
    async with runtime.db.transaction() as conn:
        done = await runtime.orders.cancel(
            conn, client_order_id, "cancelled by the user", order.account_id
        )
    assert done is not None
    return _out(*await _own(runtime, client_order_id, caller))
