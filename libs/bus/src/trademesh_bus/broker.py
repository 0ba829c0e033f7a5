"""A FastStream KafkaBroker made safe: acks=all, idempotence by setting, TLS/SASL, telemetry on."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import IllegalStateError
from aiokafka.helpers import create_ssl_context
from faststream.kafka import KafkaBroker
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.kafka.security import parse_security
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from opentelemetry import trace
from prometheus_client import CollectorRegistry


class Secret(Protocol):
    """A value that is only read on purpose (pydantic's SecretStr)."""

    def get_secret_value(self) -> str: ...


class KafkaConfig(Protocol):
    """The KafkaSettings fields the broker reads (trademesh_config.KafkaSettings has them all)."""

    @property
    def kafka_bootstrap(self) -> str: ...
    @property
    def kafka_client_id(self) -> str | None: ...
    @property
    def kafka_idempotence(self) -> bool: ...
    @property
    def kafka_linger_ms(self) -> int: ...
    @property
    def kafka_max_batch_size(self) -> int: ...
    @property
    def kafka_max_request_size(self) -> int: ...
    @property
    def kafka_compression(self) -> str: ...
    @property
    def kafka_request_timeout_ms(self) -> int: ...
    @property
    def kafka_session_timeout_ms(self) -> int: ...
    @property
    def kafka_heartbeat_interval_ms(self) -> int: ...
    @property
    def kafka_rebalance_timeout_ms(self) -> int | None: ...
    @property
    def kafka_fetch_max_wait_ms(self) -> int: ...
    @property
    def kafka_background_fetch_max_wait_ms(self) -> int: ...
    @property
    def kafka_consume_batch(self) -> int: ...
    @property
    def kafka_publish_retries(self) -> int: ...
    @property
    def kafka_handler_retries(self) -> int: ...
    @property
    def kafka_retry_backoff_ms(self) -> int: ...
    @property
    def kafka_security_protocol(self) -> str: ...
    @property
    def kafka_sasl_mechanism(self) -> str: ...
    @property
    def kafka_sasl_username(self) -> str | None: ...
    @property
    def kafka_sasl_password(self) -> Secret | None: ...
    @property
    def kafka_ssl_cafile(self) -> str | None: ...


class ConcurrentStartBroker(KafkaBroker):
    """A KafkaBroker whose subscribers join their consumer groups at the same time.

    FastStream starts subscribers one after another, and each aiokafka consumer's start waits for
    its group assignment. A group join takes a broker-side delay (Tansu answers a JoinGroup after
    about a second; Kafka's group.initial.rebalance.delay.ms is 3 s), and a service's subscribers
    share one group, so every later join also rebalances the earlier ones: a service with seven
    input topics took seven seconds to start. Started together, the joins land in one rebalance.
    If any subscriber fails to start, the broker is stopped again so a retry starts clean.

    A start also waits until every assigned partition has its position (its committed offset,
    or, for a new group, the earliest or latest offset): a consumer reading from the latest
    offset would otherwise skip what is published in the moment between its assignment and its
    first fetch, and "started" must mean "will see everything published from now on".
    """

    async def start(self) -> None:
        await self.connect()
        results = await asyncio.gather(
            *(sub.start() for sub in self.subscribers), return_exceptions=True
        )
        failure = next((r for r in results if isinstance(r, BaseException)), None)
        if failure is not None:
            await self.stop()
            raise failure
        try:
            await asyncio.wait_for(
                asyncio.gather(*(_positioned(sub) for sub in self.subscribers)), POSITION_TIMEOUT_S
            )
        except TimeoutError:
            logging.getLogger("trademesh.bus").warning(
                "partition positions not known %ss after the start", POSITION_TIMEOUT_S
            )
        for pub in self.publishers:
            await pub.start()
        self.running = True


POSITION_TIMEOUT_S = 30.0


async def _positioned(subscriber: object) -> None:
    """Until every partition assigned to the subscriber's consumer has a position."""
    consumer = getattr(subscriber, "consumer", None)
    if not isinstance(consumer, AIOKafkaConsumer):
        return
    for partition in consumer.assignment():
        with contextlib.suppress(IllegalStateError):  # a rebalance took it away meanwhile
            await consumer.position(partition)


def create_broker(
    config: KafkaConfig,
    service: str,
    *,
    registry: CollectorRegistry | None = None,
    telemetry: bool = True,
) -> KafkaBroker:
    """The broker every service uses.

    - acks="all": a publish returns only when every in-sync replica has the record.
    - enable_idempotence from settings: on by default; off for Tansu, which lacks InitProducerId
      (exactly-once effects then come from the inbox/outbox, not from Kafka).
    - FastStream's own OpenTelemetry and Prometheus middlewares (trace context travels in the
      W3C `traceparent` header; consumer spans are children of the producer's).
    - TLS and SASL from settings (broker_security), as every other Kafka client of ours.
    - subscribers start together (ConcurrentStartBroker).
    - FastStream's per-message lines ("Received", "Processed") and its subscribers' start lines
      at DEBUG (`log_level`): at INFO they were nearly every line a service wrote, each with a
      message id and no business meaning; a handler's exception is still logged at ERROR. The
      services log their business steps themselves (docs/architecture.md, "Observability").
    """
    middlewares: list[object] = []
    options = producer_options(config, service)
    if telemetry:
        middlewares.append(KafkaTelemetryMiddleware(tracer_provider=trace.get_tracer_provider()))
        if registry is not None:
            middlewares.append(KafkaPrometheusMiddleware(registry=registry, app_name=service))
    return ConcurrentStartBroker(
        config.kafka_bootstrap.split(","),
        **options,
        security=broker_security(config),
        middlewares=middlewares,  # type: ignore[arg-type]
        logger=logging.getLogger("trademesh.bus"),
        log_level=logging.DEBUG,
        graceful_timeout=15.0,
    )


def producer_options(config: KafkaConfig, service: str) -> dict[str, Any]:
    """Producer settings shared by the FastStream broker and the bus's bulk producer."""
    return {
        "client_id": config.kafka_client_id or service,
        "acks": "all",
        "enable_idempotence": config.kafka_idempotence,
        "linger_ms": config.kafka_linger_ms,
        "max_batch_size": config.kafka_max_batch_size,
        "max_request_size": config.kafka_max_request_size,
        "compression_type": None
        if config.kafka_compression == "none"
        else config.kafka_compression,
        "request_timeout_ms": config.kafka_request_timeout_ms,
    }


_SASL = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}


