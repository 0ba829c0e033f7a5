"""Typed publish/subscribe over the broker: CloudEvents envelope, DLQ, retries, inbox and outbox."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain
from typing import Any, Literal, TypeAlias, TypeVar
from uuid import UUID

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, NotLeaderForPartitionError
from aiokafka.partitioner import DefaultPartitioner
from faststream.kafka import KafkaBroker
from faststream.message import StreamMessage
from faststream.middlewares import AckPolicy
from opentelemetry import context as otel_context
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
from trademesh_events.base import Event
from trademesh_events.envelope import Envelope, EnvelopeError, new_envelope
from trademesh_events.topics import TopicSpec, get_topic, topic_for
from trademesh_observability.tracing import use_traceparent

from trademesh_bus import inbox as inbox_table
from trademesh_bus import metrics
from trademesh_bus.broker import KafkaConfig, create_broker, create_bulk_producer
from trademesh_bus.errors import PoisonMessage, PublishError, is_transient
from trademesh_bus.lag import LAG_INTERVAL_S, LagSampler, stop_sampler
from trademesh_bus.outbox import Outbox

log = logging.getLogger("trademesh.bus")
_tracer = trace.get_tracer("trademesh.bus")
_DEAD_LETTERED_KEPT = 10_000  # how many dead-lettered records a process remembers

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
    # For a batch handler, the W3C trace context the message came with: what it passes to
    # Outbox.add so that an event it emits for this message joins the message's trace (a
    # per-record handler runs in the message's own span, which Outbox.add picks up by itself).
    traceparent: str | None = None

    @contextmanager
    def traced(self) -> Iterator[None]:
        """For a batch handler: within this block the message's trace is the current one, so
        what the handler stores or emits for the message (Outbox.add) joins the message's
        trace rather than the batch's span, and what it logs carries the message's trace id."""
        with use_traceparent(self.traceparent):
            yield

    async def emit(self, event: Any, *, subject: str | None = None) -> Envelope:
        """Write a follow-up event to the outbox in this delivery's transaction."""
        if self.conn is None or self.outbox is None:
            raise RuntimeError("emit() needs a transactional subscription (subscribe(..., db=...))")
        return await self.outbox.add(
            self.conn, event, subject=subject, traceparent=self.traceparent
        )


E = TypeVar("E", bound=Event)

# A handler of a TopicSpec[E] takes E, the union of what the topic carries (bare `Handler` is
# Handler[Any], for a topic given by name): it dispatches with `match` and `assert_never`.
Handler: TypeAlias = Callable[[E, Delivery], Awaitable[None]]
# A batch at once: (event, delivery) pairs in the order received (each partition's in order),
# and the batch's transaction (None for a subscription without a database).
BatchHandler: TypeAlias = Callable[
    [list[tuple[E, Delivery]], asyncpg.Connection | None], Awaitable[None]
]


class Route:
    """A topic and its handler, for subscribe_many: the pair mypy checks (the handler takes
    what the topic carries), which a mapping of several topics cannot say. Not generic itself,
    so that the type is inferred from the pair alone, never from where the Route goes."""

    __slots__ = ("handler", "topic")

    def __init__(self, topic: TopicSpec[E], handler: Handler[E]) -> None:
        self.topic: TopicSpec[Event] = topic
        self.handler: Handler[Any] = handler


# Where publish_many's events' traces start: None, the caller's trace; "batch", one new trace
# for the call; "each", a new trace per event.
NewTrace = Literal["batch", "each"] | None


