"""What a Telegram or e-mail channel is configured with, validated: pure, no I/O.

The non-secret part (a chat id; an SMTP host, port, user, sender, recipients and TLS mode) is
kept as JSON in the channel's row and shown to its owner; the secret (the bot token, the SMTP
password) is validated here but kept apart, sealed (usecases/channels.py). A validation message
never quotes the value it refused: it may be a secret.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

# A bot token as BotFather hands it out: "<bot id>:<35 URL-safe characters>". Nothing else may
# reach the Bot API URL's path, where the token goes (no "/", "?", "#" or "%").
_BOT_TOKEN = re.compile(r"[0-9]{1,20}:[A-Za-z0-9_-]{20,100}")
# A host name (RFC 1123 labels) or an IPv4 address; an IPv6 literal in brackets-free form.
_HOST = r"^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$|^[0-9A-Fa-f:.]{2,45}$"
# An address in an SMTP envelope and a header: no spaces, control characters, or the
# characters that would make it a list or a display name (header injection is impossible).
_MAILBOX = r"^[^@\s<>,;:\"()\[\]\\]{1,64}@[A-Za-z0-9.-]{1,253}$"

Mailbox = Annotated[str, Field(pattern=_MAILBOX, max_length=254)]


def check_bot_token(token: SecretStr) -> SecretStr:
    """`token` if it has a bot token's form; ValueError (not quoting it) otherwise."""
    if not _BOT_TOKEN.fullmatch(token.get_secret_value()):
        raise ValueError("not a Telegram bot token (<bot id>:<token>, as BotFather gives it)")
    return token


def check_smtp_password(password: SecretStr) -> SecretStr:
    """`password` if SMTP can carry it: 1 to 512 characters, no line breaks or NUL."""
    value = password.get_secret_value()
    if not 1 <= len(value) <= 512 or any(c in value for c in "\r\n\0"):
        raise ValueError("an SMTP password has 1 to 512 characters and no line break")
    return password


class TelegramConfig(BaseModel):
    """A Telegram channel: the chat the bot writes to (a numeric id, negative for groups, or a
    public channel's @username)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    chat_id: (
        Annotated[int, Field(ge=-(10**15), le=10**15)]
        | Annotated[str, Field(pattern=r"^@[A-Za-z][A-Za-z0-9_]{3,31}$")]
    )


class SmtpTls(StrEnum):
    """How the SMTP connection is protected: STARTTLS (port 587, the default), implicit TLS
    (port 465), or none, which is allowed only to a server on a non-public address an admin
    allowed (a relay on loopback or the private network): a password and the events would cross
    the Internet in clear otherwise."""

    STARTTLS = "starttls"
    TLS = "tls"
    NONE = "none"


class EmailConfig(BaseModel):
    """An e-mail channel: the SMTP server, the login, who the mail is from and to."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    host: Annotated[str, Field(pattern=_HOST, max_length=253)]
    port: Annotated[int, Field(ge=1, le=65535)]
    username: Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[^\r\n\x00]+$")]
    sender: Mailbox = Field(alias="from")
    to: Annotated[list[Mailbox], Field(min_length=1, max_length=10)]
    tls: SmtpTls = SmtpTls.STARTTLS

    def stored(self) -> dict[str, Any]:
        """The form kept in the channel's row and shown in the API ("from", not "sender")."""
        return self.model_dump(mode="json", by_alias=True)
