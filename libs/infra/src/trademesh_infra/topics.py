"""Topic provisioning from the events library's registry: each topic, its partitions, retention and DLQ."""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from trademesh_events.base import Event
from trademesh_events.topics import TOPICS, TopicSpec

DEFAULT_RETENTION_MS = 7 * 24 * 3600 * 1000
_TOPIC_ALREADY_EXISTS = 36


@dataclass(frozen=True)
class TopicPlan:
    name: str
    partitions: int
    retention_ms: int


def topic_plan(
    retention_ms: int = DEFAULT_RETENTION_MS,
    specs: tuple[TopicSpec[Event], ...] = TOPICS,
    replication_factor: int = 1,
) -> list[TopicPlan]:
    """Every registered topic and its `<topic>.dlq` (one partition: DLQs are rare and read by people)."""
    plans: list[TopicPlan] = []
    for spec in specs:
        plans.append(TopicPlan(spec.name, spec.partitions, retention_ms))
        plans.append(TopicPlan(spec.dlq, 1, retention_ms))
    return plans


async def ensure_topics(
    bootstrap: str, plans: list[TopicPlan], *, replication_factor: int = 1, timeout_ms: int = 15000
) -> list[str]:
    """Create the topics that are missing; returns the names created. Existing topics are kept."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=timeout_ms)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(
                p.name,
                num_partitions=p.partitions,
                replication_factor=replication_factor,
                topic_configs={"retention.ms": str(p.retention_ms)},
            )
            for p in plans
            if p.name not in existing
        ]
        if not wanted:
            return []
        response = await admin.create_topics(wanted, timeout_ms=timeout_ms)
        created: list[str] = []
        for name, code, message in _topic_errors(response):
            if code == 0:
                created.append(name)
            elif code != _TOPIC_ALREADY_EXISTS:
                raise RuntimeError(f"creating topic {name} failed: error {code} {message}")
        return created
    finally:
        await admin.close()


def _topic_errors(response: object) -> list[tuple[str, int, str | None]]:
    rows = getattr(response, "topic_errors", [])
    return [(str(r[0]), int(r[1]), r[2] if len(r) > 2 else None) for r in rows]
