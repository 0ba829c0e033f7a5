"""Sample events and Kafka reading helpers shared by the test suites.

`build_sample(cls, **overrides)` builds a valid event of any type in the topic registry;
`sample_for_topic(topic, key)` one for a topic, keyed as asked (what generated services' tests
publish to their input topics). A registry event type without a builder here makes the coverage
test in libs/events/tests/test_roundtrip.py fail.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError
from trademesh_events import audit, auth, bots, marketdata, orders, risk
from trademesh_events.base import Event
from trademesh_events.marketdata import Bar, Tick
from trademesh_events.topics import TopicSpec, get_topic

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
ACCOUNT = UUID("0190a1b2-0000-7000-8000-000000000001")
USER = UUID("0190a1b2-0000-7000-8000-000000000002")
BOT = UUID("0190a1b2-0000-7000-8000-000000000003")
ADMIN = UUID("0190a1b2-0000-7000-8000-000000000004")
APPROVAL = UUID("0190a1b2-0000-7000-8000-000000000005")
INSTRUMENT = "binance:BTC/USDT"
CLIENT_ORDER_ID = "tm-0123456789abcdef0123456789abc"


def _submit_order(**kw: Any) -> dict[str, Any]:
    return {
        "account_id": ACCOUNT,
        "user_id": USER,
        "client_order_id": CLIENT_ORDER_ID,
        "instrument_id": INSTRUMENT,
        "side": "buy",
        "order_type": orders.OrderType.LIMIT,
        "quantity": Decimal("0.1"),
        "limit_price": Decimal("12345678.123456789"),
        "bot_id": BOT,
        "source": "bot",
        "created_at": T0,
    } | kw


def _order_event(**kw: Any) -> dict[str, Any]:
    return {
        "account_id": ACCOUNT,
        "user_id": USER,
        "client_order_id": CLIENT_ORDER_ID,
        "instrument_id": INSTRUMENT,
        "venue_order_id": "venue-42",
        "ts": T0,
    } | kw


_BUILDERS: dict[type[Event], Callable[[], dict[str, Any]]] = {
    marketdata.Tick: lambda: {
        "instrument_id": INSTRUMENT,
        "ts": T0,
        "price": Decimal("64000.12345678"),
        "size": Decimal("0.00000001"),
        "side": "sell",
        "trade_id": "t-1",
    },
    marketdata.Bar: lambda: {
        "instrument_id": INSTRUMENT,
        "timeframe": "1m",
        "open_time": T0,
        "close_time": T0 + timedelta(minutes=1),
        "open": Decimal("100.1"),
        "high": Decimal("101.5"),
        "low": Decimal("99.9"),
        "close": Decimal("100.7"),
        "volume": Decimal("12345678.123456789"),
        "trades": 42,
        "final": False,
    },
    orders.SubmitOrder: _submit_order,
    orders.CancelOrder: lambda: {
        "account_id": ACCOUNT,
        "user_id": USER,
        "client_order_id": CLIENT_ORDER_ID,
        "created_at": T0,
    },
    orders.OrderApproved: lambda: {
        "account_id": ACCOUNT,
        "order": orders.SubmitOrder(**_submit_order()),
        "approved_at": T0 + timedelta(milliseconds=5),
    },
    orders.CancelAllOrders: lambda: {
        "account_id": ACCOUNT,
        "reason": "kill switch",
        "created_at": T0,
    },
    orders.OrderDenied: lambda: {
        "account_id": ACCOUNT,
        "user_id": USER,
        "client_order_id": CLIENT_ORDER_ID,
        "instrument_id": INSTRUMENT,
        "reason": orders.DenialReason.MAX_POSITION,
        "message": "position would exceed 10 BTC",
        "denied_at": T0,
    },
    orders.OrderSubmitted: _order_event,
    orders.OrderAccepted: _order_event,
    orders.OrderRejected: lambda: _order_event(reason="insufficient balance"),
    orders.OrderCanceled: lambda: _order_event(reason="user request"),
    orders.OrderExpired: lambda: _order_event(venue_order_id=None),
    orders.OrderStatusUnknown: lambda: _order_event(reason="send timed out"),
    orders.AccountChanged: lambda: {
        "account_id": ACCOUNT,
        "user_id": USER,
        "venue": "paper",
        "cash": Decimal("10000.5"),
        "margin_mode": "margin",
        "max_leverage": Decimal("2.5"),
        "allow_short": True,
        "fee_bps": Decimal("7.5"),
        "changed_at": T0,
    },
    orders.DiscrepancyDetected: lambda: {
        "account_id": ACCOUNT,
        "user_id": USER,
        "venue": "binance",
        "kind": orders.DiscrepancyKind.MISSING_FILL,
        "client_order_id": CLIENT_ORDER_ID,
        "instrument_id": INSTRUMENT,
        "venue_ref": "3601000001",
        "detail": "a fill of 0.1 at 64000.5 was not in our books",
        "resolution": "applied",
        "detected_at": T0,
    },
    orders.OrderFilled: lambda: _order_event(
        trade_id="fill-1",
        side="buy",
        last_qty=Decimal("0.1"),
        last_price=Decimal("64000.5"),
        cum_qty=Decimal("0.3"),
        leaves_qty=Decimal("0"),
        fee=Decimal("-0.00012345"),
        fee_currency="USDT",
        liquidity="maker",
    ),
    bots.BotStateChanged: lambda: {
        "bot_id": BOT,
        "user_id": USER,
        "state": bots.BotState.RUNNING,
        "reason": "started by user",
        "ts": T0,
    },
    bots.ApprovalRequested: lambda: {
        "approval_id": APPROVAL,
        "bot_id": BOT,
        "user_id": USER,
        "account_id": ACCOUNT,
        "client_order_id": CLIENT_ORDER_ID,
        "instrument_id": INSTRUMENT,
        "side": "buy",
        "order_type": orders.OrderType.LIMIT,
        "quantity": Decimal("0.25"),
        "limit_price": Decimal("64000.5"),
        "requested_at": T0,
        "expires_at": T0 + timedelta(seconds=60),
    },
    bots.ApprovalDecided: lambda: {
        "approval_id": APPROVAL,
        "bot_id": BOT,
        "user_id": USER,
        "client_order_id": CLIENT_ORDER_ID,
        "decision": bots.ApprovalDecision.APPROVED,
        "decided_by": USER,
        "channel": "api",
        "decided_at": T0 + timedelta(seconds=5),
    },
    auth.UserRegistered: lambda: {
        "user_id": USER,
        "ts": T0,
        "email": auth.mask_email("alice@example.com"),
        "role": auth.Role.TRADER,
    },
    auth.UserLoggedIn: lambda: {"user_id": USER, "ts": T0, "method": "password"},
    auth.LoginFailed: lambda: {
        "user_id": None,
        "email": auth.mask_email("mallory@example.com"),
        "reason": auth.LoginFailure.UNKNOWN_USER,
        "ts": T0,
    },
    auth.RoleChanged: lambda: {
        "user_id": USER,
        "ts": T0,
        "old_role": auth.Role.VIEWER,
        "new_role": auth.Role.TRADER,
        "changed_by": ADMIN,
    },
    auth.UserDisabled: lambda: {"user_id": USER, "ts": T0, "disabled_by": ADMIN},
    auth.ApiKeyCreated: lambda: {
        "user_id": USER,
        "ts": T0,
        "key_id": "key_0001",
        "scopes": ("read", "trade"),
        "expires_at": T0 + timedelta(days=90),
    },
    auth.ApiKeyRevoked: lambda: {"user_id": USER, "ts": T0, "key_id": "key_0001"},
    auth.SessionsRevoked: lambda: {
        "user_id": USER,
        "ts": T0,
        "session_version": 2,
        "reason": "disabled",
    },
    audit.ChainCheckpointed: lambda: {
        "chain": "audit",
        "seq": 42,
        "link": "ab" * 32,
        "key_id": "20260105-0a1b2c3d",
        "signature": "cd" * 32,
        "ts": T0,
    },
    risk.TradingStateChanged: lambda: {
        "account_id": ACCOUNT,
        "old_state": risk.TradingState.HALTED,
        "new_state": risk.TradingState.REDUCING,
        "reason": risk.TradingStateReason.KILL_SWITCH_RELEASED,
        "message": "back after the drill",
        "changed_by": USER,
        "changed_at": T0,
    },
}

SAMPLED_TYPES: frozenset[type[Event]] = frozenset(_BUILDERS)


def sample_fields(cls: type[Event], **overrides: Any) -> dict[str, Any]:
    """The keyword arguments of a valid `cls`, with `overrides` applied."""
    return _BUILDERS[cls]() | overrides


def build_sample(cls: type[Event], **overrides: Any) -> Event:
    return cls(**sample_fields(cls, **overrides))


def make_tick(n: int = 0, instrument: str = "binance:BTC/USDT") -> Tick:
    """A valid Tick whose price and trade id follow `n`."""
    return Tick(
        instrument_id=instrument,
        ts=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        price=Decimal("43000.10") + n,
        size=Decimal("0.005"),
        side="buy",
        trade_id=f"t{n}",
    )


def account_changed(
    account_id: UUID,
    user_id: UUID,
    cash: Decimal | str,
    *,
    venue: str = "paper",
    fee_bps: Decimal | str = Decimal(0),
    currency: str | None = None,
    holdings: dict[str, Decimal] | None = None,
) -> orders.AccountChanged:
    """Execution's AccountChanged of a cash account (no borrowing, no shorts) with `cash`: a
    paper account's, or with `currency` and `holdings` an exchange account's venue balances."""
    return orders.AccountChanged(
        account_id=account_id,
        user_id=user_id,
        venue=venue,
        cash=Decimal(cash),
        margin_mode="cash",
        max_leverage=Decimal(1),
        allow_short=False,
        fee_bps=Decimal(fee_bps),
        changed_at=datetime.now(UTC),
        currency=currency,
        holdings=holdings,
    )


def price_bar(instrument_id: str, close: Decimal | str, *, day: datetime | None = None) -> Bar:
    """A final daily bar that is only a price: open, high, low and close all `close`, volume 1,
    on 2026-01-01 unless `day` is given (what a service's last price of the instrument is)."""
    opens = day or datetime(2026, 1, 1, tzinfo=UTC)
    value = Decimal(close)
    return Bar(
        instrument_id=instrument_id,
        timeframe="1d",
        open_time=opens,
        close_time=opens + timedelta(days=1),
        open=value,
        high=value,
        low=value,
        close=value,
        volume=Decimal(1),
    )


async def read_all(bootstrap: str, topic: str, *, expect: int, timeout: float = 20.0) -> list[Any]:
    """Every record of `topic` from the beginning, waiting (up to `timeout`) for `expect` of them."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        assigned = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        # Read up to the end of every partition as it is now (an empty poll alone does not mean
        # the end: a partition may not have been fetched yet), and on while fewer than expected.
        ends = await consumer.end_offsets(assigned)
        records: list[Any] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for part in batch.values():
                records.extend(part)
            if len(records) >= expect and not batch:
                positions = [await consumer.position(tp) for tp in assigned]
                if all(pos >= ends[tp] for pos, tp in zip(positions, assigned, strict=True)):
                    break
        return records
    finally:
        await consumer.stop()


def sample_for_topic(topic: str, key: str | None = None, **overrides: Any) -> Event:
    """A valid event of the first type `topic` carries, its partition-key field set to `key`."""
    spec: TopicSpec[Event] = get_topic(topic)
    cls = spec.events[0]
    fields = _BUILDERS[cls]()
    if key is not None:
        fields[spec.key_field] = key
        if cls is orders.OrderApproved:  # the approved order must belong to the same account
            fields["order"] = orders.SubmitOrder(**_submit_order(account_id=key))
    return cls(**(fields | overrides))


def unique_key(topic: str) -> str:
    """A fresh partition key of the kind `topic` is keyed by (an instrument id or a UUID)."""
    spec = get_topic(topic)
    if spec.key_field == "instrument_id":
        return f"test:{uuid.uuid4().hex[:12].upper()}/USDT"
    return str(uuid.uuid4())


def decoded(topic: str, records: Iterable[Any]) -> list[Any]:
    """The events of `records` (read from `topic`), skipping records that are not valid events
    of it: the test session's broker is shared, and DLQ tests publish malformed messages on the
    input topics on purpose."""
    spec = get_topic(topic)
    out: list[Any] = []
    for record in records:
        try:
            out.append(spec.decode(record.value))
        except (ValidationError, TypeError):
            continue
    return out


async def committed_offset(
    bootstrap: str, group: str, topic: str, partition: int = 0
) -> int | None:
    """The offset `group` committed on a partition of `topic` (None: nothing committed yet)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        offset: int | None = await consumer.committed(TopicPartition(topic, partition))
        return offset
    finally:
        await consumer.stop()
