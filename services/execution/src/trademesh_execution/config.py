"""The execution service's settings: one frozen class, validated at start."""

from __future__ import annotations

from decimal import Decimal
from typing import Self

from pydantic import Field, SecretStr, model_validator
from trademesh_config import ServiceSettings


class Settings(ServiceSettings):
    """What the service reads from TRADEMESH_* variables (and the secrets provider), on top of
    the platform's Kafka, Postgres, HTTP and logging settings."""

    service_name: str = Field("execution", pattern=r"^[a-z][a-z0-9-]{1,40}$")
    http_port: int = Field(8400, ge=0, le=65535)
    database_schema: str = Field(
        "execution",
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="The Postgres schema this service owns; no other service reads it.",
    )
    consumer_group: str = Field(
        "execution",
        pattern=r"^[a-z][a-z0-9._-]{0,100}$",
        description="Prefix of the Kafka consumer groups (one per consumed topic).",
    )
    outbox_poll_interval_s: float = Field(
        1.0, gt=0, le=60, description="How often the outbox relay looks for rows without a NOTIFY."
    )
    paper_slippage_bps: Decimal = Field(
        Decimal(0),
        ge=0,
        le=10_000,
        description="Paper venue: market and stop fills move this much.",
    )
    paper_fee_bps: Decimal = Field(
        Decimal(0), ge=0, le=10_000, description="Paper venue: fee on the filled notional."
    )
    paper_max_volume_share: Decimal | None = Field(
        None,
        gt=0,
        le=1,
        description="Paper venue: at most this share of a bar's volume fills (the rest stays open); "
        "unset: no cap.",
    )
    live_poll_interval_s: float = Field(
        0.5, gt=0, le=60, description="How often PENDING and UNKNOWN live orders are driven."
    )
    reconcile_interval_s: float = Field(
        300.0,
        gt=0,
        le=86_400,
        description="How often every exchange account is reconciled with its venue (also at "
        "start, when a venue answers again after being away, and on request).",
    )
    reconcile_lookback_h: float = Field(
        24.0,
        gt=0,
        le=24 * 7,
        description="How far back reconciliation compares the venue's trades with our fills "
        "(Binance answers one trade query with at most 24 hours).",
    )
    live_streams: bool = Field(
        True,
        description="Follow each exchange account's orders on its venue's WebSocket stream "
        "where the venue has one (REST polling stays on, slower, as a safety net).",
    )
    equity_sample_interval_s: float = Field(
        60.0, gt=0, le=86_400, description="How often every account's equity is sampled."
    )
    keystore_keys: SecretStr | None = Field(
        None,
        description="Local master keys of the keystore that seals exchange API secrets: a JSON "
        'object {"key id": "base64 of 32 random bytes", ...} (trademesh_keystore.new_master_key '
        "makes one). Unset, and without Vault transit, exchange accounts cannot be added.",
    )
    keystore_current_key: str | None = Field(
        None,
        description="The key id of keystore_keys that seals new secrets (rotation: add a "
        "key, make it current, then POST /api/v1/keystore/rewrap).",
    )
    keystore_vault_url: str | None = Field(
        None, description="Vault or OpenBao address, to use its transit engine as master key."
    )
    keystore_vault_token: SecretStr | None = Field(None, description="Token for the transit key.")
    keystore_transit_key: str = Field(
        "trademesh-execution", description="The transit key (created with derived=true)."
    )
    keystore_transit_mount: str = Field("transit", description="Where transit is mounted.")

    @model_validator(mode="after")
    def _one_master_key(self) -> Self:
        if self.keystore_keys is not None and self.keystore_current_key is None:
            raise ValueError("keystore_keys needs keystore_current_key")
        if self.keystore_keys is not None and self.keystore_vault_url is not None:
            raise ValueError("set keystore_keys or keystore_vault_url, not both")
        if self.keystore_vault_url is not None and self.keystore_vault_token is None:
            raise ValueError("keystore_vault_url needs keystore_vault_token")
        return self
