"""Manual orders: the one route the gateway serves itself rather than forwards.

A manual order is an intent like a bot's: a `SubmitOrder` (source "manual") published on
orders.intents.v1, keyed by account, for risk to decide and execution to place (ARCHITECTURE's
order path: gateway -> risk -> execution). The request's trace continues through both, because
the publish carries the gateway's span as `traceparent`.

The client may name the order (`client_order_id`, the idempotency key end to end): sending the
same order again, after a lost answer, gives the same id, and risk decides an id once. Without
one, the gateway makes one. The answer is 202: the order is accepted for risk's decision, which
arrives as an event (the caller's event stream, or `GET /api/v1/orders/{id}` once placed).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.responses import JSONResponse, Response
from trademesh_events.ids import ClientOrderId, InstrumentId
from trademesh_events.money import Amount
from trademesh_events.orders import OrderType, Side, SubmitOrder, TimeInForce
from trademesh_http import ProblemError

from trademesh_gateway.api.deps import Runtime
from trademesh_gateway.proxy import Caller


class ManualOrder(BaseModel):
    """An order a user places by hand on one of their accounts."""

    model_config = ConfigDict(extra="forbid")

    account_id: uuid.UUID = Field(description="One of the caller's accounts.")
    instrument_id: InstrumentId
    side: Side
    order_type: OrderType = OrderType.LIMIT
    quantity: Amount = Field(gt=0, max_digits=30, decimal_places=12)
    limit_price: Amount | None = Field(None, gt=0, max_digits=30, decimal_places=12)
    stop_price: Amount | None = Field(None, gt=0, max_digits=30, decimal_places=12)
    time_in_force: TimeInForce = TimeInForce.GTC
    reduce_only: bool = False
    client_order_id: ClientOrderId | None = Field(
        None, description="Your idempotency key for this order (sending it again is safe)."
    )


class OrderAccepted(BaseModel):
    """A manual order accepted for risk's decision (202)."""

    client_order_id: ClientOrderId
    account_id: uuid.UUID
    status: Literal["submitted"] = "submitted"
    event_id: uuid.UUID = Field(description="The id of the intent's event on the bus.")
    submitted_at: datetime


def _invalid(errors: Sequence[Mapping[str, Any]]) -> ProblemError:
    # Where and why, never the values sent.
    return ProblemError(
        422,
        "Invalid order",
        "; ".join(f"{'.'.join(map(str, e.get('loc', ()))) or 'body'}: {e['msg']}" for e in errors),
        type="/problems/invalid-order",
    )


async def submit_order(runtime: Runtime, caller: Caller, body: bytes) -> Response:
    """Publish the caller's order as an intent on orders.intents.v1; 202 with its id."""
    try:
        order = ManualOrder.model_validate_json(body or b"{}")
    except ValidationError as exc:
        raise _invalid(exc.errors(include_input=False)) from None
    now = datetime.now(UTC)
    try:
        intent = SubmitOrder(
            **order.model_dump(exclude={"client_order_id"}),
            user_id=caller.user_id,
            client_order_id=order.client_order_id or f"man-{uuid.uuid4().hex[:28]}",
            source="manual",
            created_at=now,
            # No decided_at: that is market time (a bot's last bar), which the gateway does not
            # know; a replayed market runs years behind the wall clock. Execution then fills the
            # order on the first bar after it reads it.
        )
    except ValidationError as exc:
        raise _invalid(exc.errors(include_input=False)) from None
    envelope = await runtime.bus.publish(intent)
    accepted = OrderAccepted(
        client_order_id=intent.client_order_id,
        account_id=intent.account_id,
        event_id=envelope.id,
        submitted_at=now,
    )
    return JSONResponse(
        accepted.model_dump(mode="json"),
        status_code=202,
        headers={"Location": f"/api/v1/orders/{intent.client_order_id}"},
    )
