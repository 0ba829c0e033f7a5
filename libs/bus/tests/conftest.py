"""Fixtures for the bus tests: test-only topics carrying real event types, and sample events."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from trademesh_events.marketdata import Tick
from trademesh_events.topics import TopicSpec


@pytest.fixture
def tick_topic(topic_factory: Callable[..., Awaitable[str]]) -> Callable[..., Awaitable[TopicSpec]]:
    """A fresh topic (and DLQ) that carries Tick events keyed by instrument."""

    async def create(partitions: int = 3) -> TopicSpec:
        name = await topic_factory("ticks", partitions)
        return TopicSpec(
            name=name,
            events=(Tick,),
            key_field="instrument_id",
            partitions=partitions,
            description="test ticks",
        )

    return create
