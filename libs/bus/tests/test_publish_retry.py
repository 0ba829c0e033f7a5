"""publish_raw's retry control flow: one plain try, then backoff retries on retriable errors only.

A unit test with a scripted broker object: the broker cannot be made to fail on cue. The real
broker's behaviour (unreachable broker, outbox rows kept) is covered in integration/test_delivery.
"""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError
from trademesh_bus import Bus
from trademesh_config import KafkaSettings
from trademesh_observability.metrics import REGISTRY

pytestmark = pytest.mark.unit


class ScriptedBroker:
    """Raises the scripted errors in turn, then answers "ack"."""

    def __init__(self, errors: list[Exception]) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def publish(self, *_args: Any, **_kwargs: Any) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ack"


def _bus(broker: ScriptedBroker, retries: int) -> Bus:
    settings = KafkaSettings(kafka_publish_retries=retries, kafka_retry_backoff_ms=1)
    return Bus(settings, "retry-test", broker=broker)  # type: ignore[arg-type]


def _count(name: str, topic: str) -> float:
    return REGISTRY.get_sample_value(name, {"service": "retry-test", "topic": topic}) or 0.0


async def test_retriable_errors_are_retried_then_published() -> None:
    broker = ScriptedBroker([KafkaConnectionError(), KafkaConnectionError()])
    before = _count("trademesh_bus_publish_retries_total", "t.retry")
    assert await _bus(broker, retries=3).publish_raw("t.retry", b"{}", b"k", {}) == "ack"
    assert broker.calls == 3
    assert _count("trademesh_bus_publish_retries_total", "t.retry") - before == 2


async def test_retries_are_bounded_and_the_error_is_counted() -> None:
    broker = ScriptedBroker([KafkaConnectionError()] * 5)
    before = _count("trademesh_bus_publish_errors_total", "t.bounded")
    with pytest.raises(KafkaConnectionError):
        await _bus(broker, retries=2).publish_raw("t.bounded", b"{}", b"k", {})
    assert broker.calls == 3  # the first try and two retries
    assert _count("trademesh_bus_publish_errors_total", "t.bounded") - before == 1


async def test_other_errors_are_not_retried() -> None:
    broker = ScriptedBroker([ValueError("bad")])
    with pytest.raises(ValueError, match="bad"):
        await _bus(broker, retries=5).publish_raw("t.other", b"{}", b"k", {})
    assert broker.calls == 1
