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


TOKEN = "123456789:unit-test-token"  # pragma: allowlist secret
OTHER_TOKEN = "987654321:unit-test-token"  # pragma: allowlist secret


async def test_one_bots_limit_spans_all_its_chats() -> None:
    limits = ChannelLimits("memory://", {"telegram": "100/minute"}, "2/minute")
    chats = [uuid4() for _ in range(3)]
    assert await limits.admit("telegram", chats[0], TOKEN) is None
    assert await limits.admit("telegram", chats[1], TOKEN) is None
    assert await limits.admit("telegram", chats[2], TOKEN) is not None  # the bot's third
    assert await limits.admit("telegram", chats[2], OTHER_TOKEN) is None  # another bot


async def test_a_send_put_off_uses_up_none_of_its_other_limits() -> None:
    limits = ChannelLimits("memory://", {"telegram": "3/minute"}, "1/minute")
    busy, chat = uuid4(), uuid4()
    assert await limits.admit("telegram", busy, TOKEN) is None  # the bot's one a minute
    for _ in range(10):  # put off by the bot's limit, again and again
        assert await limits.admit("telegram", chat, TOKEN) is not None
    # The chat's own three a minute are all still there (counted here without a bot's).
    assert [await limits.admit("telegram", chat) for _ in range(3)] == [None] * 3
    assert await limits.admit("telegram", chat) is not None


async def test_a_send_put_off_by_one_of_a_kinds_limits_uses_none_of_the_others() -> None:
    limits = ChannelLimits("memory://", {"webhook": "3/day;2/hour"})
    channel = uuid4()
    assert [await limits.admit("webhook", channel) for _ in range(2)] == [None, None]
    for _ in range(5):
        assert await limits.admit("webhook", channel) is not None
    stats = await limits.limiter.get_window_stats(
        limits.items("webhook")[0], "trademesh-notify", "webhook", str(channel)
    )
    assert stats.remaining == 1  # the day's count holds the two sent, not the five put off
