"""Typed publish/subscribe over the broker: CloudEvents envelope, DLQ, retries, inbox and outbox."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, NotLeaderForPartitionError
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage
from faststream.middlewares import AckPolicy
from prometheus_client import CollectorRegistry
from pydantic import ValidationError
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)
from trademesh_db.pool import Database
from trademesh_events.envelope import Envelope, EnvelopeError, new_envelope
from trademesh_events.topics import TopicSpec, get_topic, topic_for

from trademesh_bus import inbox as inbox_table
from trademesh_bus import metrics
from trademesh_bus.broker import KafkaConfig, create_broker
from trademesh_bus.errors import PoisonMessage, is_transient
from trademesh_bus.outbox import Outbox

log = logging.getLogger("trademesh.bus")

_MAX_ERROR_HEADER = 1000
_RETRIABLE_PUBLISH = (KafkaConnectionError, KafkaTimeoutError, NotLeaderForPartitionError)


@dataclass(frozen=True)
class Delivery:
    """One delivered message: its envelope and Kafka position, and, for a transactional
    subscription, the open transaction's connection and the outbox to emit follow-up events."""

    envelope: Envelope
    topic: str
    partition: int
    offset: int
    key: bytes | None
    conn: asyncpg.Connection | None = None
    outbox: Outbox | None = None

    async def emit(self, event: Any, *, subject: str | None = None) -> Envelope:
        """Write a follow-up event to the outbox in this delivery's transaction."""
        if self.conn is None or self.outbox is None:
            raise RuntimeError("emit() needs a transactional subscription (subscribe(..., db=...))")
        return await self.outbox.add(self.conn, event, subject=subject)


Handler = Callable[[Any, Delivery], Awaitable[None]]


async def _raw_body(msg: StreamMessage[Any]) -> bytes:
    """Decoder that leaves the body as bytes: the bus validates it against the topic's schema
    itself, so a malformed message becomes a DLQ entry instead of a decoder exception."""
    body = msg.body
    return body if isinstance(body, bytes) else bytes(body)


def _header_text(value: bytes | str) -> str:
    return value if isinstance(value, str) else value.decode("utf-8", errors="backslashreplace")


