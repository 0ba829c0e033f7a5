"""Webhook channels' transport: the body, signed, POSTed by the webhook sender."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from trademesh_notify.store import Due
from trademesh_notify.transports import SendError
from trademesh_notify.webhook.sender import WebhookError, WebhookSender
from trademesh_notify.webhook.signing import (
    DELIVERY_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    signature,
)


class WebhookTransport:
    """Signs the body with the channel's secret (webhook/signing.py) and POSTs it."""

    def __init__(self, sender: WebhookSender, clock: Callable[[], datetime]) -> None:
        self.sender = sender
        self.clock = clock

    async def send(self, due: Due, secret: str) -> None:
        if due.url is None:
            raise SendError("the webhook channel has no URL")
        timestamp = int(self.clock().timestamp())
        headers = {
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: signature(secret, timestamp, due.body),
            DELIVERY_HEADER: f"{due.event_id}:{due.channel_id}",
            EVENT_TYPE_HEADER: due.event_type,
        }
        try:
            await self.sender.post(due.url, headers, due.body)
        except WebhookError as exc:
            raise SendError(str(exc)) from None
