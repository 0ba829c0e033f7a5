"""Waking the delivery loop when deliveries commit: Postgres LISTEN on a connection of its own.

The consumer's transaction NOTIFYs when it writes deliveries (DeliveryStore.enqueue), and
Postgres hands the notification to every listening session only when that transaction commits,
so a loop woken by it finds the rows, on every replica. The listening connection is not the
pool's (a pooled connection is reset and shared; LISTEN is session state): it is opened here,
checked now and then, and opened again when it drops. While it is down the loop polls faster.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import asyncpg
from trademesh_observability.logging import get_logger

log = get_logger("trademesh_notify.wake")


class CommitListener:
    """LISTENs on `channel` and calls `wake` for each notification, and once after each
    (re)connection (something may have committed while nobody listened)."""

    def __init__(
        self,
        url: str,
        channel: str,
        *,
        check_every_s: float = 30.0,
        reconnect_s: float = 1.0,
        connect_timeout_s: float = 5.0,
        application_name: str = "trademesh-notify",
    ) -> None:
        self.url = url
        self.application_name = application_name
        self.channel = channel
        self.check_every_s = check_every_s
        self.reconnect_s = reconnect_s
        self.connect_timeout_s = connect_timeout_s
        self.listening = False

    async def run(self, stop: asyncio.Event, wake: Callable[[], None]) -> None:
        """Listen until `stop`, reconnecting after `reconnect_s` when the connection fails."""
        while not stop.is_set():
            try:
                await self._listen(stop, wake)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("delivery wake-up listener lost; reconnecting", error=repr(exc))
            finally:
                self.listening = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.reconnect_s)

    async def _listen(self, stop: asyncio.Event, wake: Callable[[], None]) -> None:
        conn = await asyncpg.connect(
            self.url,
            timeout=self.connect_timeout_s,
            server_settings={"application_name": self.application_name},
        )
        lost = asyncio.Event()
        try:
            conn.add_termination_listener(lambda _conn: lost.set())
            await conn.add_listener(self.channel, lambda *_args: wake())
            self.listening = True
            wake()
            while not (stop.is_set() or lost.is_set()):
                ended = asyncio.ensure_future(_first(stop, lost))
                try:
                    await asyncio.wait_for(asyncio.shield(ended), self.check_every_s)
                except TimeoutError:
                    # A connection can die without a word (a host gone): ask it something.
                    await conn.fetchval("SELECT 1", timeout=self.connect_timeout_s)
                finally:
                    ended.cancel()
            if lost.is_set() and not stop.is_set():
                raise ConnectionError("the listening connection closed")
        finally:
            self.listening = False
            with contextlib.suppress(Exception):
                await conn.close(timeout=self.connect_timeout_s)


async def _first(*events: asyncio.Event) -> None:
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
