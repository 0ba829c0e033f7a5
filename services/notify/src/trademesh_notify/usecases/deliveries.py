"""Delivering events to their owners' channels: enqueued in the consumer's transaction, sent by
a loop with retries (exponential back-off, full jitter) until sent or dead.

At least once: a delivery is written with the consumer's inbox entry (the event is never lost
between the bus and the table), and kept pending until a receiver answered 2xx; a crash after
the POST and before the row is marked sends it again, with the same Trademesh-Delivery-Id for
the receiver to drop.

The loop sleeps until woken: by the commit of new deliveries (LISTEN/NOTIFY, wake.py), or when
the earliest pending one comes due (a retry, a delivery put off by its channel's rate limit), or
after `poll_interval_s` at most, the safety net.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from enum import StrEnum
from uuid import UUID

import asyncpg
from trademesh_events.base import Event
from trademesh_events.envelope import Envelope
from trademesh_events.orders import AccountChanged
from trademesh_keystore import Keystore, KeystoreError, SealedSecret
from trademesh_observability import metrics
from trademesh_observability.logging import get_logger
from trademesh_observability.metrics import NOTIFY_UNOWNED

from trademesh_notify.engine import ChannelKind, RetryPolicy, next_attempt, notice_of
from trademesh_notify.links import ApprovalLinks
from trademesh_notify.ratelimit import ChannelLimits
from trademesh_notify.store import DeliveryRow, DeliveryStatus, DeliveryStore, Due
from trademesh_notify.transports import SendError, Transport
from trademesh_notify.usecases.channels import secret_aad
from trademesh_notify.wake import CommitListener
from trademesh_notify.webhook.sender import WebhookError

log = get_logger("trademesh_notify.deliveries")

# While the listening connection is down, the loop polls this often at most.
_UNHEARD_POLL_S = 1.0


class Outcome(StrEnum):
    """How one delivery's turn ended (the `outcome` label of the deliveries metric)."""

    SENT = "sent"
    FAILED = "failed"  # another attempt is scheduled
    DEAD = "dead"
    DEFERRED = "deferred"  # over its channel's rate limit: put off, not an attempt


