"""The consumer lag `trademesh status` shows (and the end-to-end suites wait on), against the
session's real broker."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from trademesh_cli.status import consumer_lag

pytestmark = pytest.mark.integration


async def _commit(bootstrap: str, group: str, tp: TopicPartition, offset: int) -> None:
    member = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await member.start()
    try:
        member.assign([tp])
        await member.commit({tp: offset})
    finally:
        await member.stop()


async def test_lag_counts_the_records_of_a_batch_after_the_first_one_read(
    kafka_bootstrap: str,
) -> None:
    topic, other = f"lag-{uuid.uuid4().hex[:8]}", f"lag-{uuid.uuid4().hex[:8]}"
    group = f"lagtest.{topic}"
    tp = TopicPartition(topic, 0)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1), NewTopic(other, 1, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, linger_ms=50, enable_idempotence=False
    )
    await producer.start()
    try:
        # One produce request of 20 records: the broker stores them as one batch.
        sent = await asyncio.gather(*[await producer.send(topic, b"%d" % i) for i in range(20)])
        await (await producer.send(other, b"x"))
    finally:
        await producer.stop()
    assert [r.offset for r in sent] == list(range(20))

    async def lag_of_group() -> int:
        # Every group of every topic asked for is there (reading one topic's ends must not lose
        # the others' partitions).
        lags = await consumer_lag(kafka_bootstrap, topics=sorted([topic, other]))
        assert {(x.group, x.topic, x.lag) for x in lags if x.group.startswith("lagtest.")} >= {
            (f"lagtest.{other}", other, 1)
        }
        return next(x.lag for x in lags if x.group == group)

    # A group that has read the batch's first record has 19 to go (Tansu lists the end of this
    # partition as 1: a lag taken from that would be 0).
    await _commit(kafka_bootstrap, f"lagtest.{other}", TopicPartition(other, 0), 0)
    await _commit(kafka_bootstrap, group, tp, 1)
    assert await lag_of_group() == 19
    await _commit(kafka_bootstrap, group, tp, 20)
    assert await lag_of_group() == 0
