"""Telegram channels' transport: the Bot API's sendMessage, the text in MarkdownV2.

The bot token is part of the URL's path (`/bot<token>/sendMessage`), so the URL is never logged
or put in an error: the request goes through httpx's transport directly (httpx's client logs
every request's URL at INFO), and failures are reported by exception type or by Telegram's own
`error_code` and `description`. The API's host (an admin's setting, api.telegram.org by
default) goes through the same address guard as webhooks: resolved once, every address checked,
the connection made to the checked address with the host name as TLS server name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

import httpx
from pydantic import SecretStr, ValidationError

from trademesh_notify.channel_config import TelegramConfig, check_bot_token
from trademesh_notify.render import render, telegram_text
from trademesh_notify.store import Due
from trademesh_notify.transports import SendError
from trademesh_notify.webhook.sender import WebhookError, check_url, resolve
from trademesh_notify.webhook.ssrf import AddressKind

# Answers that say the channel itself is wrong (bad request such as "chat not found", a token
# revoked or unknown, the bot blocked or removed from the chat): retrying cannot help until the
# owner fixes the channel, so the delivery is dead at once rather than after every back-off.
PERMANENT_CODES = frozenset({400, 401, 403, 404})
_DESCRIPTION_LIMIT = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def outcome(status: int, raw: bytes, secret: str = "") -> None:
    """What a Bot API answer means: nothing when the message was taken (`ok: true`), else
    SendError: after `parameters.retry_after` seconds for a 429, permanent for PERMANENT_CODES,
    to be tried again otherwise. Pure."""
    try:
        answer: Any = json.loads(raw)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        if 200 <= status < 300:
            raise SendError(f"Telegram answered HTTP {status} without a Bot API answer")
        answer = {}
    if 200 <= status < 300 and answer.get("ok") is True:
        return
    code = answer.get("error_code")
    code = code if isinstance(code, int) and not isinstance(code, bool) else status
    description = answer.get("description")
    message = f"Telegram answered {code}"
    if isinstance(description, str) and description:
        text = _CONTROL.sub(" ", description)[:_DESCRIPTION_LIMIT]
        message += f": {text.replace(secret, '[REDACTED]') if secret else text}"
    if code == 429 or status == 429:
        parameters = answer.get("parameters")
        after = parameters.get("retry_after") if isinstance(parameters, dict) else None
        if isinstance(after, bool) or not isinstance(after, int | float) or after <= 0:
            after = None
        raise SendError(message, retry_after_s=None if after is None else float(after))
    raise SendError(message, permanent=code in PERMANENT_CODES)


class TelegramTransport:
    """Posts a delivery's rendered text to the channel's chat with its bot's token."""

    def __init__(self, api_base: str, allowed: Iterable[AddressKind], timeout_s: float) -> None:
        self.api = check_url(api_base)  # ValueError for a base that is not http(s)://host
        self.allowed = frozenset(allowed)
        self.timeout = httpx.Timeout(timeout_s)
        self._transport = httpx.AsyncHTTPTransport(retries=0)

    async def send(self, due: Due, secret: str) -> None:
        try:
            config = TelegramConfig.model_validate(due.config)
        except ValidationError:
            raise SendError(
                "the channel's Telegram settings are not valid", permanent=True
            ) from None
        check_bot_token(SecretStr(secret))  # only a token's characters go into the URL's path
        port = self.api.port or (443 if self.api.scheme == "https" else 80)
        try:
            address = await resolve(self.api.host, port, self.allowed)
        except WebhookError as exc:
            raise SendError(f"Telegram API: {exc}") from None
        host = self.api.host if self.api.port is None else f"{self.api.host}:{self.api.port}"
        request = httpx.Request(
            "POST",
            self.api.copy_with(
                host=str(address), path=f"{self.api.path.rstrip('/')}/bot{secret}/sendMessage"
            ),
            json={
                "chat_id": config.chat_id,
                "text": telegram_text(render(due.body)),
                "parse_mode": "MarkdownV2",
            },
            headers={"Host": host},
            extensions={
                "timeout": self.timeout.as_dict(),
                **({"sni_hostname": self.api.host} if self.api.scheme == "https" else {}),
            },
        )
        try:
            response = await self._transport.handle_async_request(request)
            try:
                raw = await response.aread()
            finally:
                await response.aclose()
        except httpx.TimeoutException:
            raise SendError("Telegram API: timed out") from None
        except httpx.HTTPError as exc:
            raise SendError(f"Telegram API: {type(exc).__name__}") from None
        outcome(response.status_code, raw, secret)

    async def aclose(self) -> None:
        await self._transport.aclose()