def _trace_headers() -> list[tuple[str, bytes]]:
    """The current span's trace context as Kafka headers (traceparent, and tracestate if any)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return [(k, v.encode()) for k, v in carrier.items()]


def _own_trace(topic: str, call: trace.Span) -> list[tuple[str, bytes]]:
    """Headers of a new trace for one event: a PRODUCER span with no parent, linked to the
    publish call's span, ended at once (the event's send is the call's span)."""
    span = _tracer.start_span(
        f"{topic} publish",
        context=otel_context.Context(),
        kind=trace.SpanKind.PRODUCER,
        links=[trace.Link(call.get_span_context())],
        attributes={"messaging.system": "kafka", "messaging.destination.name": topic},
    )
    try:
        with trace.use_span(span):
            return _trace_headers()
    finally:
        span.end()


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
        # The records this process dead-lettered lately, by (group, topic, partition, offset).
        self._dead_lettered: OrderedDict[tuple[str, str, int, int], None] = OrderedDict()
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
        self, event: Any, *, topic: TopicSpec[Event] | None = None, subject: str | None = None
    ) -> Envelope:
        """Publish one event to its topic, keyed by the topic's rule, and wait for acks=all."""
        spec = topic or topic_for(event)
        envelope = new_envelope(event, self.service, subject=subject)
        await self.publish_raw(
            spec.name, spec.encode(event), spec.key_of(event), envelope.to_headers()
        )
        return envelope

    async def publish_many(
        self,
        events: Iterable[Any],
        *,
        topic: TopicSpec[Event] | None = None,
        new_trace: NewTrace = None,
    ) -> list[Envelope]:
        """Publish many events at once and wait until the broker acknowledged all (acks=all).

        This is the high-volume path (market data), built on aiokafka's batch API: events are
        grouped per topic partition (chosen by aiokafka's default murmur2 partitioner on the
        topic's key, so a key lands where ``publish()`` puts it and keeps its order), each group
        goes out as record batches, and one OpenTelemetry PRODUCER span covers the call
        (``messaging.batch.message_count``, as the messaging conventions describe batch sends);
        every message carries that span's ``traceparent``, in the caller's trace. With
        ``new_trace="batch"`` the call's span starts a trace of its own instead (linked to the
        caller's span), and with ``new_trace="each"`` every event starts its own trace: a
        PRODUCER span per event, with no parent and a link to the call's span, whose
        ``traceparent`` the event carries. A feed's events are where order paths begin: in the
        trace of the request that started the feed, every bot order of a replay would share one
        endless trace. Why not FastStream's publisher here:
        its telemetry and Prometheus middlewares open a span and observe histograms per message,
        which costs more than the send itself at tens of thousands of events per second
        (benchmarks/bus_publish.py measures it). ``publish()``, consumers and the outbox relay
        keep FastStream's middlewares.

        Delivery is at least once. aiokafka retries retriable errors up to the request timeout;
        if a batch still fails, or an event is larger than kafka_max_request_size (it is not
        sent), the call raises PublishError with the count not sent, once every other batch
        settled: the other events are published all the same.
        """
        items: list[tuple[TopicSpec[Event], Any, Envelope]] = []
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
        caller = trace.get_current_span().get_span_context()
        with _tracer.start_as_current_span(
            f"{attributes['messaging.destination.name']} send",
            # "batch": a root span, so that the events' trace starts here.
            context=otel_context.Context() if new_trace == "batch" else None,
            kind=trace.SpanKind.PRODUCER,
            attributes=attributes,
            links=[trace.Link(caller)] if new_trace == "batch" and caller.is_valid else None,
        ) as span:
            trace_headers = _trace_headers()
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
                    own = _own_trace(spec.name, span) if new_trace == "each" else None
                    headers = envelope.to_kafka_headers() + (own or trace_headers)
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
        topic: TopicSpec[E] | str,
        *,
        group: str,
        handler: Handler[E],
        db: Database | None = None,
        inbox: bool = True,
        from_beginning: bool = True,
        background: bool = False,
    ) -> Any:
        """Register `handler(event, delivery)` for `topic` in consumer group `group` (one
        consumer; see subscribe_many, which this is with one topic). For a TopicSpec[E],
        `handler` takes E."""
        return self.subscribe_many(
            {topic: handler},
            group=group,
            db=db,
            inbox=inbox,
            from_beginning=from_beginning,
            background=background,
        )

    def subscribe_many(
        self,
        handlers: Mapping[TopicSpec[Event] | str, Handler[Any]] | Sequence[Route],
        *,
        group: str,
        db: Database | None = None,
        inbox: bool = True,
        from_beginning: bool = True,
        background: bool = False,
    ) -> Any:
        """Register a handler per topic, all read by one consumer in consumer group `group`.

        `handlers` maps each topic (or its name) to its handler, or is a sequence of Route, in
        which mypy checks that each handler takes what its topic carries.

        The consumer takes what the broker has in batches (up to kafka_consume_batch records,
        across its partitions, each partition's records in order) and:
        - with `db`, handles a batch in one Postgres transaction: one statement claims the
          batch's event ids in the inbox (a redelivered event is skipped: exactly-once effect),
          each handler runs on that transaction's connection, and `delivery.emit()` writes
          follow-up events to the outbox in it;
        - without `db`, calls the handlers one record after another (no transaction);
        - commits the offsets once the whole batch is handled (and its transaction committed);
        - a message whose envelope or body fails validation goes to `<topic>.dlq` with the error
          in headers, and the consumer goes on;
        - transient errors are retried in place with exponential backoff; if they persist the
          batch is not committed and is delivered again (nothing is lost);
        - any other handler error rolls the batch back, and its records are handled again one
          at a time, each in a transaction of its own: the one that fails goes to the DLQ
          (reason handler_error) and the others are applied, so one bad message can neither stop
          the partition behind it nor take its batch down with it.

        Each handler call runs in a span of its own, a child of the span that produced the
        message. A `background` subscription, one no order waits for (revocations, audit, the
        event stream, prices), fetches with kafka_background_fetch_max_wait_ms: on a broker
        that answers a fetch only when it polls again (Tansu), it hears later but costs little
        while idle.
        """
        pairs = (
            handlers.items()
            if isinstance(handlers, Mapping)
            else [(route.topic, route.handler) for route in handlers]
        )
        specs = {(get_topic(t) if isinstance(t, str) else t): h for t, h in pairs}
        return self._subscribe(
            _Consumer(self, {spec.name: (spec, h) for spec, h in specs.items()}, group, db, inbox),
            from_beginning,
            background,
        )

    def subscribe_batches(
        self,
        topics: Sequence[TopicSpec[E] | str],
        *,
        group: str,
        handler: BatchHandler[E],
        db: Database | None = None,
        inbox: bool = True,
        from_beginning: bool = True,
        background: bool = False,
        max_records: int | None = None,
    ) -> Any:
        """Register `handler(received, conn)` for whole batches of `topics` (one consumer), for a
        service that does a batch's reads and writes set-wise. Everything subscribe_many says
        holds, with the batch handler in place of the per-record calls: it gets the records not
        claimed before (with `db` and `inbox`) and the batch's transaction; when it raises a
        non-transient error, it is called again with each record alone, in a transaction of
        its own, so that only the failing record goes to the DLQ. It runs in one span, linked
        to the spans that produced the messages; an event it emits for a message passes the
        message's `delivery.traceparent` to Outbox.add (delivery.emit does). `max_records`
        (default kafka_consume_batch) bounds a batch, and so how long its transaction holds
        what it locks: the consumer's fetches bring what they bring, batches take from them.
        """
        specs: list[TopicSpec[Event]] = [get_topic(t) if isinstance(t, str) else t for t in topics]
        consumer = _Consumer(self, {s.name: (s, _no_handler) for s in specs}, group, db, inbox)
        consumer.batch_handler = handler
        return self._subscribe(consumer, from_beginning, background, max_records)

    def _subscribe(
        self,
        consumer: _Consumer,
        from_beginning: bool,
        background: bool,
        max_records: int | None = None,
    ) -> Any:
        cfg = self.config
        batch = max_records or cfg.kafka_consume_batch
        for spec, _ in consumer.routes.values():
            metrics.consumer_topic(self.service, spec.name, DLQ_REASONS)
        subscriber = self.broker.subscriber(
            *consumer.routes,
            group_id=consumer.group,
            batch=True,
            max_records=batch,
            batch_timeout_ms=_BATCH_WAIT_MS,
            auto_offset_reset="earliest" if from_beginning else "latest",
            ack_policy=AckPolicy.NACK_ON_ERROR,
            session_timeout_ms=cfg.kafka_session_timeout_ms,
            heartbeat_interval_ms=cfg.kafka_heartbeat_interval_ms,
            rebalance_timeout_ms=cfg.kafka_rebalance_timeout_ms or cfg.kafka_session_timeout_ms,
            fetch_max_wait_ms=cfg.kafka_background_fetch_max_wait_ms
            if background
            else cfg.kafka_fetch_max_wait_ms,
            decoder=_raw_records,
        )
        _hand_over_at_once(subscriber, batch)

        # The body is the batch's records as the decoder left them. Not `msg: KafkaMessage`:
        # FastStream resolves that Context parameter through fast_depends, which runs its sync
        # resolver in a worker thread, a thread hop per batch (12 % of risk's CPU at 500 bars/s
        # in py-spy).
        async def consume(body: Any) -> None:
            records: tuple[Any, ...] = body
            await consumer.batch(records)

        consume.__name__ = consumer.group.replace(".", "_").replace("-", "_")
        subscriber(consume)
        return subscriber

    async def _apply(self, consumer: _Consumer, items: list[_Item]) -> None:
        """Handle `items` in one transaction of `consumer.db`, after claiming their ids in the
        inbox (the crash tests hook in after it returns: committed, offsets not yet)."""
        assert consumer.db is not None
        async with consumer.db.transaction() as conn:
            fresh: set[UUID] | None = None
            if consumer.inbox:
                fresh = await inbox_table.claim_many(
                    conn, consumer.group, [(i.envelope.id, i.spec.name) for i in items]
                )
            if fresh is not None:
                claimed = []
                for item in items:
                    if item.envelope.id not in fresh:
                        metrics.duplicate_skipped(self.service, item.spec.name)
                        continue
                    fresh.discard(item.envelope.id)  # the same event twice in one batch
                    claimed.append(item)
                items = claimed
            await consumer.run(items, conn)

    async def _dead_letter(
        self, spec: TopicSpec[Event], group: str, record: Any, reason: str, detail: str
    ) -> None:
        # A batch whose poison record was dead-lettered may come again (a transient error after
        # it left the batch uncommitted): the record is not dead-lettered twice by this process.
        # Across a restart it may be (at least once, like every delivery).
        where = (group, record.topic, record.partition, record.offset)
        if where in self._dead_lettered:
            return
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
        self._dead_lettered[where] = None
        while len(self._dead_lettered) > _DEAD_LETTERED_KEPT:
            self._dead_lettered.popitem(last=False)
        metrics.dead_lettered(self.service, spec.name, reason)
        log.warning(
            "message sent to the DLQ",
            extra={"topic": spec.name, "dlq": spec.dlq, "reason": reason, "offset": record.offset},
        )


