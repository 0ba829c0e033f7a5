"""The feed interface: a feed reads its source and hands batches to a FeedOutput until stopped."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

from trademesh_events.marketdata import Bar, Tick


class FeedOutput(Protocol):
    """Where a feed's data goes (the runner: checks, bars, publishing, storage, metrics)."""

    async def ticks(self, ticks: Sequence[Tick]) -> None: ...

    async def bars(self, bars: Sequence[Bar]) -> None: ...

    def rejected(self, reason: str, detail: str) -> None:
        """A record of the source that is not valid: counted and logged, never published."""

    def connected(self, up: bool) -> None:
        """The feed's connection to its source went up or down."""


class Feed(Protocol):
    @property
    def kind(self) -> str: ...

    @property
    def live(self) -> bool:
        """Its data is happening now (bars also close on the clock), not replayed."""

    async def run(self, out: FeedOutput, stop: asyncio.Event) -> None:
        """Produce until the source ends or `stop` is set."""
