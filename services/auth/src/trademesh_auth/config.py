"""The auth service's settings: one frozen class, validated at start."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from trademesh_config import ConsumerGroup, Port, SchemaName, ServiceName, ServiceSettings
from trademesh_keystore import KeystoreSettings


class Settings(ServiceSettings, KeystoreSettings):
    """What the service reads from TRADEMESH_* variables (and the secrets provider), on top of
    the platform's Kafka, Postgres, HTTP and logging settings. The keystore's master key is
    required: it seals the token signing keys at rest."""

    service_name: ServiceName = "auth"
    http_port: Port = 8500
    database_schema: SchemaName = "auth"
    consumer_group: ConsumerGroup = "auth"
    registration: Literal["open", "approval"] = Field(
        "approval",
        description="open: anyone may register and log in at once (as a trader); approval: a "
        "new user waits for an admin to approve them.",
    )
    default_role: Literal["trader", "viewer"] = Field(
        "trader", description="The role a registered user gets (an admin may change it)."
    )
    access_ttl_s: int = Field(
        600, ge=30, le=900, description="Access tokens live this long (at most 15 minutes)."
    )
    refresh_ttl_s: int = Field(
        30 * 86_400, ge=300, le=90 * 86_400, description="Refresh tokens live this long."
    )
    api_key_max_ttl_days: int = Field(
        365, ge=1, le=3650, description="The longest an API key may be made to live."
    )
    signing_key_refresh_s: float = Field(
        15.0,
        gt=0,
        le=300,
        description="How often each replica reloads the signing keys (another replica may "
        "have rotated them).",
    )
    argon2_time_cost: int = Field(3, ge=3, le=20, description="Argon2id passes (RFC 9106: 3).")
    argon2_memory_kib: int = Field(
        65_536,
        ge=65_536,
        le=4_194_304,
        description="Argon2id memory (RFC 9106 low-memory: 64 MiB).",
    )
    argon2_parallelism: int = Field(4, ge=1, le=64, description="Argon2id lanes.")
    throttle_window_s: int = Field(
        900, ge=60, le=86_400, description="Failed logins count for this long after the last."
    )
    throttle_ip_threshold: int = Field(10, ge=1, description="Free failures per client IP.")
    throttle_ip_cap_s: int = Field(900, ge=1, description="The longest per-IP delay.")
    throttle_user_ip_threshold: int = Field(
        3, ge=1, description="Free failures per user and client IP."
    )
    throttle_user_ip_cap_s: int = Field(900, ge=1, description="The longest per-user-and-IP delay.")
    throttle_user_threshold: int = Field(
        20, ge=1, description="Free failures per user, from every IP together."
    )
    throttle_user_cap_s: int = Field(
        60,
        ge=1,
        le=300,
        description="The longest per-user delay: low, so that nobody can lock a user out.",
    )
