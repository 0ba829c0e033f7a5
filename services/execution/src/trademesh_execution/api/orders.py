"""/api/v1/orders: the caller's orders (list, get with its history), and cancel."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from fastapi import APIRouter
from pydantic import BaseModel
from trademesh_events.money import Amount, MoneyAmount
from trademesh_events.orders import OrderStatus
from trademesh_http import ProblemError
from trademesh_http.pagination import Page, PageDep, paginate

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
    history: list[TransitionOut] | None = None


def _out(order: OrderView) -> OrderOut:
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
        fees=order.fees,
        venue_order_id=order.venue_order_id,
        created_at=order.created_at,
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
    return OrderPage(items=[_out(order_view(row)) for row in items], next_cursor=cursor)


async def _own(runtime: RuntimeDep, client_order_id: str, caller: UUID) -> OrderView:
    found = await runtime.store.order(client_order_id)
    if found is None or found[0].user_id != caller:
        raise ProblemError(404, "Unknown order", f"No order {client_order_id}.")
    return found[0]


@router.get("/{client_order_id}", summary="One order and its state history")
async def get_order(client_order_id: str, caller: CallerDep, runtime: RuntimeDep) -> OrderOut:
    order = await _own(runtime, client_order_id, caller)
    out = _out(order)
    out.history = [
        TransitionOut(status=r["status"], reason=r["reason"], at=r["at"])
        for r in await runtime.store.history(client_order_id)
    ]
    return out


@router.post("/{client_order_id}/cancel", summary="Cancel an open order")
async def cancel(client_order_id: str, caller: CallerDep, runtime: RuntimeDep) -> OrderOut:
    order = await _own(runtime, client_order_id, caller)
    assert runtime.db is not None
    async with runtime.db.transaction() as conn:
        done = await runtime.orders.cancel(
            conn, client_order_id, "cancelled by the user", order.account_id
        )
    assert done is not None
    return _out(done)
