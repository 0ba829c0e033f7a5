"""The notify service's settings: one frozen class, validated at start."""

from __future__ import annotations

from pydantic import Field, SecretStr
from trademesh_config import ConsumerGroup, Port, SchemaName, ServiceName, ServiceSettings
from trademesh_keystore import KeystoreSettings

from trademesh_notify.webhook.ssrf import AddressKind


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
        0.5, gt=0, le=60, description="How often the delivery loop looks for deliveries due."
    )
    delivery_batch: int = Field(50, ge=1, le=1000, description="Deliveries sent per round.")
