"""The Kafka bus: a safely configured FastStream broker, typed publish/subscribe with the CloudEvents
envelope, DLQ, retries, inbox and outbox."""

from trademesh_bus.broker import KafkaConfig, create_broker
from trademesh_bus.bus import BatchHandler, Bus, Delivery, Handler, Route
from trademesh_bus.errors import PoisonMessage, PublishError, TransientError, is_transient
from trademesh_bus.outbox import Outbox, OutboxRelay, Outgoing
from trademesh_bus.retention import Retention

__all__ = [
    "BatchHandler",
    "Bus",
    "Delivery",
    "Handler",
    "KafkaConfig",
    "Outbox",
    "OutboxRelay",
    "Outgoing",
    "PoisonMessage",
    "PublishError",
    "Retention",
    "Route",
    "TransientError",
    "create_broker",
    "is_transient",
]
