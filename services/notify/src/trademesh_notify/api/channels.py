"""/api/v1/notify/channels: the caller's channels. A webhook's signing secret is in the answer
to its creation, and never again; a Telegram bot token or an SMTP password is never in an
answer."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Body, Response
from pydantic import BaseModel, ConfigDict, Discriminator, Field, SecretStr, Tag, field_validator
from trademesh_http import ProblemError
from trademesh_http.caller import CallerDep

from trademesh_notify.api.deps import ChannelsDep
from trademesh_notify.channel_config import (
    EmailConfig,
    TelegramConfig,
    check_bot_token,
    check_smtp_password,
)
from trademesh_notify.engine import ChannelKind, EventKind
from trademesh_notify.store import Channel
from trademesh_notify.usecases.channels import NoKeystore
from trademesh_notify.webhook.sender import BlockedAddress, WebhookError

router = APIRouter(prefix="/notify/channels", tags=["notify"])

Events = Annotated[list[EventKind], Field(min_length=1, max_length=len(EventKind))]


class NewWebhook(BaseModel):
    """A webhook channel: its URL and the kinds of event it receives (`kind` may be left out)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal[ChannelKind.WEBHOOK] = ChannelKind.WEBHOOK
    url: Annotated[str, Field(min_length=1, max_length=2048)]
    events: Events


class NewTelegram(TelegramConfig):
    """A Telegram channel: the chat, the bot's token (kept sealed, never shown again), and the
    kinds of event it receives."""

    kind: Literal[ChannelKind.TELEGRAM]
    bot_token: SecretStr
    events: Events

    @field_validator("bot_token")
    @classmethod
    def _token(cls, token: SecretStr) -> SecretStr:
        return check_bot_token(token)

    def config(self) -> TelegramConfig:
        return TelegramConfig(chat_id=self.chat_id)


class NewEmail(EmailConfig):
    """An e-mail channel: the SMTP server, login (the password kept sealed, never shown again),
    sender, recipients, TLS mode, and the kinds of event it receives."""

    kind: Literal[ChannelKind.EMAIL]
    password: SecretStr
    events: Events

    @field_validator("password")
    @classmethod
    def _password(cls, password: SecretStr) -> SecretStr:
        return check_smtp_password(password)

    def config(self) -> EmailConfig:
        return EmailConfig.model_validate(self.model_dump(include=set(EmailConfig.model_fields)))


def _kind_of(value: Any) -> str:
    """The body's `kind`; a body without one is a webhook's (as before other kinds existed)."""
    kind = value.get("kind") if isinstance(value, dict) else getattr(value, "kind", None)
    return str(ChannelKind.WEBHOOK.value if kind is None else kind)


NewChannel = Annotated[
    Annotated[NewWebhook, Tag(ChannelKind.WEBHOOK.value)]
    | Annotated[NewTelegram, Tag(ChannelKind.TELEGRAM.value)]
    | Annotated[NewEmail, Tag(ChannelKind.EMAIL.value)],
    Discriminator(
        _kind_of,
        custom_error_type="channel_kind",
        custom_error_message="kind is one of: webhook, telegram, email",
    ),
]


class ChannelOut(BaseModel):
    """A channel as its owner sees it (never its secret): a webhook's URL, or another kind's
    settings in `config` (a Telegram chat id; an SMTP host, port, username, from, to, tls)."""

    id: UUID
    kind: ChannelKind
    url: str | None
    config: dict[str, Any]
    events: list[EventKind]
    created_at: datetime
    disabled_at: datetime | None

    @classmethod
    def of(cls, channel: Channel) -> ChannelOut:
        return cls(
            id=channel.id,
            kind=channel.kind,
            url=channel.url,
            config=dict(channel.config),
            events=list(channel.events),
            created_at=channel.created_at,
            disabled_at=channel.disabled_at,
        )


class CreatedChannel(ChannelOut):
    """The channel just created; a webhook's with its signing secret: shown this once, store it
    now (null for the other kinds, whose secret is yours already)."""

    signing_secret: str | None = None


@router.post(
    "",
    status_code=201,
    summary="Add a webhook, Telegram or e-mail channel (a webhook's signing secret shown once)",
)
async def create_channel(
    body: Annotated[NewChannel, Body()], caller: CallerDep, channels: ChannelsDep
) -> CreatedChannel:
    try:
        match body:
            case NewWebhook():
                channel, secret = await channels.create_webhook(
                    caller.user_id, body.url, body.events
                )
                return CreatedChannel(
                    **ChannelOut.of(channel).model_dump(), signing_secret=secret.get_secret_value()
                )
            case NewTelegram():
                channel = await channels.create_telegram(
                    caller.user_id, body.config(), body.bot_token, body.events
                )
            case NewEmail():
                channel = await channels.create_email(
                    caller.user_id, body.config(), body.password, body.events
                )
    except (ValueError, BlockedAddress, WebhookError) as exc:
        what = "Webhook URL" if isinstance(body, NewWebhook) else "SMTP server"
        slug = "webhook-url" if isinstance(body, NewWebhook) else "smtp-server"
        raise ProblemError(422, f"{what} not allowed", str(exc), type=f"/problems/{slug}") from None
    except NoKeystore:
        raise ProblemError(
            503, "Channels unavailable", "This service has no master key to seal secrets with."
        ) from None
    return CreatedChannel(**ChannelOut.of(channel).model_dump())


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
