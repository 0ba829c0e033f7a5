"""The Kafka bus: a safely configured FastStream broker, typed publish/subscribe with the CloudEvents envelope, DLQ, retries, inbox and outbox."""
