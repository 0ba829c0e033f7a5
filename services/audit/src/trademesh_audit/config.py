"""The audit service's settings: one frozen class, validated at start."""

from __future__ import annotations

from pydantic import Field
from trademesh_config import ConsumerGroup, Port, SchemaName, ServiceName, ServiceSettings
from trademesh_keystore import KeystoreSettings


class Settings(ServiceSettings, KeystoreSettings):
    """What the service reads from TRADEMESH_* variables (and the secrets provider), on top of
    the platform's Kafka, Postgres, HTTP and logging settings. The keystore's master key is
    required: it seals the chain keys at rest."""

    service_name: ServiceName = "audit"
    http_port: Port = 8600
    database_schema: SchemaName = Field(
        "audit",
        description="The Postgres schema this service owns; no other service reads it. It also "
        "names the chain in its checkpoints.",
    )
    consumer_group: ConsumerGroup = "audit"
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
