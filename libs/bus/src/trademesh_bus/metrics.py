"""The bus's observations, recorded on the metrics declared in trademesh_observability.metrics."""

from __future__ import annotations

from trademesh_observability import metrics as m


def published(service: str, topic: str, count: int = 1) -> None:
    m.BUS_PUBLISHED.labels(service=service, topic=topic).inc(count)


def publish_errors(service: str, topic: str, count: int = 1) -> None:
    m.BUS_PUBLISH_ERRORS.labels(service=service, topic=topic).inc(count)


def publish_retry(service: str, topic: str) -> None:
    m.BUS_PUBLISH_RETRIES.labels(service=service, topic=topic).inc()


def dead_lettered(service: str, topic: str, reason: str) -> None:
    m.BUS_DLQ.labels(service=service, topic=topic, reason=reason).inc()


def handler_retry(service: str, topic: str) -> None:
    m.BUS_HANDLER_RETRIES.labels(service=service, topic=topic).inc()


def duplicate_skipped(service: str, topic: str) -> None:
    m.BUS_REDELIVERIES_SKIPPED.labels(service=service, topic=topic).inc()


def outbox_pending(service: str, pending: int) -> None:
    m.OUTBOX_PENDING.labels(service=service).set(max(pending, 0))


def outbox_relayed(service: str, topic: str, lag_seconds: float) -> None:
    m.OUTBOX_RELAYED.labels(service=service, topic=topic).inc()
    m.OUTBOX_RELAY_LAG.labels(service=service).observe(max(lag_seconds, 0.0))
