"""The audit service's settings: one frozen class, validated at start."""

from __future__ import annotations

from pydantic import Field
from trademesh_config import ServiceSettings


class Settings(ServiceSettings):
    """What the service reads from TRADEMESH_* variables (and the secrets provider), on top of
    the platform's Kafka, Postgres, HTTP and logging settings."""

    service_name: str = Field("audit", pattern=r"^[a-z][a-z0-9-]{1,40}$")
    http_port: int = Field(8600, ge=0, le=65535)
    database_schema: str = Field(
        "audit",
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="The Postgres schema this service owns; no other service reads it.",
    )
    consumer_group: str = Field(
        "audit",
        pattern=r"^[a-z][a-z0-9._-]{0,100}$",
        description="Prefix of the Kafka consumer groups (one per consumed topic).",
    )