class Deliveries:
    """Enqueue an event's deliveries (consumer side) and send what is due (the loop)."""

    def __init__(
        self,
        store: DeliveryStore,
        keystore: Keystore | None,
        transports: Mapping[ChannelKind, Transport],
        policy: RetryPolicy,
        clock: Callable[[], datetime],
        *,
        poll_interval_s: float,
        batch: int,
        lease: timedelta,
        jitter: Callable[[], float] = random.random,
        service: str = "notify",
        links: ApprovalLinks | None = None,
        limits: ChannelLimits | None = None,
        listener: CommitListener | None = None,
    ) -> None:
        self.store = store
        self.keystore = keystore
        self.transports = transports
        self.policy = policy
        self.clock = clock
        self.poll_interval_s = poll_interval_s
        self.batch = batch
        self.lease = lease
        self.jitter = jitter
        self.links = links
        self.limits = limits
        self.listener = listener
        self._wake = asyncio.Event()
        self._in_flight: set[asyncio.Task[Outcome]] = set()
        self.service = service
        for outcome in ("held", "resolved", "conflict", "dropped"):  # from 0: a first is a rise
            NOTIFY_UNOWNED.labels(service=service, outcome=outcome)

    async def enqueue(self, event: Event, envelope: Envelope, conn: asyncpg.Connection) -> int:
        """The deliveries of `event` to its owner's channels, in the consumer's transaction; 0
        for an event of no kind users subscribe to. An event that names only an account goes to
        the account's owner as AccountChanged said; before notify has learnt that owner it is
        held, sent to no one, and enqueued when the owner is learnt (`learn_owner`)."""
        notice = notice_of(event, envelope)
        if notice is None:
            return 0
        now = self.clock()
        if notice.owner is None and notice.account_id is not None:
            owner = await self.store.owner_of(conn, notice.account_id)
            if owner is None:
                await self.store.hold(conn, notice, now)
                NOTIFY_UNOWNED.labels(service=self.service, outcome="held").inc()
                log.info(
                    "an account's event waits for the account's owner",
                    event_id=str(notice.event_id),
                    account_id=str(notice.account_id),
                    kind=notice.kind.value,
                )
                return 0
            notice = notice.for_owner(owner)
        # The store NOTIFYs the loops (every replica's) in the same statement: heard at commit.
        return await self.store.enqueue(conn, notice, now)

    def wake(self) -> None:
        """Look for deliveries due now (new ones committed, a held one released)."""
        self._wake.set()

    async def learn_owner(self, account: AccountChanged, conn: asyncpg.Connection) -> int:
        """Keep the account's owner (in the consumer's transaction) and enqueue for them what
        was held for the account; the number of deliveries written. An AccountChanged that
        names another owner than the one kept changes nothing: an account never changes hands,
        and a user must never get another user's event."""
        now = self.clock()
        owner = await self.store.learn_owner(conn, account.account_id, account.user_id, now)
        if owner != account.user_id:
            NOTIFY_UNOWNED.labels(service=self.service, outcome="conflict").inc()
            log.warning(
                "an AccountChanged names another owner than the one kept; ignored",
                account_id=str(account.account_id),
            )
            return 0
        written = 0
        for held in await self.store.release_held(conn, account.account_id):
            written += await self.store.enqueue(conn, held.for_owner(owner), now)
            NOTIFY_UNOWNED.labels(service=self.service, outcome="resolved").inc()
        return written  # the store NOTIFYed the loops

    async def run(self, stop: asyncio.Event) -> None:
        """Send what is due, until `stop`. Up to `batch` deliveries are in flight at once, and
        the loop claims more as soon as it is woken: by the commit of new deliveries (with a
        listener), a delivery done (a slot free, or a retry or deferral to schedule), the
        earliest pending one's time, or the poll interval. A slow receiver holds its own
        deliveries only, not a round of everyone's."""
        listening = None
        if self.listener is not None:
            listening = asyncio.create_task(self.listener.run(stop, self.wake))
        try:
            while not stop.is_set():
                # Cleared before claiming: what commits meanwhile wakes the next turn.
                self._wake.clear()
                try:
                    room = self.batch - len(self._in_flight)
                    if room <= 0:
                        timeout = self._poll_s()  # a delivery done wakes the loop
                    elif await self._start(room) == room:
                        continue  # more may be due
                    else:
                        timeout = await self._until_next_due()
                except Exception:
                    log.warning("delivery round failed; the next one tries again", exc_info=True)
                    timeout = self._poll_s()
                if timeout > 0:
                    await self._sleep(stop, timeout)
        finally:
            if listening is not None:
                listening.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listening
            # Let the sends under way finish and be marked (else they are sent again later).
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    async def _start(self, room: int) -> int:
        """Claim up to `room` due deliveries and start sending each; how many were claimed."""
        now = self.clock()
        claimed = await self.store.claim_due(now, now + self.lease, room)
        for due in claimed:
            task = asyncio.create_task(self._deliver(due))
            self._in_flight.add(task)
            task.add_done_callback(self._done)
        return len(claimed)

    def _done(self, task: asyncio.Task[Outcome]) -> None:
        """A delivery's turn ended: wake the loop when a slot came free in a full set, or when
        the delivery is due again later (a retry, a deferral: the loop's sleep may be too long
        for it now)."""
        full = len(self._in_flight) >= self.batch
        self._in_flight.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            log.warning(
                "a delivery's turn failed; it is tried again after its lease", exc_info=error
            )
        if full or error is not None or task.result() is not Outcome.SENT:
            self._wake.set()

    def _poll_s(self) -> float:
        if self.listener is None or self.listener.listening:
            return self.poll_interval_s
        return min(self.poll_interval_s / 5, _UNHEARD_POLL_S)

    async def _until_next_due(self) -> float:
        """Seconds until the earliest pending delivery is due, at most the poll interval."""
        poll = self._poll_s()
        due = await self.store.next_due()
        if due is None:
            return poll
        return min(poll, max(0.0, (due - self.clock()).total_seconds()))

    async def _sleep(self, stop: asyncio.Event, timeout: float) -> None:
        waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()

    async def send_due(self) -> int:
        """One round: claim what is due, send each concurrently; how many were claimed."""
        now = self.clock()
        due = await self.store.claim_due(now, now + self.lease, self.batch)
        await asyncio.gather(*(self._deliver(one) for one in due))
        return len(due)

    async def _deliver(self, due: Due) -> Outcome:
        """One delivery's turn: put off when its channel is over its rate limit, else sent
        (`_send`); counted in the delivery metrics either way."""
        token = None  # a Telegram channel's bot token, opened once for its limit and its send
        if self.limits is not None:
            if due.kind is ChannelKind.TELEGRAM and self.limits.per_bot:
                with contextlib.suppress(KeystoreError, ValueError):  # _send fails it, counted
                    token = self._secret(due)
            until = await self.limits.admit(due.kind.value, due.channel_id, token)
            if until is not None:
                await self.store.defer(due, until)
                self._count(due, Outcome.DEFERRED)
                return Outcome.DEFERRED
        outcome = await self._send(due, token)
        self._count(due, outcome)
        return outcome

    def _count(self, due: Due, outcome: Outcome) -> None:
        labels = {
            "service": self.service,
            "channel_kind": due.kind.value,
            "event_kind": due.event_kind,
        }
        metrics.NOTIFY_DELIVERIES.labels(**labels, outcome=outcome.value).inc()
        if outcome is Outcome.DEFERRED:
            return
        if due.attempts > 0:
            metrics.NOTIFY_DELIVERY_RETRIES.labels(**labels).inc()
        if outcome is Outcome.SENT and due.event_time is not None:
            latency = (self.clock() - due.event_time).total_seconds()
            metrics.NOTIFY_DELIVERY_LATENCY.labels(**labels).observe(max(0.0, latency))

    async def _send(self, due: Due, secret: str | None = None) -> Outcome:
        try:
            if self.links is not None:  # made now, never stored: a link is a secret
                due = replace(due, body=self.links.add_to(due.event_type, due.body))
            opened = secret if secret is not None else self._secret(due)
            await self.transports[due.kind].send(due, opened)
        except (SendError, WebhookError, KeystoreError, ValueError) as exc:
            attempts = due.attempts + 1
            retry_at = self._retry_at(exc, attempts)
            await self.store.failed(due, str(exc), retry_at)
            log.info(
                "delivery failed" if retry_at else "delivery dead",
                event_id=str(due.event_id),
                channel_id=str(due.channel_id),
                attempts=attempts,
                error=str(exc),
            )
            return Outcome.FAILED if retry_at else Outcome.DEAD
        await self.store.sent(due, self.clock())
        return Outcome.SENT

    def _retry_at(self, exc: Exception, attempts: int) -> datetime | None:
        """When to try again (None: dead): a permanent failure is dead at once, and a receiver's
        `retry_after` is the earliest next attempt."""
        now = self.clock()
        if isinstance(exc, SendError) and exc.permanent:
            return None
        after = exc.retry_after_s if isinstance(exc, SendError) else None
        not_before = None if after is None else now + timedelta(seconds=after)
        return next_attempt(self.policy, attempts, now, self.jitter(), not_before)

    def _secret(self, due: Due) -> str:
        if self.keystore is None:
            raise KeystoreError("no master key configured to open the channel's secret")
        sealed = SealedSecret.from_bytes(due.sealed_secret)
        return self.keystore.open(sealed, aad=secret_aad(due.channel_id)).get_secret_value()

    # ---- the owner's view: a channel's deliveries, a dead one tried again ---------------------

    async def of_channel(
        self,
        channel_id: UUID,
        owner_id: UUID,
        status: DeliveryStatus | None,
        after: tuple[datetime, UUID] | None,
        limit: int,
    ) -> list[DeliveryRow] | None:
        """The owner's channel's deliveries, newest first; None when it is not theirs."""
        return await self.store.page_of_channel(channel_id, owner_id, status, after, limit)

    async def retry(
        self, channel_id: UUID, owner_id: UUID, event_id: UUID
    ) -> DeliveryRow | DeliveryStatus | None:
        """A dead delivery pending again with a fresh set of attempts, due now (see
        DeliveryStore.retry for what else it may answer)."""
        return await self.store.retry(channel_id, owner_id, event_id, self.clock())
