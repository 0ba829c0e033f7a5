"""The settings every trademesh process shares; services subclass ServiceSettings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, IPvAnyNetwork, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "TRADEMESH_"

# The constrained types of the fields every service sets a default of its own for: a service
# writes `http_port: Port = 8300` and keeps the constraint (a plain `int = 8300` would drop it).
ServiceName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{1,40}$")]
Port = Annotated[int, Field(ge=0, le=65535)]
SchemaName = Annotated[
    str,
    Field(
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="The Postgres schema this service owns; no other service reads it.",
    ),
]
#: Another service's base URL, e.g. http://execution:8400.
ServiceUrl = Annotated[str, Field(pattern=r"^https?://[^\s]+$")]
ConsumerGroup = Annotated[
    str,
    Field(
        pattern=r"^[a-z][a-z0-9._-]{0,100}$",
        description="Prefix of the Kafka consumer groups (one per consumed topic).",
    ),
]


class TrademeshSettings(BaseSettings):
    """Base for every settings class: TRADEMESH_ env prefix, frozen, unknown fields refused."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        frozen=True,
        extra="ignore",
        case_sensitive=False,
        validate_default=True,
    )


class KafkaSettings(TrademeshSettings):
    """How to reach the Kafka-protocol broker and how safely to talk to it."""

    # A validation error would otherwise print its input, the SASL password included.
    model_config = SettingsConfigDict(hide_input_in_errors=True)

    kafka_bootstrap: str = Field(
        "127.0.0.1:9092",
        description="Comma-separated host:port list of the Kafka bootstrap servers.",
    )
    kafka_client_id: str | None = Field(
        None, description="Client id; defaults to the service name."
    )
    kafka_idempotence: bool = Field(
        True,
        description=(
            "Idempotent producer. On by default; the embedded Tansu broker does not support "
            "InitProducerId, so embedded mode turns it off (exactly-once effects come from the "
            "database inbox/outbox, not from Kafka)."
        ),
    )
    kafka_linger_ms: int = Field(
        0,
        ge=0,
        le=1000,
        description="Producer linger, in ms: how long a single publish waits for others to share "
        "its request. 0 sends at once (events on the order path must not wait); bulk publishing "
        "batches explicitly whatever this is.",
    )
    kafka_max_batch_size: int = Field(262144, ge=1024, description="Producer batch size, in bytes.")
    kafka_max_request_size: int = Field(
        1048576,
        ge=1024,
        description="Largest produce request, in bytes; a bigger event is refused. Keep it at or "
        "under the broker's message.max.bytes.",
    )
    kafka_compression: Literal["none", "gzip", "lz4", "zstd", "snappy"] = "none"
    kafka_session_timeout_ms: int = Field(
        10000, ge=500, description="Consumer group session timeout."
    )
    kafka_heartbeat_interval_ms: int = Field(
        3000, ge=100, description="Consumer heartbeat interval."
    )
    kafka_rebalance_timeout_ms: int | None = Field(
        None, ge=100, description="Consumer rebalance timeout; defaults to the session timeout."
    )
    kafka_request_timeout_ms: int = Field(30000, ge=1000)
    kafka_fetch_max_wait_ms: int = Field(
        500,
        ge=0,
        le=10000,
        description="The longest the broker may hold a consumer's fetch while it has no new "
        "records. Kafka and Redpanda answer as soon as a record arrives, so the default only sets "
        "how often an idle consumer asks; the embedded Tansu broker answers only when it polls "
        "again (at half the remaining wait), so embedded mode sets a short wait.",
    )
    kafka_background_fetch_max_wait_ms: int = Field(
        500,
        ge=0,
        le=10000,
        description="kafka_fetch_max_wait_ms of the consumers no order waits for (revocations, "
        "audit, the event stream, prices): idle ones ask the broker this seldom.",
    )
    kafka_consume_batch: int = Field(
        500,
        ge=1,
        le=10000,
        description="Most records a consumer takes at once; a batch is handled in one database "
        "transaction and its offsets committed together.",
    )
    kafka_publish_retries: int = Field(5, ge=0, le=100, description="Retries of a failed publish.")
    kafka_handler_retries: int = Field(
        3, ge=0, le=100, description="In-process retries of a handler that hits a transient error."
    )
    kafka_retry_backoff_ms: int = Field(
        100, ge=1, description="First retry backoff; doubles each try."
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT",
        description="How clients talk to the brokers: TLS (SSL), a SASL login, both, or neither. "
        "TLS verifies the brokers against the system's CA certificates.",
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "PLAIN",
        description="The SASL mechanism of a SASL_* protocol (Azure Event Hubs: PLAIN).",
    )
    kafka_sasl_username: str | None = Field(
        None,
        description="SASL user of a SASL_* protocol (Azure Event Hubs: the literal "
        "`$ConnectionString`).",
    )
    kafka_sasl_password: SecretStr | None = Field(
        None,
        description="SASL password of a SASL_* protocol (Azure Event Hubs: the namespace's "
        "connection string). Secret: never logged.",
    )
    kafka_ssl_cafile: str | None = Field(
        None,
        description="PEM file of the CA certificates that sign the brokers' certificates, for a "
        "broker with its own CA (Redpanda with cert-manager); unset: the system's CAs.",
    )

    @model_validator(mode="after")
    def _security_is_consistent(self) -> KafkaSettings:
        protocol = self.kafka_security_protocol
        password = self.kafka_sasl_password
        present = {
            "KAFKA_SASL_USERNAME": bool(self.kafka_sasl_username),
            "KAFKA_SASL_PASSWORD": password is not None and bool(password.get_secret_value()),
        }
        if protocol.startswith("SASL_"):
            missing = [f"{ENV_PREFIX}{name}" for name, there in present.items() if not there]
            if missing:
                raise ValueError(
                    f"{ENV_PREFIX}KAFKA_SECURITY_PROTOCOL={protocol} needs " + " and ".join(missing)
                )
        elif any(present.values()):
            # Credentials that no connection would use mean the protocol was forgotten: the
            # client would then try an unauthenticated, unencrypted connection.
            raise ValueError(
                f"SASL credentials are set but {ENV_PREFIX}KAFKA_SECURITY_PROTOCOL is {protocol}; "
                "set it to SASL_SSL or SASL_PLAINTEXT"
            )
        if self.kafka_ssl_cafile is not None:
            if protocol not in ("SSL", "SASL_SSL"):
                raise ValueError(
                    f"{ENV_PREFIX}KAFKA_SSL_CAFILE is set but {ENV_PREFIX}KAFKA_SECURITY_PROTOCOL "
                    f"is {protocol}, which has no TLS; set it to SSL or SASL_SSL"
                )
            if not Path(self.kafka_ssl_cafile).is_file():
                raise ValueError(
                    f"{ENV_PREFIX}KAFKA_SSL_CAFILE: no file at {self.kafka_ssl_cafile}"
                )
        return self

    @field_validator("kafka_bootstrap")
    @classmethod
    def _bootstrap_has_ports(cls, value: str) -> str:
        for server in value.split(","):
            host, sep, port = server.strip().rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"expected host:port[,host:port...], got {value!r}")
        return value


