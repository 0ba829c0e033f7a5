"""Per-channel rate limits (memory storage): admitted within the limit, put off past it."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from trademesh_notify.ratelimit import ChannelLimits

pytestmark = pytest.mark.unit


async def test_a_channel_over_its_limit_is_put_off_until_its_window_allows() -> None:
    limits = ChannelLimits("memory://", {"webhook": "2/minute"})
    channel = uuid4()
    assert await limits.admit("webhook", channel) is None
    assert await limits.admit("webhook", channel) is None
    until = await limits.admit("webhook", channel)
    assert until is not None
    now = datetime.now(UTC)
    assert now < until <= now + timedelta(minutes=1)


async def test_each_channel_has_its_own_count() -> None:
    limits = ChannelLimits("memory://", {"webhook": "1/minute"})
    first, second = uuid4(), uuid4()
    assert await limits.admit("webhook", first) is None
    assert await limits.admit("webhook", second) is None
    assert await limits.admit("webhook", first) is not None


async def test_a_kind_not_named_takes_the_default_and_without_one_is_unlimited() -> None:
    limits = ChannelLimits("memory://", {"default": "1/minute", "webhook": "100/minute"})
    channel = uuid4()
    assert await limits.admit("telegram", channel) is None
    assert await limits.admit("telegram", channel) is not None
    assert await limits.admit("webhook", channel) is None  # its own count, its own limit
    unlimited = ChannelLimits("memory://", {"webhook": "1/minute"})
    assert all([await unlimited.admit("email", channel) is None for _ in range(50)])


async def test_every_limit_of_a_kind_holds() -> None:
    limits = ChannelLimits("memory://", {"webhook": "100/second;3/minute"})
    channel = uuid4()
    admitted = [await limits.admit("webhook", channel) for _ in range(4)]
    assert admitted[:3] == [None, None, None]
    assert admitted[3] is not None
    assert admitted[3] > datetime.fromtimestamp(
        time.time() + 1, UTC
    )  # the minute's, not the second's


async def test_a_storage_that_does_not_answer_admits() -> None:
    limits = ChannelLimits("redis://127.0.0.1:9", {"webhook": "1/minute"})
    channel = uuid4()
    assert await limits.admit("webhook", channel) is None
    assert await limits.admit("webhook", channel) is None
