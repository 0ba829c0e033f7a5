"""/api/v1/notify/channels: the caller's channels. A webhook's signing secret is in the answer
to its creation, and never again."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field
from trademesh_http import ProblemError
from trademesh_http.caller import CallerDep

from trademesh_notify.api.deps import ChannelsDep
from trademesh_notify.engine import ChannelKind, EventKind
from trademesh_notify.store import Channel
from trademesh_notify.usecases.channels import NoKeystore
from trademesh_notify.webhook.sender import BlockedAddress, WebhookError

router = APIRouter(prefix="/notify/channels", tags=["notify"])


class NewChannel(BaseModel):
    """A channel to create: a webhook URL and the kinds of event it receives."""

    model_config = ConfigDict(extra="forbid")

    kind: ChannelKind = ChannelKind.WEBHOOK
    url: Annotated[str, Field(min_length=1, max_length=2048)]
    events: Annotated[list[EventKind], Field(min_length=1, max_length=len(EventKind))]


class ChannelOut(BaseModel):
    """A channel as its owner sees it (never its secret)."""

    id: UUID
    kind: ChannelKind
    url: str
    events: list[EventKind]
    created_at: datetime
    disabled_at: datetime | None

    @classmethod
    def of(cls, channel: Channel) -> ChannelOut:
        return cls(
            id=channel.id,
            kind=channel.kind,
            url=channel.url,
            events=list(channel.events),
            created_at=channel.created_at,
            disabled_at=channel.disabled_at,
        )


class CreatedChannel(ChannelOut):
    """The channel just created, with its signing secret: shown this once, store it now."""

    signing_secret: str


@router.post("", status_code=201, summary="Add a webhook channel (its signing secret shown once)")
async def create_channel(
    body: NewChannel, caller: CallerDep, channels: ChannelsDep
) -> CreatedChannel:
    try:
        channel, secret = await channels.create_webhook(caller.user_id, body.url, body.events)
    except (ValueError, BlockedAddress, WebhookError) as exc:
        raise ProblemError(
            422, "Webhook URL not allowed", str(exc), type="/problems/webhook-url"
        ) from None
    except NoKeystore:
        raise ProblemError(
            503, "Channels unavailable", "This service has no master key to seal secrets with."
        ) from None
    return CreatedChannel(
        **ChannelOut.of(channel).model_dump(), signing_secret=secret.get_secret_value()
    )


@router.get("", summary="Your channels")
async def list_channels(caller: CallerDep, channels: ChannelsDep) -> list[ChannelOut]:
    return [ChannelOut.of(c) for c in await channels.of_owner(caller.user_id)]


@router.delete("/{channel_id}", status_code=204, summary="Delete one of your channels")
async def delete_channel(channel_id: UUID, caller: CallerDep, channels: ChannelsDep) -> Response:
    if not await channels.delete(channel_id, caller.user_id):
        raise ProblemError(404, "Unknown channel", f"You have no channel {channel_id}.")
    return Response(status_code=204)


@router.post("/{channel_id}/disable", summary="Disable one of your channels (held, not lost)")
async def disable_channel(channel_id: UUID, caller: CallerDep, channels: ChannelsDep) -> ChannelOut:
    """No new deliveries; its pending ones are held, and sent once it is enabled again."""
    channel = await channels.disable(channel_id, caller.user_id)
    if channel is None:
        raise ProblemError(404, "Unknown channel", f"You have no channel {channel_id}.")
    return ChannelOut.of(channel)


@router.post("/{channel_id}/enable", summary="Enable one of your channels again")
async def enable_channel(channel_id: UUID, caller: CallerDep, channels: ChannelsDep) -> ChannelOut:
    """Deliveries again: its held ones are due at once."""
    channel = await channels.enable(channel_id, caller.user_id)
    if channel is None:
        raise ProblemError(404, "Unknown channel", f"You have no channel {channel_id}.")
    return ChannelOut.of(channel)
