"""The notify service's settings: one frozen class, validated at start."""

from __future__ import annotations

import re

from limits import parse_many
from pydantic import Field, SecretStr, field_validator
from trademesh_config import ConsumerGroup, Port, SchemaName, ServiceName, ServiceSettings
from trademesh_keystore import KeystoreSettings

from trademesh_notify.webhook.ssrf import AddressKind

# Per channel, per kind (docs/decisions/0133-notify-delivery-wake-limits-metrics.md): Telegram
# allows a bot about 1 message a second in one chat and 20 a minute in a group; a webhook is the
# user's own server (enough for a busy bot's fills, a cap on a runaway one); an inbox is read by
# a person.
DEFAULT_RATE_LIMITS = {
    "default": "10/second;300/minute",
    "webhook": "20/second;600/minute",
    "telegram": "1/second;20/minute",
    "email": "10/minute;100/hour",
}
_KIND = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_STORAGE_SCHEMES = ("memory://", "redis://", "rediss://", "valkey://", "valkeys://", "async+")


class Settings(ServiceSettings, KeystoreSettings):
    """What the service reads from TRADEMESH_* variables (and the secrets provider), on top of
    the platform's Kafka, Postgres, HTTP and logging settings, and the master key that seals
    the channels' secrets (KeystoreSettings: without one, channels cannot be created)."""

    service_name: ServiceName = "notify"
    http_port: Port = 8601
    database_schema: SchemaName = "notify"
    consumer_group: ConsumerGroup = "notify"
    webhook_allowed_address_kinds: frozenset[AddressKind] = Field(
        frozenset(),
        description="Non-public address kinds channels may reach (an admin's choice): webhooks, "
        'SMTP servers and the Telegram API base; a JSON list of "loopback", "private", '
        '"link-local". Empty: public addresses only (and SMTP always with TLS).',
    )
    webhook_timeout_s: float = Field(
        10.0,
        gt=0,
        le=60,
        description="How long one webhook or Telegram POST may take, connect included.",
    )
    telegram_api_base: str = Field(
        "https://api.telegram.org",
        pattern=r"^https?://[^/?#@\s]+(/[^?#\s]*)?$",
        max_length=2048,
        description="Where the Telegram Bot API is (an admin's choice: a local Bot API server, "
        "or a test's); its host goes through the same address guard as webhooks.",
    )
    smtp_timeout_s: float = Field(
        15.0, gt=0, le=120, description="How long sending one e-mail may take, all of it."
    )
    public_url: str | None = Field(
        None,
        pattern=r"^https?://[^/?#@\s]+(/[^?#\s]*)?$",
        max_length=1024,
        description="The gateway's address as users reach it (TRADEMESH_PUBLIC_URL): where the "
        "approve/reject links in notifications point. `make run` sets the local gateway's. "
        "Unset, or without approval_link_key: notifications carry no links.",
    )
    approval_link_key: SecretStr | None = Field(
        None,
        min_length=32,
        description="The HMAC key of the signed approve/reject links (TRADEMESH_APPROVAL_LINK_KEY, "
        "the one strategy checks them with; at least 32 characters).",
    )
    delivery_max_attempts: int = Field(
        8, ge=1, le=50, description="Attempts of a delivery before it is dead (owner-visible)."
    )
    delivery_backoff_base_s: float = Field(
        1.0, gt=0, description="The first retry's delay ceiling; it doubles with each attempt."
    )
    delivery_backoff_cap_s: float = Field(
        600.0, gt=0, description="The longest delay between two attempts of a delivery."
    )
    delivery_poll_interval_s: float = Field(
        5.0,
        gt=0,
        le=60,
        description="The longest the delivery loop sleeps: it is woken when deliveries commit "
        "(LISTEN/NOTIFY) and when the earliest retry comes due; this poll is the safety net "
        "(a fifth of it, at most 1 s, while the listening connection is down).",
    )
    delivery_batch: int = Field(
        50, ge=1, le=1000, description="Deliveries in flight at once (claimed, being sent)."
    )
    delivery_rate_limits: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_RATE_LIMITS),
        description="What one channel may be sent, per channel kind, in the `limits` notation "
        '(`;` separates limits), e.g. {"webhook": "20/second;600/minute"}; "default" for a '
        "kind not named. A delivery over it is put off until the window allows it (not an "
        "attempt, nothing lost).",
    )
    sent_delivery_retention_h: float = Field(
        168.0,
        gt=0,
        description="How long a sent delivery is kept, in hours (the owner's history of a "
        "channel; the inbox, not this row, keeps a redelivered event from being sent twice).",
    )
    dead_delivery_retention_h: float = Field(
        720.0,
        gt=0,
        description="How long a dead delivery stays on its owner's dead-letter list after its "
        "last attempt, in hours.",
    )
    unowned_notice_retention_h: float = Field(
        168.0,
        gt=0,
        description="How long an account's event waits for notify to learn the account's owner, "
        "in hours; then it is dropped, with a warning.",
    )
    telegram_bot_rate_limit: str = Field(
        "30/second",
        description="What one Telegram bot (one token) may send across all its chats, in the "
        "`limits` notation: Telegram allows a bot about 30 messages a second in all. Empty: no "
        "such limit.",
    )
    delivery_rate_limit_storage_uri: str = Field(
        "memory://",
        description="Where the rate-limit counters live: memory:// (one process), or "
        "redis://host:port (valkey:// too) shared by every replica.",
    )

    @field_validator("delivery_rate_limits")
    @classmethod
    def _rate_limits(cls, value: dict[str, str]) -> dict[str, str]:
        for kind, notation in value.items():
            if not _KIND.fullmatch(kind):
                raise ValueError(f"{kind!r} is not a channel kind")
            try:
                if not parse_many(notation):
                    raise ValueError("no limit")
            except ValueError:
                raise ValueError(
                    f"{kind}: not in the limits notation, e.g. '20/second;600/minute'"
                ) from None
        return value

    @field_validator("telegram_bot_rate_limit")
    @classmethod
    def _bot_rate_limit(cls, value: str) -> str:
        try:
            if value:
                parse_many(value)
        except ValueError:
            raise ValueError("not in the limits notation, e.g. '30/second'") from None
        return value

    @field_validator("delivery_rate_limit_storage_uri")
    @classmethod
    def _storage_scheme(cls, value: str) -> str:
        if not value.startswith(_STORAGE_SCHEMES):
            raise ValueError("use memory://, redis://, rediss://, valkey:// or an async+ URI")
        return value