class DatabaseSettings(TrademeshSettings):
    """How to reach Postgres."""

    database_url: SecretStr = Field(
        SecretStr("postgresql://postgres@127.0.0.1:5432/trademesh"),
        description="Postgres URL (postgresql://user:password@host:port/db). Secret: never logged.",
    )
    database_pool_min: int = Field(1, ge=0, le=100)
    database_pool_max: int = Field(10, ge=1, le=500)
    database_migrate_on_start: bool = Field(
        True, description="Apply this service's migrations at start."
    )
    inbox_retention_h: float = Field(
        168.0,
        gt=0,
        description="How long the inbox remembers a handled event id, in hours: longer than any "
        "redelivery (a group reset replays from further back only if this is longer).",
    )
    outbox_retention_h: float = Field(
        24.0, gt=0, description="How long a published outbox row is kept, in hours."
    )
    outbox_poll_interval_s: float = Field(
        1.0, gt=0, le=60, description="The outbox relay's recovery poll interval, in seconds."
    )

    @field_validator("database_url")
    @classmethod
    def _is_postgres_url(cls, value: SecretStr) -> SecretStr:
        raw = value.get_secret_value()
        if not raw.startswith(("postgresql://", "postgres://")):
            # Never echo the value: it may carry a password.
            raise ValueError("must be a postgresql:// URL")
        return value


