"""The execution service's settings: one frozen class, validated at start."""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field
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
