"""The venue's order stream: the account's order updates on the exchange's private stream, as
ccxt.pro parses them.

Where ccxt has a pro (WebSocket) class for the exchange and it says `has["watchOrders"]`, the
exchange object is that class (its REST is the same as the plain async one's) and `watch_orders`
follows the account's orders on the exchange's private stream (Binance spot: the WebSocket API's
user data stream, subscribed with `userDataStream.subscribe.signature`, its `executionReport`s).
ccxt's own `watch_orders` answers with its cache of orders: one entry per order, updated in
place, and a result only when a waiter happens to be there as a message comes in, so reading it
would merge two updates of an order that came between two reads and hold an update back until
the next message. Instead the stream takes each message's order updates as ccxt parses them (it
hands ccxt caches that report every record appended to them, and wraps ccxt's message handler to
know which records came in one message), converts them at once and buffers them until
`watch_orders` is called: every update ccxt parses is returned once, as soon as it came. The
execution an update reports is the trade ccxt parsed from the same message for that order
(`x=TRADE` on Binance); the update's report leaves the fee out (None), as the stream's order
messages carry the last execution's fee, not the order's (ccxt's running sum of those misses what
happened before the stream opened or while it was down). ccxt's `watch_orders` is still what
opens and authenticates the stream (and re-subscribes when ccxt finds the subscription gone), and
its failures are what the stream's errors are made of.

Reconnecting. The stream is opened by the first call, within `timeout_s` (connect and
subscribe); when it cannot be, or it drops (the exchange closes it, the keep-alive pings go
unanswered), `watch_orders` raises VenueUnavailable (after returning the updates that came before
the drop) and closes what is left of it; the next call opens a new one. Refused credentials are
VenueRejected. Updates cannot be replayed after a drop: the caller catches up by REST. The buffer
is bounded (`max_buffered_updates`): a caller that stops reading and lets it overflow is told the
same way, VenueUnavailable, and nothing more is buffered until it has been told.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any

from ccxt.async_support.base.ws.cache import ArrayCacheBySymbolById
from trademesh_exchange.errors import first_ccxt_error

from trademesh_execution.venues.base import (
    MalformedResponse,
    VenueError,
    VenueRejected,
    VenueUnavailable,
    VenueUpdate,
)
from trademesh_execution.venues.ccxt.errors import Translator, log
from trademesh_execution.venues.ccxt.reports import updates_from_ccxt

_STREAM_CACHE = 1000  # orders (and trades) ccxt keeps of the stream: its default


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _quiet_rejections(client: Any) -> None:
    """Mark the failures ccxt gives a connection's waiters as seen. When a connection fails,
    ccxt fails every waiter on it, its own bookkeeping ones too (which nobody awaits: asyncio
    would log each as an error that was never retrieved); the ones awaited still raise."""
    reject = client.reject

    def rejecting(result: Any, message_hash: Any = None) -> Any:
        futures = client.futures or {}
        hashes = list(futures) if message_hash is None else [message_hash]
        for name in hashes:
            future = futures.get(name)
            if isinstance(future, asyncio.Future):
                future.add_done_callback(_retrieved)
        return reject(result, message_hash)

    client.reject = rejecting


class _Recorded(ArrayCacheBySymbolById):  # type: ignore[misc]  # ccxt is untyped
    """ccxt's cache of the stream's orders (or trades), which also hands every record appended
    to it to `seen`: ccxt keeps one entry per order and updates it in place, so the cache alone
    cannot tell two updates of an order apart once the second has come.

    `feeless`: the cached orders keep no fee. ccxt (Binance) sums each execution's fee into the
    cached order, rounding the sum to the fee currency's precision, and a currency missing from
    the loaded ones makes it fail the whole message, order update included; the stream's reports
    carry no order fee anyway (see `updates_from_ccxt`), the executions carry theirs."""

    def __init__(self, max_size: int, seen: Callable[[Any], None], *, feeless: bool) -> None:
        super().__init__(max_size)
        self._seen = seen
        self._feeless = feeless

    def append(self, item: Any) -> None:
        super().append(item)
        if self._feeless and isinstance(item, dict):
            cached = self.hashmap.get(item.get("symbol"), {}).get(item.get("id"))
            if isinstance(cached, dict):
                cached["fee"], cached["fees"] = None, []
        self._seen(item)


class OrderStream:
    """The account's order updates on `exchange`'s private stream (a ccxt.pro exchange object
    whose handlers it wraps; see the module docstring). `open_timeout_s` bounds the opening,
    `max_buffered` the updates kept until asked for; `clock` dates updates the venue gives no
    time for. The venue closes the exchange, then `close` waits for what the stream dropped."""

    def __init__(
        self,
        exchange: Any,
        *,
        venue: str,
        translator: Translator,
        clock: Callable[[], datetime],
        open_timeout_s: float,
        max_buffered: int,
    ) -> None:
        self.venue = venue
        self.closed = False  # the venue is closed: no call waits on the stream any more
        self._exchange = exchange
        self._translator = translator
        self._clock = clock
        self._open_timeout_s = open_timeout_s
        self._max_buffered = max_buffered
        self._updates: list[VenueUpdate] = []  # taken in, not yet returned
        self._lock = asyncio.Lock()  # one waiter on the stream at a time
        self._open = False  # subscribed: the exchange answered on the current connection
        self._lost: str | None = None  # why the stream lost updates, until told
        self._heard = asyncio.Event()  # the current connection delivered a message
        self._changed = asyncio.Event()  # updates were taken in, or the stream was lost
        self._message: tuple[list[Any], list[Any]] | None = None  # records of the message
        self._closing: set[asyncio.Future[Any]] = set()  # closes of dropped connections
        self._quieted: weakref.WeakSet[Any] = weakref.WeakSet()  # their rejections quieted
        self._hook()

    async def watch(self) -> list[VenueUpdate]:
        """The updates that came since the last call, or the next ones to come (see the module
        docstring)."""
        async with self._lock:
            while True:
                if self.closed:
                    raise VenueUnavailable("the venue is closed")
                if self._updates:
                    taken, self._updates = self._updates, []
                    return taken
                if self._lost is not None:
                    reason = self._lost
                    await self._reset()
                    log.warning("order stream lost", extra={"venue": self.venue, "reason": reason})
                    raise VenueUnavailable(reason)
                try:
                    await self._wait()
                except VenueUnavailable as exc:
                    if not self._updates:
                        raise
                    # Updates came before the stream failed: they go first, the failure next.
                    self._lost = str(exc)

    async def close(self) -> None:
        """Wait for the connections of dropped streams still closing (the venue has closed the
        exchange, and with it the current one)."""
        self.closed = True
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    def _hook(self) -> None:
        """Install the recording caches and wrap ccxt's message, close and error handlers (ccxt
        binds them to each connection it opens, so they are set before any is)."""
        ex = self._exchange
        ex.orders = _Recorded(_STREAM_CACHE, self._order_seen, feeless=True)
        ex.myTrades = _Recorded(_STREAM_CACHE, self._trade_seen, feeless=False)
        handle_message, on_close, on_error = ex.handle_message, ex.on_close, ex.on_error
        client_of = ex.client

        def message(client: Any, raw: Any) -> None:
            if not self._current(client):
                return  # a connection the venue dropped, still talking as it closes: not heard
            self._heard.set()
            self._message = ([], [])
            try:
                handle_message(client, raw)
            except Exception as exc:  # a message ccxt choked on: left out, never raised into ccxt
                self._skip_message(raw, exc)
            finally:
                orders, trades = self._message
                self._message = None
            self._take_in(orders, trades)

        def closed(client: Any, code: Any) -> None:
            # ccxt forgets the connection of the url, whichever it is now: only the current one's
            # close may (a dropped connection reports its close again once its socket is shut,
            # by then the url may have a new connection).
            if self._current(client):
                self._lose(client, f"the order stream was closed by the venue (code {code})")
                on_close(client, code)

        def failed(client: Any, error: Any) -> None:
            self._lose(client, f"the order stream failed ({type(error).__name__}: {error})")
            on_error(client, error)

        def client(url: str) -> Any:
            made = client_of(url)
            if made not in self._quieted:
                self._quieted.add(made)
                _quiet_rejections(made)
            return made

        ex.handle_message, ex.on_close, ex.on_error, ex.client = message, closed, failed, client

    def _current(self, client: Any) -> bool:
        """The connection is the exchange's current one for its url (not one being dropped)."""
        clients = self._exchange.clients or {}
        return clients.get(getattr(client, "url", None)) is client

    def _order_seen(self, order: Any) -> None:
        if self._message is None:
            self._take_in([order], [])  # appended outside a message: an update of its own
        else:
            self._message[0].append(order)

    def _trade_seen(self, trade: Any) -> None:
        if self._message is not None:
            self._message[1].append(trade)

    def _take_in(self, orders: list[Any], trades: list[Any]) -> None:
        """Convert one message's order updates (with their executions) and buffer them; called
        inside ccxt's message handling, so nothing may escape."""
        if not orders or self._lost is not None:
            return  # a lost stream buffers nothing until the caller has been told
        now = self._clock()
        for order in orders:
            order_id = order.get("id") if isinstance(order, dict) else None
            theirs = [t for t in trades if isinstance(t, dict) and t.get("order") == order_id]
            try:
                updates = updates_from_ccxt(order, theirs, now=now)
            except MalformedResponse as exc:
                self._translator.skip("order update", order, exc)
                continue
            except Exception as exc:  # a record no check foresaw: left out as well
                self._translator.skip(
                    "order update", order, MalformedResponse(f"{type(exc).__name__}: {exc}")
                )
                continue
            if len(self._updates) + len(updates) > self._max_buffered:
                self._updates.clear()
                self._lose(
                    None,
                    f"more than {self._max_buffered} order updates were left unread: "
                    "they were dropped",
                )
                return
            self._updates.extend(updates)
            self._changed.set()

    def _lose(self, client: Any, reason: str) -> None:
        """The open stream lost updates (its connection went, or the buffer overflowed): the
        next call says so. A connection being dropped already is not the stream."""
        if client is not None and not (self._open and self._current(client)):
            return
        if self._lost is None:
            self._lost = self._translator.text(reason)
        self._changed.set()

    def _skip_message(self, raw: Any, exc: Exception) -> None:
        self._translator.malformed_records += 1
        log.warning(
            "malformed message on the order stream",
            extra={
                "venue": self.venue,
                "reason": self._translator.text(
                    f"ccxt could not handle it ({type(exc).__name__}: {exc})"
                ),
                "record": self._translator.text(repr(raw))[:300],
            },
        )

    async def _reset(self) -> None:
        """Close what is left of the stream (ccxt's connections and their subscription state):
        the next wait opens a new one. This venue has no other WebSocket connections."""
        self._open = False
        self._lost = None
        self._heard.clear()
        ex = self._exchange
        clients = ex.clients or {}
        dropped = [clients.pop(url) for url in list(clients)]
        for client in dropped:
            connected = getattr(client, "connected", None)
            if isinstance(connected, asyncio.Future) and not connected.done():
                # Still connecting: closing it now closes no socket, so close it once it is
                # connected (what it says until then is not listened to: it is not current).
                connected.add_done_callback(partial(self._close_later, client))
        if dropped:
            await asyncio.gather(*(c.close() for c in dropped), return_exceptions=True)

    def _close_later(self, client: Any, _connected: object = None) -> None:
        task = asyncio.ensure_future(client.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _wait(self) -> None:
        """Wait until updates are taken in or the stream is lost (opening it first if it is not
        open); raise the stream's failure as a VenueError, its connections closed."""
        ex = self._exchange
        opening = not self._open
        if opening:
            await self._reset()  # what an earlier, interrupted opening left
            try:
                async with self._translator.translated("watch_orders"):
                    await ex.load_markets()
            except VenueRejected:
                raise
            except VenueError as exc:
                raise VenueUnavailable(str(exc)) from None
        self._changed.clear()
        watching = asyncio.ensure_future(ex.watch_orders())
        changed = asyncio.ensure_future(self._changed.wait())
        heard = asyncio.ensure_future(self._heard.wait())
        try:
            if opening:
                done, _ = await asyncio.wait(
                    {watching, changed, heard},
                    timeout=self._open_timeout_s,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if not done:
                    raise VenueUnavailable(
                        f"the order stream on {self.venue} did not open within "
                        f"{self._open_timeout_s:g}s"
                    )
                if not watching.done():
                    self._open = True  # the venue answered: open, or about to refuse
                    log.info("order stream connected", extra={"venue": self.venue})
            if not (watching.done() or changed.done()):
                await asyncio.wait({watching, changed}, return_when=asyncio.FIRST_COMPLETED)
            if watching.cancelled():  # ccxt cancels its waiters when its connection is closed
                raise VenueUnavailable(f"the order stream on {self.venue} was closed")
            if watching.done() and watching.exception() is not None:
                raise self._error(watching.exception())
        except VenueError as error:
            await self._reset()
            log.info(
                "order stream failed",
                extra={"venue": self.venue, "error": type(error).__name__},
            )
            raise error from None
        finally:
            for task in (watching, changed, heard):
                if not task.done():
                    task.cancel()

    def _error(self, exc: BaseException) -> VenueError:
        """The VenueError of a failure of ccxt's watch_orders: VenueRejected for a refusal (bad
        credentials), VenueUnavailable for anything else. ccxt's own bookkeeping can fail while
        it handles the exchange's refusal; the refusal is what happened, so the first ccxt error
        in the chain is the one translated."""
        error = self._translator.error(first_ccxt_error(exc))
        if isinstance(error, VenueRejected):
            return error
        return VenueUnavailable(str(error))