class HttpSettings(TrademeshSettings):
    """Where the service's HTTP API listens, whose word it takes for the client's address, and
    where it serves /metrics."""

    http_host: str = "127.0.0.1"
    http_port: Port = 8000
    trusted_proxies: Annotated[list[IPvAnyNetwork], NoDecode] = Field(
        default_factory=list,
        description="The proxies whose X-Forwarded-For (and X-Forwarded-Proto) is believed, as "
        "CIDRs (a bare address is one host): the client is the right-most address of the "
        "header that is not one of them. Comma-separated or a JSON list. Empty (the default): "
        "nobody's, the client is the connection's peer. Login throttling and the gateway's "
        "per-IP limit count by this address.",
    )
    metrics_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="Serve /metrics on this port of http_host instead of the API's port (0: any "
        "free port). Unset: /metrics is a route of the API.",
    )

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _cidr_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _not_everyone(cls, networks: list[IPvAnyNetwork]) -> list[IPvAnyNetwork]:
        for network in networks:
            if network.prefixlen == 0:
                raise ValueError(
                    f"{network} would believe every client's X-Forwarded-For; name the proxies' "
                    "networks"
                )
        return networks


def parse_jwks(document: str) -> list[dict[str, Any]]:
    """The keys of a JWKS JSON document, checked: each an Ed25519 public key (OKP) with a kid.

    Raises ValueError naming what is wrong. A private key (a "d" member) is refused: verifiers
    only ever hold public keys, and settings are no place for a signing key.
    """
    try:
        parsed = json.loads(document)
    except ValueError:
        raise ValueError("is not a JSON document") from None
    keys = parsed.get("keys") if isinstance(parsed, dict) else None
    if not isinstance(keys, list) or not keys:
        raise ValueError('must be a JWKS: {"keys": [one or more keys]}')
    kids: set[str] = set()
    for n, key in enumerate(keys):
        if not isinstance(key, dict):
            raise ValueError(f"key {n} is not a JSON object")
        if key.get("kty") != "OKP" or key.get("crv") != "Ed25519":
            raise ValueError(f"key {n} is not an Ed25519 key (kty OKP, crv Ed25519)")
        if "d" in key:
            raise ValueError(f"key {n} is a private key; a JWKS holds public keys only")
        if not isinstance(key.get("x"), str) or not key["x"]:
            raise ValueError(f"key {n} has no public key (x)")
        kid = key.get("kid")
        if not isinstance(kid, str) or not kid:
            raise ValueError(f"key {n} has no kid")
        if kid in kids:
            raise ValueError(f"kid {kid!r} appears twice")
        kids.add(kid)
        if key.get("alg", "EdDSA") != "EdDSA" or key.get("use", "sig") != "sig":
            raise ValueError(f"key {n} is not a signature key for EdDSA")
    return keys


class AuthSettings(TrademeshSettings):
    """How a service verifies the callers' access tokens (issued by the auth service)."""

    auth_jwks_url: str = Field(
        "http://127.0.0.1:8500/.well-known/jwks.json",
        description="The auth service's JWKS endpoint; not fetched when auth_jwks is set.",
    )
    auth_jwks: str | None = Field(
        None,
        description=(
            "An inline JWKS JSON document used instead of auth_jwks_url (tests, offline "
            "single-key setups). Ed25519 (OKP) public keys only."
        ),
    )
    auth_issuer: str = Field("trademesh-auth", min_length=1, description="Expected `iss`.")
    auth_audience: str = Field("trademesh", min_length=1, description="Expected `aud`.")

    @field_validator("auth_jwks_url")
    @classmethod
    def _is_http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http(s):// URL")
        return value

    @field_validator("auth_jwks")
    @classmethod
    def _is_ed25519_jwks(cls, value: str | None) -> str | None:
        if value is not None:
            parse_jwks(value)
        return value


class ServiceSettings(KafkaSettings, DatabaseSettings, HttpSettings, AuthSettings):
    """Everything a trademesh service needs; a service subclasses this and adds its own fields."""

    service_name: ServiceName = "trademesh"
    consumer_group: ConsumerGroup = "trademesh"
    environment: Literal["dev", "test", "prod"] = "dev"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "console"] = Field(
        "auto", description="auto: pretty on a terminal, JSON otherwise."
    )
    ready_timeout_s: float = Field(2.0, gt=0, le=30, description="Timeout of each readiness check.")
