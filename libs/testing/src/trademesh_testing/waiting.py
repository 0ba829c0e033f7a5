"""Waiting for something that happens asynchronously (a consumer, a relay, a buffer), in tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any


async def eventually(
    check: Callable[[], Awaitable[Any]], timeout: float = 30.0, interval: float = 0.1
) -> Any:
    """The first truthy result of `check`, polled every `interval` until `timeout` (then the
    test fails with AssertionError)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await check()
        if result:
            return result
        assert loop.time() < deadline, f"condition not met within {timeout:g}s"
        await asyncio.sleep(interval)
