"""Typed publish/subscribe over the broker: CloudEvents envelope, DLQ, retries, inbox and outbox."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, NotLeaderForPartitionError
from aiokafka.partitioner import DefaultPartitioner
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage
from faststream.middlewares import AckPolicy
from opentelemetry import propagate, trace
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
from trademesh_bus.broker import KafkaConfig, create_broker, create_bulk_producer
from trademesh_bus.errors import PoisonMessage, PublishError, is_transient
from trademesh_bus.lag import LAG_INTERVAL_S, LagSampler, stop_sampler
from trademesh_bus.outbox import Outbox

log = logging.getLogger("trademesh.bus")
_tracer = trace.get_tracer("trademesh.bus")

_MAX_ERROR_HEADER = 1000
_RETRIABLE_PUBLISH = (KafkaConnectionError, KafkaTimeoutError, NotLeaderForPartitionError)
# Why a message goes to the DLQ (the `reason` label of trademesh_bus_dlq_total): the poison
# checks of _decode, and a handler that failed for good.
DLQ_REASONS = ("bad_envelope", "empty_value", "schema_validation", "type_mismatch", "handler_error")


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


_PARTITIONER = DefaultPartitioner()


class _OpenBatch:
    """A record batch for one topic partition being filled by publish_many."""

    __slots__ = ("builder", "count", "partition", "topic")

    def __init__(self, topic: str, partition: int, builder: Any) -> None:
        self.topic = topic
        self.partition = partition
        self.builder = builder
        self.count = 0

    def append(self, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> bool:
        if self.builder.append(timestamp=None, key=key, value=value, headers=headers) is None:
            return False
        self.count += 1
        return True

    async def send(self, producer: AIOKafkaProducer) -> asyncio.Future[Any]:
        # Closed: nothing more joins it, so the producer sends it now instead of letting it
        # linger for records that will never come.
        self.builder.close()
        return await producer.send_batch(self.builder, self.topic, partition=self.partition)  # type: ignore[no-any-return]


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
        lag_interval: float = LAG_INTERVAL_S,
    ) -> None:
        """`telemetry` off: no tracing, no FastStream metrics and no consumer lag sampling (a
        publisher for tests or a command, not a service)."""
        self.config = config
        self.service = service
        self.broker = broker or create_broker(
            config, service, registry=registry, telemetry=telemetry
        )
        self.outbox = Outbox(service)
        self._started = False
        self._bulk: AIOKafkaProducer | None = None
        self._bulk_lock = asyncio.Lock()
        self._positions: dict[tuple[str, str, int], int] = {}
        self._lag = (
            LagSampler(lambda: self.broker.subscribers, self._positions, service, lag_interval)
            if telemetry
            else None
        )
        self._lag_task: asyncio.Task[None] | None = None

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
        if self._lag is not None and self._lag_task is None:
            self._lag_task = asyncio.create_task(self._lag.run(), name=f"{self.service} lag")

    async def stop(self) -> None:
        task, self._lag_task = self._lag_task, None
        try:
            await stop_sampler(task, self._lag)
        except Exception:
            # Metrics must never keep the broker from stopping (its consumers would run on).
            log.warning("stopping the consumer lag sampler failed", exc_info=True)
        if self._bulk is not None:
            bulk, self._bulk = self._bulk, None
            await bulk.stop()
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
        """Publish many events at once and wait until the broker acknowledged all (acks=all).

        This is the high-volume path (market data), built on aiokafka's batch API: events are
        grouped per topic partition (chosen by aiokafka's default murmur2 partitioner on the
        topic's key, so a key lands where ``publish()`` puts it and keeps its order), each group
        goes out as record batches, and one OpenTelemetry PRODUCER span covers the call
        (``messaging.batch.message_count``, as the messaging conventions describe batch sends);
        every message carries that span's ``traceparent``. Why not FastStream's publisher here:
        its telemetry and Prometheus middlewares open a span and observe histograms per message,
        which costs more than the send itself at tens of thousands of events per second
        (benchmarks/bus_publish.py measures it). ``publish()``, consumers and the outbox relay
        keep FastStream's middlewares.

        Delivery is at least once. aiokafka retries retriable errors up to the request timeout;
        if a batch still fails, or an event is larger than kafka_max_request_size (it is not
        sent), the call raises PublishError with the count not sent, once every other batch
        settled: the other events are published all the same.
        """
        items: list[tuple[TopicSpec, Any, Envelope]] = []
        now = datetime.now(UTC)  # the events of one call are published at the same moment
        for event in events:
            spec = topic or topic_for(event)
            items.append((spec, event, new_envelope(event, self.service, time=now)))
        if not items:
            return []
        names = sorted({spec.name for spec, _, _ in items})
        producer = await self._bulk_producer()
        partitions = {name: sorted(await producer.partitions_for(name)) for name in names}
        attributes: dict[str, Any] = {
            "messaging.system": "kafka",
            "messaging.operation.type": "send",
            "messaging.operation.name": "publish_many",
            "messaging.batch.message_count": len(items),
            "messaging.destination.name": names[0] if len(names) == 1 else "multiple",
            "messaging.client.id": self.service,
        }
        with _tracer.start_as_current_span(
            f"{attributes['messaging.destination.name']} send",
            kind=trace.SpanKind.PRODUCER,
            attributes=attributes,
        ) as span:
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            trace_headers = [(k, v.encode()) for k, v in carrier.items()]
            open_batches: dict[tuple[str, int], _OpenBatch] = {}
            sent: list[tuple[asyncio.Future[Any], _OpenBatch]] = []
            send_error: BaseException | None = None
            too_big: ValueError | None = None
            # A batch usually repeats few keys (an instrument's ticks): hash each key once.
            chosen: dict[tuple[str, bytes], int] = {}
            try:
                for spec, event, envelope in items:
                    key = spec.key_of(event)
                    partition = chosen.get((spec.name, key))
                    if partition is None:
                        available = partitions[spec.name]
                        partition = _PARTITIONER(key, available, available)
                        chosen[(spec.name, key)] = partition
                    value = spec.encode(event)
                    headers = envelope.to_kafka_headers() + trace_headers
                    size = len(key) + len(value) + sum(len(k) + len(v) for k, v in headers)
                    if size > self.config.kafka_max_request_size:
                        # aiokafka's send() refuses such a record; its batch API does not check.
                        too_big = too_big or ValueError(
                            f"a {event.type} event of {size} bytes exceeds "
                            f"kafka_max_request_size ({self.config.kafka_max_request_size})"
                        )
                        continue
                    batch = open_batches.get((spec.name, partition))
                    if batch is not None and batch.append(key, value, headers):
                        continue
                    if batch is not None:  # full: send it and start the next one
                        sent.append((await batch.send(producer), batch))
                    batch = _OpenBatch(spec.name, partition, producer.create_batch())
                    if not batch.append(key, value, headers):  # an empty batch takes any record
                        raise RuntimeError("aiokafka refused a record in an empty batch")
                    open_batches[(spec.name, partition)] = batch
                for batch in open_batches.values():
                    sent.append((await batch.send(producer), batch))
                open_batches.clear()
            except Exception as exc:
                send_error = exc
            # Batches already queued go out whatever happened after them: wait for all of them.
            results = await asyncio.gather(*(f for f, _ in sent), return_exceptions=True)
            totals: dict[str, int] = {}
            for spec, _, _ in items:
                totals[spec.name] = totals.get(spec.name, 0) + 1
            published: dict[str, int] = {}
            first_error = send_error or too_big
            for (_, batch), result in zip(sent, results, strict=True):
                if isinstance(result, BaseException):
                    first_error = first_error or result
                else:
                    published[batch.topic] = published.get(batch.topic, 0) + batch.count
            for name, total in totals.items():
                ok = published.get(name, 0)
                if ok:
                    metrics.published(self.service, name, ok)
                if total > ok:
                    metrics.publish_errors(self.service, name, total - ok)
            if first_error is not None:
                span.set_status(trace.StatusCode.ERROR, type(first_error).__name__)
                failed = len(items) - sum(published.values())
                raise PublishError(failed, len(items)) from first_error
        return [envelope for _, _, envelope in items]

    async def _bulk_producer(self) -> AIOKafkaProducer:
        async with self._bulk_lock:
            if self._bulk is None:
                if not self._started:
                    raise RuntimeError("bus not started")
                producer = create_bulk_producer(self.config, self.service)
                await producer.start()
                self._bulk = producer
        return self._bulk

    async def publish_raw(
        self,
        topic: str,
        payload: bytes,
        key: bytes | None,
        headers: Mapping[str, str],
        *,
        confirm: bool = True,
    ) -> Any:
        """Send prepared bytes. With confirm=False return the acknowledgement future instead.

        The first try runs without tenacity (its per-call set-up costs more than an aiokafka
        send); only a retriable error enters the retry loop, with the configured backoff.
        """
        send_headers = dict(headers)
        try:
            try:
                result = await self.broker.publish(
                    payload, topic, key=key, headers=send_headers, no_confirm=not confirm
                )
            except _RETRIABLE_PUBLISH:
                if self.config.kafka_publish_retries == 0:
                    raise
                result = await self._publish_retrying(topic, payload, key, send_headers, confirm)
        except Exception:
            metrics.publish_errors(self.service, topic)
            raise
        metrics.published(self.service, topic)
        return result

    async def _publish_retrying(
        self, topic: str, payload: bytes, key: bytes | None, headers: dict[str, str], confirm: bool
    ) -> Any:
        await asyncio.sleep(self.config.kafka_retry_backoff_ms / 1000)  # back off before retry 1
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(self.config.kafka_publish_retries),
            wait=wait_exponential_jitter(
                multiplier=self.config.kafka_retry_backoff_ms / 1000,
                max=5.0,
                jitter=self.config.kafka_retry_backoff_ms / 1000,
            ),
            retry=retry_if_exception_type(_RETRIABLE_PUBLISH),
            reraise=True,
        ):
            with attempt:
                metrics.publish_retry(self.service, topic)
                return await self.broker.publish(
                    payload, topic, key=key, headers=headers, no_confirm=not confirm
                )
        raise AssertionError("unreachable: tenacity reraises the last error")

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
        fetch_max_wait_ms: int | None = None,
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

        `fetch_max_wait_ms` overrides the setting of the same name for a subscription that can
        afford to hear late and should cost little while idle.
        """
        spec = get_topic(topic) if isinstance(topic, str) else topic
        cfg = self.config
        metrics.consumer_topic(self.service, spec.name, DLQ_REASONS)
        subscriber = self.broker.subscriber(
            spec.name,
            group_id=group,
            auto_offset_reset="earliest" if from_beginning else "latest",
            ack_policy=AckPolicy.NACK_ON_ERROR,
            session_timeout_ms=cfg.kafka_session_timeout_ms,
            heartbeat_interval_ms=cfg.kafka_heartbeat_interval_ms,
            rebalance_timeout_ms=cfg.kafka_rebalance_timeout_ms or cfg.kafka_session_timeout_ms,
            fetch_max_wait_ms=cfg.kafka_fetch_max_wait_ms
            if fetch_max_wait_ms is None
            else fetch_max_wait_ms,
            decoder=_raw_body,
        )

        async def consume(body: bytes, msg: KafkaMessage) -> None:
            record: Any = msg.raw_message  # one ConsumerRecord: not a batch subscriber
            # Where this group stands on the partition, for the consumer lag (lag.py).
            self._positions[(group, record.topic, record.partition)] = record.offset + 1
            await self._consume(spec, group, handler, db, inbox, record)

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
