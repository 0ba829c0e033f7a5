"""How the bus classifies failures: poison (to the DLQ at once), transient (retried), or a handler bug."""

from __future__ import annotations

import asyncio

import asyncpg


class PoisonMessage(Exception):
    """A message that can never be handled as it is (bad envelope, bad JSON, schema violation)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class PublishError(Exception):
    """Some messages of a publish_many were not acknowledged by the broker (after its retries)."""

    def __init__(self, failed: int, total: int) -> None:
        super().__init__(f"{failed} of {total} messages were not acknowledged")
        self.failed = failed
        self.total = total


class TransientError(Exception):
    """Raise from a handler for a failure that should be retried (a dependency is briefly away)."""


_TRANSIENT: tuple[type[BaseException], ...] = (
    TransientError,
    ConnectionError,
    TimeoutError,
    asyncio.TimeoutError,
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.InterfaceError,
)


def is_transient(exc: BaseException) -> bool:
    """True for errors that may succeed on retry: connection loss, timeouts, serialization conflicts."""
    return isinstance(exc, _TRANSIENT)
