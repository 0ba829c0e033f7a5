"""The pytest plugin: session fixtures for a real Postgres and a real Kafka-protocol broker."""

from trademesh_testing.infra import TestInfra

__all__ = ["TestInfra"]
