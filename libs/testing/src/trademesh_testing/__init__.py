"""The pytest plugin: session fixtures for a real Postgres and a real Kafka-protocol broker (embedded, containers or external)."""
