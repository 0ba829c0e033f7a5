"""The bus's observations, recorded on the metrics declared in trademesh_observability.metrics."""

from __future__ import annotations

import contextlib

from trademesh_observability import metrics as m

_PUBLISHING: set[tuple[str, str]] = set()


def published(service: str, topic: str, count: int = 1) -> None:
    m.BUS_PUBLISHED.labels(service=service, topic=topic).inc(count)
    if (service, topic) not in _PUBLISHING:
        # The topic is one this process publishes to: its error and retry counters start at 0
        # here, so that a first failure is an increase that alerts and rate() panels see.
        _PUBLISHING.add((service, topic))
        m.BUS_PUBLISH_ERRORS.labels(service=service, topic=topic)
        m.BUS_PUBLISH_RETRIES.labels(service=service, topic=topic)


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


def consumer_lag(service: str, topic: str, partition: int, lag: int) -> None:
    m.BUS_CONSUMER_LAG.labels(service=service, topic=topic, partition=str(partition)).set(lag)


def consumer_lag_gone(service: str, topic: str, partition: int) -> None:
    """The partition is no longer this process's (a rebalance, a stop): drop its series rather
    than leave its last value standing. Already gone is fine: two buses of one service in a
    process (tests, the CLI) share the series."""
    with contextlib.suppress(KeyError):
        m.BUS_CONSUMER_LAG.remove(service, topic, str(partition))


def consumer_topic(service: str, topic: str, dlq_reasons: tuple[str, ...]) -> None:
    """Create the consumer-side counters of `topic` at 0, so that a first dead letter or retry is
    an increase that rate() and increase() see (a series born at 1 has no increase to show)."""
    m.BUS_HANDLER_RETRIES.labels(service=service, topic=topic)
    m.BUS_REDELIVERIES_SKIPPED.labels(service=service, topic=topic)
    for reason in dlq_reasons:
        m.BUS_DLQ.labels(service=service, topic=topic, reason=reason)
