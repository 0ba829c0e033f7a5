"""The states of a queued backtest and the rules of its claims: how often a worker beats, when
it is presumed lost, how many claims a row gets and how long a put-back one waits."""

from __future__ import annotations

import asyncio
from enum import StrEnum

HEARTBEAT_INTERVAL_S = 10.0
"""How often a worker marks a running backtest as alive."""
STALE_AFTER_S = 60.0
"""A RUNNING backtest whose heartbeat is older than this has lost its worker: it is claimed again."""
MAX_ATTEMPTS = 5
"""Claims of one backtest before it is FAILED (market data unavailable, worker lost)."""
RETRY_BASE_S = 5.0
"""A backtest put back after an attempt waits RETRY_BASE_S * 2**(attempts-1) s (at most 5 min)."""


class BacktestStatus(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


def describe_error(exc: BaseException) -> str:
    """`Type: message`, the error text of a backtest whose strategy raised."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def first_of(*events: asyncio.Event, timeout: float) -> None:
    """Wait until one of `events` is set, or `timeout` seconds."""
    waiters = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
