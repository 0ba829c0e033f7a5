"""`trademesh events tail`: read a topic without joining a consumer group and print decoded events."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError
from trademesh_events.envelope import Envelope, EnvelopeError
from trademesh_events.topics import get_topic


def render(record: Any) -> dict[str, Any]:
    """One record as a dict: its position, envelope, and the event (or why it could not be decoded)."""
    headers = {k: v.decode("utf-8", errors="backslashreplace") for k, v in (record.headers or [])}
    item: dict[str, Any] = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": datetime.fromtimestamp(record.timestamp / 1000, UTC).isoformat(),
        "key": record.key.decode("utf-8", errors="backslashreplace")
        if record.key is not None
        else None,
    }
    try:
        envelope = Envelope.from_headers(record.headers or [])
        item["envelope"] = {
            "id": str(envelope.id),
            "type": envelope.type,
            "source": envelope.source,
            "time": envelope.time.isoformat(),
            "traceparent": envelope.traceparent,
        }
    except EnvelopeError as exc:
        item["envelope_error"] = str(exc)
    extra = {
        k: v
        for k, v in headers.items()
        if not k.startswith("ce_") and k not in {"content-type", "traceparent", "tracestate"}
    }
    if extra:
        item["headers"] = extra
    base_topic = record.topic.removesuffix(".dlq")
    try:
        spec = get_topic(base_topic)
        event = spec.decode(record.value or b"")
        item["event"] = json.loads(spec.encode(event))
    except (KeyError, ValidationError) as exc:
        item["decode_error"] = type(exc).__name__
        item["raw"] = (record.value or b"").decode("utf-8", errors="backslashreplace")
    return item


async def tail(
    bootstrap: str,
    topic: str,
    *,
    from_beginning: bool,
    key: str | None,
    limit: int | None,
    idle_timeout: float | None,
    out: TextIO,
    security: Mapping[str, Any] | None = None,
) -> int:
    """Print records of `topic` as JSON lines; returns how many were printed.

    `security`: aiokafka's TLS/SASL arguments (trademesh_bus.broker.client_security).
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None, **(security or {})
    )
    await consumer.start()
    printed = 0
    try:
        partitions = consumer.partitions_for_topic(topic)
        if partitions is None:
            await consumer._client.force_metadata_update()  # topic may be new to this client
            partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise SystemExit(f"topic {topic} does not exist")
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        if from_beginning:
            await consumer.seek_to_beginning(*assigned)
        else:
            await consumer.seek_to_end(*assigned)
        wanted = key.encode() if key is not None else None
        idle_ms = int((idle_timeout or 0) * 1000)
        while limit is None or printed < limit:
            batch = await consumer.getmany(timeout_ms=idle_ms or 1000)
            if not batch:
                if idle_timeout is not None:
                    break
                continue
            for records in batch.values():
                for record in records:
                    if wanted is not None and record.key != wanted:
                        continue
                    out.write(json.dumps(render(record), sort_keys=False) + "\n")
                    out.flush()
                    printed += 1
                    if limit is not None and printed >= limit:
                        return printed
    finally:
        await consumer.stop()
    return printed