def broker_security(config: KafkaConfig) -> BaseSecurity | None:
    """FastStream's security object for the configured protocol; None for PLAINTEXT.

    TLS verifies the brokers' certificates and host names against kafka_ssl_cafile, or the
    system's CA certificates without it (aiokafka needs an SSL context for SSL and SASL_SSL;
    FastStream's use_ssl alone does not make one).
    """
    protocol = config.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    tls = protocol in ("SSL", "SASL_SSL")
    context = create_ssl_context(cafile=config.kafka_ssl_cafile) if tls else None
    if protocol == "SSL":
        return BaseSecurity(ssl_context=context, use_ssl=True)
    if protocol not in ("SASL_PLAINTEXT", "SASL_SSL"):
        raise ValueError(f"unknown Kafka security protocol {protocol!r}")
    mechanism = _SASL.get(config.kafka_sasl_mechanism)
    if mechanism is None:
        raise ValueError(f"unknown SASL mechanism {config.kafka_sasl_mechanism!r}")
    password = config.kafka_sasl_password
    if not config.kafka_sasl_username or password is None:
        raise ValueError(f"Kafka security protocol {protocol} needs a SASL username and password")
    return mechanism(
        username=config.kafka_sasl_username,
        password=password.get_secret_value(),
        ssl_context=context,
        use_ssl=tls,
    )


def client_security(config: KafkaConfig) -> dict[str, Any]:
    """The aiokafka keyword arguments of the broker's security, for clients we make ourselves.

    Built by FastStream's own translation, so a plain aiokafka producer, consumer or admin client
    connects exactly as the broker does.
    """
    return parse_security(broker_security(config))


def create_bulk_producer(config: KafkaConfig, service: str) -> AIOKafkaProducer:
    """A plain aiokafka producer with the broker's settings, for Bus.publish_many (see there)."""
    return AIOKafkaProducer(
        bootstrap_servers=config.kafka_bootstrap.split(","),
        **producer_options(config, service),
        **client_security(config),
    )
