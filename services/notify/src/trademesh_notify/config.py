"""The notify service's settings: one frozen class, validated at start."""

from __future__ import annotations

from trademesh_config import ConsumerGroup, Port, SchemaName, ServiceName, ServiceSettings


class Settings(ServiceSettings):
    """What the service reads from TRADEMESH_* variables (and the secrets provider), on top of
    the platform's Kafka, Postgres, HTTP and logging settings."""

    service_name: ServiceName = "notify"
    http_port: Port = 8601
    database_schema: SchemaName = "notify"
    consumer_group: ConsumerGroup = "notify"