@dataclass(frozen=True, slots=True)
class _Item:
    """A decoded record of a batch, with the handler of its topic."""

    spec: TopicSpec[Event]
    handler: Handler[Any]
    record: Any
    envelope: Envelope
    event: Any


class _Consumer:
    """How one subscription handles the batches its consumer takes (see Bus.subscribe_many)."""

    def __init__(
        self,
        bus: Bus,
        routes: dict[str, tuple[TopicSpec[Event], Handler[Any]]],
        group: str,
        db: Database | None,
        inbox: bool,
    ) -> None:
        self.bus = bus
        self.routes = routes
        self.group = group
        self.db = db
        self.inbox = inbox
        self.batch_handler: BatchHandler[Any] | None = None

    async def batch(self, records: tuple[Any, ...]) -> None:
        # Where this group stands on each partition, for the consumer lag (lag.py): before the
        # first record of the batch while it is handled, after its last once it is.
        positions = self.bus._positions
        ends: dict[tuple[str, str, int], int] = {}
        for record in records:
            key = (self.group, record.topic, record.partition)
            if key not in ends:
                positions[key] = record.offset
            ends[key] = record.offset + 1
        await self._handle(records)
        positions.update(ends)

    async def _handle(self, records: tuple[Any, ...]) -> None:
        bus, items = self.bus, []
        for record in records:
            spec, handler = self.routes[record.topic]
            try:
                envelope, event = _decode(spec, record)
            except PoisonMessage as poison:
                await bus._dead_letter(spec, self.group, record, poison.reason, poison.detail)
                continue
            items.append(_Item(spec, handler, record, envelope, event))
        if not items:
            return
        if self.db is None and self.batch_handler is None:
            for item in items:
                await self.alone(item)
            return
        try:
            if self.db is None:
                await self.retrying(lambda: self.run(items, None), items[0].spec.name)
            else:
                await self.retrying(lambda: bus._apply(self, items), items[0].spec.name)
        except Exception as exc:
            if is_transient(exc):
                self._redelivered(items[0].spec.name, exc)
                raise
            if len(items) == 1:
                await self.failed(items[0], exc)
                return
            log.warning(
                "a record failed its batch; handling the batch's records one at a time",
                extra={"group": self.group, "records": len(items), "error": type(exc).__name__},
            )
            for item in items:
                await self.alone(item)

    async def alone(self, item: _Item) -> None:
        """One record by itself (in a transaction of its own with a database): retried while
        the error is transient, to the DLQ on any other."""
        try:
            if self.db is None:
                await self.retrying(lambda: self.run([item], None), item.spec.name)
            else:
                await self.retrying(lambda: self.bus._apply(self, [item]), item.spec.name)
        except Exception as exc:
            if is_transient(exc):
                self._redelivered(item.spec.name, exc)
                raise
            await self.failed(item, exc)

    async def run(self, items: list[_Item], conn: asyncpg.Connection | None) -> None:
        """Hand `items` to the batch handler, or to their handlers one by one."""
        if not items:
            return
        if self.batch_handler is None:
            for item in items:
                await self.call(item, conn)
            return
        received = [(item.event, self.delivery(item, conn)) for item in items]
        links = [
            trace.Link(context)
            for _, delivery in received
            if (context := _span_context(delivery.traceparent)) is not None
        ]
        names = sorted({item.record.topic for item in items})
        with _tracer.start_as_current_span(
            f"{names[0] if len(names) == 1 else 'multiple'} process",
            kind=trace.SpanKind.CONSUMER,
            links=links,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "process",
                "messaging.destination.name": ",".join(names),
                "messaging.batch.message_count": len(items),
                "messaging.consumer.group.name": self.group,
            },
        ):
            await self.batch_handler(received, conn)

    def delivery(
        self, item: _Item, conn: asyncpg.Connection | None, *, batch: bool = True
    ) -> Delivery:
        record = item.record
        return Delivery(
            envelope=item.envelope,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            conn=conn,
            outbox=self.bus.outbox if conn is not None else None,
            traceparent=_header(record.headers, "traceparent") if batch else None,
        )

    async def call(self, item: _Item, conn: asyncpg.Connection | None) -> None:
        """Run the record's handler in a span of its own, a child of the span that produced it
        (so what the handler emits belongs to the record's trace, not to the batch's)."""
        record = item.record
        delivery = self.delivery(item, conn, batch=False)
        with _tracer.start_as_current_span(
            f"{record.topic} process",
            context=propagate.extract(_trace_carrier(record.headers)),
            kind=trace.SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "process",
                "messaging.destination.name": record.topic,
                "messaging.destination.partition.id": str(record.partition),
                "messaging.kafka.offset": record.offset,
                "messaging.consumer.group.name": self.group,
                "messaging.message.id": str(item.envelope.id),
            },
        ):
            await item.handler(item.event, delivery)

    async def retrying(self, attempt: Callable[[], Awaitable[None]], topic: str) -> None:
        """`attempt()`, retried with backoff while it fails transiently (kafka_handler_retries
        more times). The first try runs without tenacity: its set-up per call cost more than a
        cheap handler (a price update) itself, on every record."""
        cfg = self.bus.config
        try:
            await attempt()
            return
        except Exception as exc:
            if not is_transient(exc) or cfg.kafka_handler_retries == 0:
                raise
        metrics.handler_retry(self.bus.service, topic)
        await asyncio.sleep(cfg.kafka_retry_backoff_ms / 1000)  # back off before retry 1
        async for state in AsyncRetrying(
            stop=stop_after_attempt(cfg.kafka_handler_retries),
            wait=wait_exponential_jitter(
                multiplier=cfg.kafka_retry_backoff_ms / 1000,
                max=10.0,
                jitter=cfg.kafka_retry_backoff_ms / 1000,
            ),
            retry=retry_if_exception(is_transient),
            before_sleep=lambda _state: metrics.handler_retry(self.bus.service, topic),
            reraise=True,
        ):
            with state:
                await attempt()

    async def failed(self, item: _Item, exc: Exception) -> None:
        log.error(
            "handler failed; message sent to the DLQ",
            exc_info=exc,
            extra={"topic": item.spec.name, "group": self.group},
        )
        await self.bus._dead_letter(
            item.spec, self.group, item.record, "handler_error", f"{type(exc).__name__}: {exc}"
        )

    def _redelivered(self, topic: str, exc: Exception) -> None:
        log.warning(
            "handler failed transiently; the batch will be delivered again",
            extra={"topic": topic, "group": self.group, "error": type(exc).__name__},
        )


