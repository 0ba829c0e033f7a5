"""Manual orders: the one route the gateway serves itself rather than forwards.

A manual order is an intent like a bot's: a `SubmitOrder` (source "manual") published on
orders.intents.v1, keyed by account, for risk to decide and execution to place (the order flow
of docs/architecture.md: gateway -> risk -> execution). The request's trace continues through
both, because the publish carries the gateway's span as `traceparent`.

The client may name the order (`client_order_id`, the idempotency key end to end); without one,
the gateway makes one. Before publishing, the gateway has execution record the order
(INITIALIZED, decision 0113), which claims the id once under its primary key, so:
- a new order is 202: accepted for risk's decision, which arrives as an event (the caller's
  event stream) and on the order itself (`GET /api/v1/orders/{id}`, readable at once);
- the same id and body again, even while the first post is in flight, is 200 with the order as
  it is now (no second 202, and its intent is not published twice unless risk has still not
  decided it after RESEND_INTENT_AFTER: the first publish may have been lost);
- the same id with another body is a 409 problem.
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
from trademesh_gateway.engine import resend_intent
from trademesh_gateway.proxy import Caller

PROBLEM_JSON = "application/problem+json"


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
    """Record the caller's order at execution, then publish it as an intent on
    orders.intents.v1: 202 with its id; 200 for an order sent before, 409 for another order
    under its id (see the module's docstring)."""
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
    location = {"Location": f"/api/v1/orders/{intent.client_order_id}"}
    recorded = await runtime.proxy.call_as(
        caller, "execution", "POST", "/api/v1/orders", intent.model_dump_json().encode()
    )
    if recorded.status_code == 200:  # sent before: the order as it is now, never a second 202
        kept = recorded.json()
        if resend_intent(kept["status"], datetime.fromisoformat(kept["created_at"]), now):
            await runtime.bus.publish(intent)
        return JSONResponse(kept, status_code=200, headers=location)
    if recorded.status_code != 201:
        if 400 <= recorded.status_code < 500:  # execution's problem (404, 409, 422), as it is
            return Response(
                recorded.content, status_code=recorded.status_code, media_type=PROBLEM_JSON
            )
        raise ProblemError(502, "Upstream unavailable", "The execution service could not answer.")
    envelope = await runtime.bus.publish(intent)
    accepted = OrderAccepted(
        client_order_id=intent.client_order_id,
        account_id=intent.account_id,
        event_id=envelope.id,
        submitted_at=now,
    )
    return JSONResponse(accepted.model_dump(mode="json"), status_code=202, headers=location)
