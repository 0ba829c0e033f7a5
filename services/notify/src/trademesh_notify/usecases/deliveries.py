"""Delivering events to their owners' channels: enqueued in the consumer's transaction, sent by
a loop with retries (exponential back-off, full jitter) until sent or dead.

At least once: a delivery is written with the consumer's inbox entry (the event is never lost
between the bus and the table), and kept pending until a receiver answered 2xx; a crash after
the POST and before the row is marked sends it again, with the same Trademesh-Delivery-Id for
the receiver to drop.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta

import asyncpg
from trademesh_events.base import Event
from trademesh_events.envelope import Envelope
from trademesh_events.orders import AccountChanged
from trademesh_keystore import Keystore, KeystoreError, SealedSecret
from trademesh_observability.logging import get_logger
from trademesh_observability.metrics import NOTIFY_UNOWNED

from trademesh_notify.engine import ChannelKind, RetryPolicy, next_attempt, notice_of
from trademesh_notify.links import ApprovalLinks
from trademesh_notify.store import DeliveryStore, Due
from trademesh_notify.transports import SendError, Transport
from trademesh_notify.usecases.channels import secret_aad
from trademesh_notify.webhook.sender import WebhookError

log = get_logger("trademesh_notify.deliveries")


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
        self._wake = asyncio.Event()
        self.service = service
        for outcome in ("held", "resolved", "conflict"):  # from 0: a first one is an increase
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
        written = await self.store.enqueue(conn, notice, now)
        if written:
            self._wake.set()  # early: the loop reads only committed rows, and polls anyway
        return written

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
        if written:
            self._wake.set()
        return written

    async def run(self, stop: asyncio.Event) -> None:
        """Send what is due, then wait for a poll interval (or a wake-up), until `stop`."""
        while not stop.is_set():
            try:
                sent = await self.send_due()
            except Exception:
                log.warning("delivery round failed; the next one tries again", exc_info=True)
                sent = 0
            if sent:
                continue
            self._wake.clear()
            waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
            try:
                await asyncio.wait(
                    waits, timeout=self.poll_interval_s, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                for waiting in waits:
                    waiting.cancel()

    async def send_due(self) -> int:
        """One round: claim what is due, send each concurrently; how many were claimed."""
        now = self.clock()
        due = await self.store.claim_due(now, now + self.lease, self.batch)
        await asyncio.gather(*(self._send(one) for one in due))
        return len(due)

    async def _send(self, due: Due) -> None:
        try:
            if self.links is not None:  # made now, never stored: a link is a secret
                due = replace(due, body=self.links.add_to(due.event_type, due.body))
            await self.transports[due.kind].send(due, self._secret(due))
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
            return
        await self.store.sent(due, self.clock())

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
