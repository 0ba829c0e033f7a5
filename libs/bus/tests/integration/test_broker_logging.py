"""What FastStream itself logs through the broker every service uses, on the real broker: its
per-message lines at DEBUG, a handler's failure still at ERROR."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from trademesh_bus.broker import create_broker

pytestmark = pytest.mark.integration


def _faststream_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "trademesh.bus"]


async def _until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "not within the timeout"
        await asyncio.sleep(0.05)


async def test_received_and_processed_are_debug_and_a_failure_is_an_error(
    service_settings: Callable[..., Any],
    topic_factory: Callable[..., Awaitable[str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    topic = await topic_factory("logging")
    broker = create_broker(service_settings(), "logging-svc", telemetry=False)
    handled: list[str] = []

    @broker.subscriber(topic, group_id=f"g-{uuid.uuid4().hex[:8]}", auto_offset_reset="earliest")
    async def handle(body: str) -> None:
        handled.append(body)
        if body == "bad":
            raise ValueError("a bad message")

    caplog.set_level(logging.DEBUG)
    await broker.start()
    try:
        await broker.publish("good", topic)
        await broker.publish("bad", topic)
        failed = (logging.ERROR, "ValueError: a bad message")
        await _until(lambda: failed in _faststream_lines(caplog))
    finally:
        await broker.stop()

    lines = _faststream_lines(caplog)
    assert handled[:2] == ["good", "bad"]
    per_message = [level for level, text in lines if text in ("Received", "Processed")]
    assert len(per_message) >= 4, lines  # a pair for each of the two messages
    assert set(per_message) == {logging.DEBUG}, lines
    assert [text for level, text in lines if level >= logging.WARNING] == [
        "ValueError: a bad message"
    ], lines
