"""A user's channels: create (a webhook's signing secret is sealed, and shown once; a Telegram bot
token or an SMTP password is sealed, and never shown), list, delete."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from uuid import UUID

from pydantic import SecretStr
from trademesh_events.envelope import new_event_id
from trademesh_keystore import Keystore

from trademesh_notify.channel_config import EmailConfig, TelegramConfig
from trademesh_notify.engine import ChannelKind, EventKind
from trademesh_notify.store import Channel, ChannelStore
from trademesh_notify.transports.smtp import EmailTransport
from trademesh_notify.webhook.sender import WebhookSender
from trademesh_notify.webhook.signing import new_secret


class NoKeystore(RuntimeError):
    """The service has no master key: it cannot seal a channel's secret."""


def secret_aad(channel_id: UUID) -> dict[str, str]:
    """What a channel's sealed secret is bound to: a sealed secret moved to another channel's
    row does not open."""
    return {"service": "notify", "channel_id": str(channel_id)}


class Channels:
    """Create, list and delete a user's channels; the owner is always the caller."""

    def __init__(
        self,
        store: ChannelStore,
        keystore: Keystore | None,
        sender: WebhookSender,
        clock: Callable[[], datetime],
        email: EmailTransport,
    ) -> None:
        self.store = store
        self.keystore = keystore
        self.sender = sender
        self.clock = clock
        self.email = email

    async def create_webhook(
        self, owner_id: UUID, url: str, events: Iterable[EventKind]
    ) -> tuple[Channel, SecretStr]:
        """A webhook channel of `owner_id` and its signing secret (returned here only: it is kept
        sealed). Raises ValueError or BlockedAddress for a URL webhooks may not have, NoKeystore
        without a master key."""
        if self.keystore is None:
            raise NoKeystore("no master key is configured to seal the channel's secret")
        await self.sender.check_host(url)
        channel_id = new_event_id()  # a UUIDv7: channels list in creation order
        secret = SecretStr(new_secret())
        sealed = self.keystore.seal(secret, aad=secret_aad(channel_id))
        channel = await self.store.add(
            channel_id, owner_id, ChannelKind.WEBHOOK, url, sealed.to_bytes(), events, self.clock()
        )
        return channel, secret

    async def create_telegram(
        self,
        owner_id: UUID,
        config: TelegramConfig,
        bot_token: SecretStr,
        events: Iterable[EventKind],
    ) -> Channel:
        """A Telegram channel of `owner_id`: its chat id kept, its bot token sealed (never
        returned). NoKeystore without a master key."""
        return await self._add(
            owner_id, ChannelKind.TELEGRAM, config.model_dump(mode="json"), bot_token, events
        )

    async def create_email(
        self, owner_id: UUID, config: EmailConfig, password: SecretStr, events: Iterable[EventKind]
    ) -> Channel:
        """An e-mail channel of `owner_id`: its SMTP settings kept, its password sealed (never
        returned). Raises ValueError or BlockedAddress for a host mail may not go to (plain SMTP
        to a public address included), WebhookError for one that does not resolve, NoKeystore
        without a master key."""
        if self.keystore is None:
            raise NoKeystore("no master key is configured to seal the channel's secret")
        await self.email.check(config)
        return await self._add(owner_id, ChannelKind.EMAIL, config.stored(), password, events)

    async def _add(
        self,
        owner_id: UUID,
        kind: ChannelKind,
        config: dict[str, object],
        secret: SecretStr,
        events: Iterable[EventKind],
    ) -> Channel:
        if self.keystore is None:
            raise NoKeystore("no master key is configured to seal the channel's secret")
        channel_id = new_event_id()
        sealed = self.keystore.seal(secret, aad=secret_aad(channel_id))
        return await self.store.add(
            channel_id, owner_id, kind, None, sealed.to_bytes(), events, self.clock(), config
        )

    async def of_owner(self, owner_id: UUID) -> list[Channel]:
        return await self.store.of_owner(owner_id)

    async def delete(self, channel_id: UUID, owner_id: UUID) -> bool:
        return await self.store.delete(channel_id, owner_id)

    async def disable(self, channel_id: UUID, owner_id: UUID) -> Channel | None:
        """No new deliveries to the channel, its pending ones held; None: not the owner's."""
        return await self.store.disable(channel_id, owner_id, self.clock())

    async def enable(self, channel_id: UUID, owner_id: UUID) -> Channel | None:
        """Deliveries again, the held ones due now; None: not the owner's."""
        return await self.store.enable(channel_id, owner_id, self.clock())
