"""E-mail channels' transport: a plain-text mail over SMTP (aiosmtplib), logged in.

The SMTP host is the user's, so it goes through the webhooks' address guard: resolved once,
every address checked, the connection made to the checked address (a socket handed to
aiosmtplib), and TLS checked against the host name (SNI and certificate). STARTTLS is required
when asked (never skipped because the server does not offer it); plain SMTP is allowed only to
a server whose every address is of a non-public kind an admin allowed.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable, Iterable
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime

import aiosmtplib
from pydantic import ValidationError

from trademesh_notify.channel_config import EmailConfig, SmtpTls
from trademesh_notify.render import render
from trademesh_notify.store import Due
from trademesh_notify.transports import SendError
from trademesh_notify.webhook.sender import WebhookError, resolve_all
from trademesh_notify.webhook.ssrf import AddressKind, IPAddress, classify


def plain_allowed(addresses: Iterable[IPAddress]) -> bool:
    """Whether SMTP without TLS may go to a host of these (already checked) addresses: only
    when none of them is public. Pure."""
    listed = list(addresses)
    return bool(listed) and all(classify(address) is not None for address in listed)


def message_of(due: Due, config: EmailConfig, now: datetime) -> EmailMessage:
    """The mail of a delivery: its rendered subject and text, from and to the channel's
    addresses, with a Message-ID that stays the same across retries (receivers may drop a
    duplicate: delivery is at least once)."""
    rendered = render(due.body)
    message = EmailMessage()
    message["Subject"] = rendered.subject
    message["From"] = config.sender
    message["To"] = ", ".join(config.to)
    message["Date"] = format_datetime(now)
    message["Message-ID"] = f"<{due.event_id}.{due.channel_id}@notify.trademesh>"
    message.set_content(rendered.text)
    return message


class EmailTransport:
    """Sends each delivery as one mail through the channel's SMTP server."""

    def __init__(
        self,
        allowed: Iterable[AddressKind],
        timeout_s: float,
        clock: Callable[[], datetime],
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.allowed = frozenset(allowed)
        self.timeout_s = timeout_s
        self.clock = clock
        self.tls_context = tls_context  # None: the system's trust store, certificates checked

    async def check(self, config: EmailConfig) -> list[IPAddress]:
        """The host's addresses, if mail may go there now: BlockedAddress (a ValueError) for an
        address not allowed or for plain SMTP to a public one, WebhookError if it does not
        resolve."""
        addresses = await resolve_all(config.host, config.port, self.allowed)
        if config.tls is SmtpTls.NONE and not plain_allowed(addresses):
            raise ValueError(
                "SMTP without TLS is allowed only to a server on a non-public address an admin "
                "allowed; use starttls or tls"
            )
        return addresses

    async def send(self, due: Due, secret: str) -> None:
        try:
            config = EmailConfig.model_validate(due.config)
        except ValidationError:
            raise SendError("the channel's SMTP settings are not valid", permanent=True) from None
        try:
            addresses = await self.check(config)
        except WebhookError as exc:
            raise SendError(f"SMTP host: {exc}") from None
        message = message_of(due, config, self.clock())
        try:
            async with asyncio.timeout(self.timeout_s):
                sock = await _connect(addresses[0], config.port)
                smtp = aiosmtplib.SMTP(
                    hostname=config.host,  # the TLS server name; the socket is connected
                    sock=sock,
                    use_tls=config.tls is SmtpTls.TLS,
                    start_tls=config.tls is SmtpTls.STARTTLS,
                    tls_context=self.tls_context,
                    username=config.username,
                    password=secret,
                    local_hostname=socket.gethostname(),
                    timeout=self.timeout_s,
                )
                async with smtp:
                    await smtp.send_message(message)
        except TimeoutError:
            raise SendError("SMTP: timed out") from None
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = sorted({refused.code for refused in exc.recipients})
            raise SendError(
                f"SMTP refused the recipients ({', '.join(map(str, codes))})",
                permanent=all(code >= 500 for code in codes),
            ) from None
        except aiosmtplib.SMTPResponseException as exc:
            # 5xx is a permanent refusal (RFC 5321, 4.2.1): a wrong login, a sender refused.
            raise SendError(
                f"SMTP answered {exc.code} ({type(exc).__name__})", permanent=exc.code >= 500
            ) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise SendError(f"SMTP: {type(exc).__name__}") from None


async def _connect(address: IPAddress, port: int) -> socket.socket:
    """A TCP socket connected to the checked `address` (never to a name resolved again)."""
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, (str(address), port))
    except BaseException:
        sock.close()
        raise
    return sock
