"""The audit service's settings: one frozen class, validated at start."""

from __future__ import annotations

from pydantic import Field
from trademesh_config import ServiceSettings
from trademesh_keystore import KeystoreSettings


class Settings(ServiceSettings, KeystoreSettings):
    """What the service reads from TRADEMESH_* variables (and the secrets provider), on top of
    the platform's Kafka, Postgres, HTTP and logging settings. The keystore's master key is
    required: it seals the chain keys at rest."""

    service_name: str = Field("audit", pattern=r"^[a-z][a-z0-9-]{1,40}$")
    http_port: int = Field(8600, ge=0, le=65535)
    database_schema: str = Field(
        "audit",
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="The Postgres schema this service owns; no other service reads it. It also "
        "names the chain in its checkpoints.",
    )
    consumer_group: str = Field(
        "audit",
        pattern=r"^[a-z][a-z0-9._-]{0,100}$",
        description="Prefix of the Kafka consumer groups (one per consumed topic).",
    )
    keystore_transit_key: str = Field(
        "trademesh-audit", description="The transit key (created with derived=true)."
    )
    checkpoint_interval_s: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="How often the chain head is checkpointed to audit.checkpoints.v1 when the "
        "chain has grown: rows after the last checkpoint are only as safe as the database.",
    )