class Bus:
    """The one way services publish and consume events."""

    def __init__(
        self,
        config: KafkaConfig,
        service: str,
        *,
        registry: CollectorRegistry | None = None,
        broker: KafkaBroker | None = None,
        telemetry: bool = True,
    ) -> None:
        self.config = config
        self.service = service
        self.broker = broker or create_broker(
            config, service, registry=registry, telemetry=telemetry
        )
        self.outbox = Outbox(service)
        self._started = False

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self, timeout: float = 60.0) -> None:
        """Connect, retrying with backoff while the broker is not reachable yet."""
        async for attempt in AsyncRetrying(
            stop=_stop_after_seconds(timeout),
            wait=wait_exponential_jitter(multiplier=0.2, max=5.0, jitter=0.2),
            retry=retry_if_exception_type((KafkaConnectionError, OSError)),
            reraise=True,
        ):
            with attempt:
                await self.broker.start()
        self._started = True

    async def stop(self) -> None:
        await self.broker.stop()
        self._started = False

    async def check_ready(self, timeout: float = 2.0) -> None:
        """Readiness: the broker answers a metadata request now (raises otherwise)."""
        if not self._started:
            raise RuntimeError("bus not started")
        if not await self.broker.ping(timeout):
            raise ConnectionError("Kafka broker did not answer")

    # ---- publishing ------------------------------------------------------------------------

    async def publish(
        self, event: Any, *, topic: TopicSpec | None = None, subject: str | None = None
    ) -> Envelope:
        """Publish one event to its topic, keyed by the topic's rule, and wait for acks=all."""
        spec = topic or topic_for(event)
        envelope = new_envelope(event, self.service, subject=subject)
        await self.publish_raw(
            spec.name, spec.encode(event), spec.key_of(event), envelope.to_headers()
        )
        return envelope

    async def publish_many(
        self, events: Iterable[Any], *, topic: TopicSpec | None = None
    ) -> list[Envelope]:
        """Publish several events pipelined (all sent, then all acknowledgements awaited)."""
        pending: list[asyncio.Future[Any]] = []
        envelopes: list[Envelope] = []
        for event in events:
            spec = topic or topic_for(event)
            envelope = new_envelope(event, self.service)
            envelopes.append(envelope)
            pending.append(
                await self.publish_raw(
                    spec.name,
                    spec.encode(event),
                    spec.key_of(event),
                    envelope.to_headers(),
                    confirm=False,
                )
            )
        await asyncio.gather(*pending)
        return envelopes

    async def publish_raw(
        self,
        topic: str,
        payload: bytes,
        key: bytes | None,
        headers: Mapping[str, str],
        *,
        confirm: bool = True,
    ) -> Any:
        """Send prepared bytes. With confirm=False return the acknowledgement future instead."""
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(self.config.kafka_publish_retries + 1),
                wait=wait_exponential_jitter(
                    multiplier=self.config.kafka_retry_backoff_ms / 1000,
                    max=5.0,
                    jitter=self.config.kafka_retry_backoff_ms / 1000,
                ),
                retry=retry_if_exception_type(_RETRIABLE_PUBLISH),
                reraise=True,
            ):
                with attempt:
                    result = await self.broker.publish(
                        payload, topic, key=key, headers=dict(headers), no_confirm=not confirm
                    )
        except Exception:
            metrics.publish_errors(self.service, topic)
            raise
        metrics.published(self.service, topic)
        return result

    # ---- consuming -------------------------------------------------------------------------

    def subscribe(
        self,
        topic: TopicSpec | str,
        *,
        group: str,
        handler: Handler,
        db: Database | None = None,
        inbox: bool = True,
        from_beginning: bool = True,
    ) -> Any:
        """Register `handler(event, delivery)` for `topic` in consumer group `group`.

        Delivery discipline:
        - the offset is committed only after the handler (and its transaction) succeeded;
        - with `db`, the handler runs inside one Postgres transaction that also records the
          event id in the inbox, so a redelivered event is skipped (exactly-once effect), and
          `delivery.emit()` writes follow-up events to the outbox in the same transaction;
        - a message whose envelope or body fails validation goes to `<topic>.dlq` with the error
          in headers, and the consumer goes on;
        - transient errors are retried in place with exponential backoff; if they persist the
          message is not committed and is delivered again (nothing is lost);
        - any other handler error sends the message to the DLQ (reason handler_error) so one bad
          message cannot stop the partition behind it.
        """
        spec = get_topic(topic) if isinstance(topic, str) else topic
        cfg = self.config
        subscriber = self.broker.subscriber(
            spec.name,
            group_id=group,
            auto_offset_reset="earliest" if from_beginning else "latest",
            ack_policy=AckPolicy.NACK_ON_ERROR,
            session_timeout_ms=cfg.kafka_session_timeout_ms,
            heartbeat_interval_ms=cfg.kafka_heartbeat_interval_ms,
            rebalance_timeout_ms=cfg.kafka_rebalance_timeout_ms or cfg.kafka_session_timeout_ms,
            decoder=_raw_body,
        )

        async def consume(body: bytes, msg: KafkaMessage) -> None:
            await self._consume(spec, group, handler, db, inbox, msg.raw_message)

        consume.__name__ = f"{group}__{spec.name}".replace(".", "_").replace("-", "_")
        subscriber(consume)
        return subscriber

    async def _consume(
        self,
        spec: TopicSpec,
        group: str,
        handler: Handler,
        db: Database | None,
        use_inbox: bool,
        record: Any,
    ) -> None:
        try:
            envelope, event = self._decode(spec, record)
        except PoisonMessage as poison:
            await self._dead_letter(spec, group, record, poison.reason, poison.detail)
            return
        delivery = Delivery(
            envelope=envelope,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
        )
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(self.config.kafka_handler_retries + 1),
                wait=wait_exponential_jitter(
                    multiplier=self.config.kafka_retry_backoff_ms / 1000,
                    max=10.0,
                    jitter=self.config.kafka_retry_backoff_ms / 1000,
                ),
                retry=retry_if_exception(is_transient),
                before_sleep=lambda _state: metrics.handler_retry(self.service, spec.name),
                reraise=True,
            ):
                with attempt:
                    await self._apply(spec, group, handler, db, use_inbox, event, delivery)
        except Exception as exc:
            if is_transient(exc):
                log.warning(
                    "handler failed transiently; message will be delivered again",
                    extra={"topic": spec.name, "group": group, "error": type(exc).__name__},
                )
                raise
            log.exception(
                "handler failed; message sent to the DLQ",
                extra={"topic": spec.name, "group": group},
            )
            await self._dead_letter(
                spec, group, record, "handler_error", f"{type(exc).__name__}: {exc}"
            )

    def _decode(self, spec: TopicSpec, record: Any) -> tuple[Envelope, Any]:
        try:
            envelope = Envelope.from_headers(record.headers or [])
        except EnvelopeError as exc:
            raise PoisonMessage("bad_envelope", str(exc)) from exc
        if record.value is None:
            raise PoisonMessage("empty_value", "the message has no value")
        try:
            event = spec.decode(record.value)
        except ValidationError as exc:
            # Field locations and messages only: never echo input values into headers or logs.
            errors = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}"
                for e in exc.errors(include_input=False, include_url=False)
            )
            raise PoisonMessage("schema_validation", errors) from exc
        if getattr(event, "type", None) != envelope.type:
            raise PoisonMessage(
                "type_mismatch", f"ce_type {envelope.type!r} but body type {event.type!r}"
            )
        return envelope, event

    async def _apply(
        self,
        spec: TopicSpec,
        group: str,
        handler: Handler,
        db: Database | None,
        use_inbox: bool,
        event: Any,
        delivery: Delivery,
    ) -> None:
        if db is None:
            await handler(event, delivery)
            return
        async with db.transaction() as conn:
            if use_inbox and not await inbox_table.claim(
                conn, group, delivery.envelope.id, spec.name
            ):
                metrics.duplicate_skipped(self.service, spec.name)
                return
            await handler(
                event,
                Delivery(
                    envelope=delivery.envelope,
                    topic=delivery.topic,
                    partition=delivery.partition,
                    offset=delivery.offset,
                    key=delivery.key,
                    conn=conn,
                    outbox=self.outbox,
                ),
            )

    async def _dead_letter(
        self, spec: TopicSpec, group: str, record: Any, reason: str, detail: str
    ) -> None:
        headers = {k: _header_text(v) for k, v in (record.headers or [])}
        headers.update(
            {
                "dlq_reason": reason,
                "dlq_error": detail[:_MAX_ERROR_HEADER],
                "dlq_source_topic": record.topic,
                "dlq_partition": str(record.partition),
                "dlq_offset": str(record.offset),
                "dlq_consumer": group,
                "dlq_service": self.service,
                "dlq_failed_at": datetime.now(UTC).isoformat(),
            }
        )
        # Awaited with acks=all: if the DLQ write fails the original is not committed either.
        await self.publish_raw(spec.dlq, record.value or b"", record.key, headers)
        metrics.dead_lettered(self.service, spec.name, reason)
        log.warning(
            "message sent to the DLQ",
            extra={"topic": spec.name, "dlq": spec.dlq, "reason": reason, "offset": record.offset},
        )


def _stop_after_seconds(seconds: float) -> Any:
    from tenacity import stop_after_delay

    return stop_after_delay(seconds)
