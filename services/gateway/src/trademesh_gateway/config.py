"""The gateway service's settings: one frozen class, validated at start."""

from __future__ import annotations

from limits import parse_many
from pydantic import Field, field_validator
from trademesh_config import ConsumerGroup, Port, ServiceName, ServiceSettings
from trademesh_http.pagination import MAX_LIMIT

from trademesh_gateway.engine import Service

_STORAGE_SCHEMES = ("memory://", "redis://", "rediss://", "valkey://", "valkeys://", "async+")


class Settings(ServiceSettings):
    """What the service reads from TRADEMESH_* variables (and the secrets provider), on top of
    the platform's Kafka, Postgres, HTTP, logging and auth (JWKS, issuer, audience) settings."""

    service_name: ServiceName = "gateway"
    http_port: Port = 8000
    metrics_port: int | None = Field(
        8090,
        ge=0,
        le=65535,
        description="/metrics is served on this port (0: any free one), never on the public "
        "API's; unset: on the API's port, as the internal services serve it.",
    )
    consumer_group: ConsumerGroup = Field(
        "gateway",
        description="Prefix of the Kafka consumer groups (one per consumed topic and process).",
    )
    auth_url: str = Field("http://127.0.0.1:8500", description="The auth service's base URL.")
    market_data_url: str = Field("http://127.0.0.1:8100", description="market-data's base URL.")
    strategy_url: str = Field("http://127.0.0.1:8200", description="strategy's base URL.")
    risk_url: str = Field("http://127.0.0.1:8300", description="risk's base URL.")
    execution_url: str = Field("http://127.0.0.1:8400", description="execution's base URL.")
    audit_url: str = Field("http://127.0.0.1:8600", description="audit's base URL.")
    notify_url: str = Field("http://127.0.0.1:8601", description="notify's base URL.")
    upstream_timeout_s: float = Field(
        10.0, gt=0, le=300, description="How long an upstream call may take (then 504)."
    )
    upstream_max_connections: int = Field(
        200, ge=1, le=10_000, description="Connections kept per upstream service."
    )
    max_body_bytes: int = Field(
        1_048_576, ge=1024, le=64 * 1_048_576, description="Largest request body (else 413)."
    )
    rate_limit_user: str = Field(
        "20/second;600/minute",
        description="Per authenticated user, in the `limits` notation (`;` separates limits).",
    )
    rate_limit_ip: str = Field(
        "50/second", description="Per client address, before authentication (`limits` notation)."
    )
    rate_limit_storage_uri: str = Field(
        "memory://",
        description="Where the counters live: memory:// (one process), or redis://host:port "
        "(valkey:// too) shared by every replica.",
    )
    max_page_size: int = Field(
        MAX_LIMIT,
        ge=1,
        le=MAX_LIMIT,  # the services refuse more (trademesh_http.pagination)
        description="A `limit` query parameter above this is lowered to it (X-Page-Limit-Capped).",
    )
    api_key_cache_margin_s: float = Field(
        30.0,
        ge=0,
        le=600,
        description="An API key's access token is exchanged again this long before it expires.",
    )
    api_key_cache_size: int = Field(10_000, ge=1, le=1_000_000, description="Keys cached.")
    openapi_cache_s: float = Field(
        300.0,
        ge=0,
        le=86_400,
        description="How long the services' OpenAPI documents, fetched for the gateway's "
        "/openapi.json, are kept (one that could not be fetched: 30 s at most).",
    )
    sse_heartbeat_s: float = Field(
        15.0, gt=0, le=300, description="A comment line on idle event streams this often."
    )
    sse_queue_size: int = Field(
        1000, ge=1, le=100_000, description="Events buffered per stream (oldest dropped)."
    )
    sse_max_streams_per_user: int = Field(
        5, ge=1, le=1000, description="Open event streams per user (else 429)."
    )

    @field_validator("rate_limit_user", "rate_limit_ip")
    @classmethod
    def _limits_notation(cls, value: str) -> str:
        try:
            if not parse_many(value):
                raise ValueError("no limit")
        except ValueError:
            raise ValueError("not in the limits notation, e.g. '20/second;600/minute'") from None
        return value

    @field_validator("rate_limit_storage_uri")
    @classmethod
    def _storage_scheme(cls, value: str) -> str:
        if not value.startswith(_STORAGE_SCHEMES):
            raise ValueError("use memory://, redis://, rediss://, valkey:// or an async+ URI")
        return value

    @field_validator(
        "auth_url",
        "market_data_url",
        "strategy_url",
        "risk_url",
        "execution_url",
        "audit_url",
        "notify_url",
    )
    @classmethod
    def _base_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("an http(s) base URL")
        return value.rstrip("/")

    def upstream_url(self, service: Service) -> str:
        """The base URL of `service`."""
        return {
            "auth": self.auth_url,
            "market-data": self.market_data_url,
            "strategy": self.strategy_url,
            "risk": self.risk_url,
            "execution": self.execution_url,
            "audit": self.audit_url,
            "notify": self.notify_url,
        }[service]
