"""/api/v1/notify/channels/{channel_id}/deliveries: a channel's deliveries as its owner sees them
(its dead letters above all), and a dead one tried again. Another user's channel is a 404."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import BaseModel
from trademesh_http import ProblemError
from trademesh_http.caller import CallerDep
from trademesh_http.pagination import Page, PageDep, paginate

from trademesh_notify.api.deps import DeliveriesDep
from trademesh_notify.store import DeliveryRow, DeliveryStatus

router = APIRouter(prefix="/notify/channels/{channel_id}/deliveries", tags=["notify"])


class DeliveryOut(BaseModel):
    """One delivery of an event to the channel (never its body: the event is the caller's, but
    the list is for seeing what went wrong)."""

    event_id: UUID
    event_kind: str
    event_type: str
    status: DeliveryStatus
    attempts: int
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime
    sent_at: datetime | None

    @classmethod
    def of(cls, row: DeliveryRow) -> DeliveryOut:
        return cls(**vars(row))


class DeliveryPage(Page[DeliveryOut]):
    """A page of a channel's deliveries, newest first."""


def _unknown_channel(channel_id: UUID) -> ProblemError:
    return ProblemError(404, "Unknown channel", f"You have no channel {channel_id}.")


@router.get("", summary="Your channel's deliveries, newest first (status=dead: its dead letters)")
async def list_deliveries(
    channel_id: UUID,
    caller: CallerDep,
    deliveries: DeliveriesDep,
    request: PageDep,
    status: Annotated[DeliveryStatus | None, Query(description="Only these.")] = None,
) -> DeliveryPage:
    rows = await deliveries.of_channel(
        channel_id, caller.user_id, status, request.after(datetime, UUID), request.fetch
    )
    if rows is None:
        raise _unknown_channel(channel_id)
    items, cursor = paginate(rows, request, lambda row: (row.created_at, row.event_id))
    return DeliveryPage(items=[DeliveryOut.of(row) for row in items], next_cursor=cursor)


@router.post(
    "/{event_id}/retry", summary="Send a dead delivery again (pending, due now, fresh attempts)"
)
async def retry_delivery(
    channel_id: UUID, event_id: UUID, caller: CallerDep, deliveries: DeliveriesDep
) -> DeliveryOut:
    retried = await deliveries.retry(channel_id, caller.user_id, event_id)
    if retried is None:
        raise ProblemError(
            404, "Unknown delivery", f"Your channel {channel_id} has no delivery of {event_id}."
        )
    if retried is DeliveryStatus.HELD:
        raise ProblemError(
            409,
            "Channel disabled",
            "Enable the channel first: a disabled channel is sent nothing.",
            type="/problems/channel-disabled",
        )
    if isinstance(retried, DeliveryStatus):
        raise ProblemError(
            409,
            "Delivery not dead",
            f"Only a dead delivery is tried again; this one is {retried.value}.",
            type="/problems/delivery-not-dead",
            delivery_status=retried.value,
        )
    return DeliveryOut.of(retried)