def _decode(spec: TopicSpec[Event], record: Any) -> tuple[Envelope, Any]:
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


_TRACE_HEADERS = ("traceparent", "tracestate")


def _trace_carrier(headers: Any) -> dict[str, str]:
    return {k: v.decode("latin-1") for k, v in headers or () if k in _TRACE_HEADERS}


def _header(headers: Any, name: str) -> str | None:
    for key, value in headers or ():
        if key == name:
            return value.decode("latin-1")  # type: ignore[no-any-return]
    return None


def _span_context(traceparent: str | None) -> trace.SpanContext | None:
    if traceparent is None:
        return None
    context = trace.get_current_span(propagate.extract({"traceparent": traceparent}))
    span_context = context.get_span_context()
    return span_context if span_context.is_valid else None


async def _no_handler(_event: Any, _delivery: Delivery) -> None:
    raise RuntimeError("a batch subscription hands records to its batch handler only")


# How long a consumer's getmany waits for records before it looks again (it returns as soon as
# there are some): bounds only how long a stop waits for the consume loop.
_BATCH_WAIT_MS = 200


async def _raw_records(msg: StreamMessage[Any]) -> Any:
    """Decoder that leaves the records as they are: the bus validates each against its topic's
    schema itself, so a malformed message becomes a DLQ entry instead of a decoder exception."""
    return msg.raw_message


def _hand_over_at_once(subscriber: Any, max_records: int) -> None:
    """Make a FastStream batch subscriber hand a batch over as soon as its consumer has records.

    FastStream's batch subscriber sleeps batch_timeout_ms more after a getmany that found
    nothing, so a record that arrives during that sleep waits for it: an idle consumer would
    answer its first record up to 200 ms late. aiokafka's getmany already returns as soon as any
    of the consumer's partitions has records (and waits up to its timeout otherwise), so no sleep
    is needed, except against a spin should getmany ever return early with nothing.
    """

    async def get_msg(consumer: AIOKafkaConsumer) -> tuple[Any, ...]:
        started = time.monotonic()
        batches = await consumer.getmany(timeout_ms=_BATCH_WAIT_MS, max_records=max_records)
        if batches:
            return tuple(chain.from_iterable(batches.values()))
        if time.monotonic() - started < _BATCH_WAIT_MS / 2000:
            await asyncio.sleep(_BATCH_WAIT_MS / 1000)
        return ()

    subscriber.get_msg = get_msg


def _stop_after_seconds(seconds: float) -> Any:
    from tenacity import stop_after_delay

    return stop_after_delay(seconds)
