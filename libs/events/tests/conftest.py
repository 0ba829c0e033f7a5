"""Shared sample events: one valid instance per event type of the topic registry.

`make_sample(cls, **overrides)` builds a valid event of `cls`; a registry event type without a
builder here makes the coverage test in test_roundtrip.py fail.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from trademesh_events import auth, bots, marketdata, orders
from trademesh_events.base import Event

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
ACCOUNT = UUID("0190a1b2-0000-7000-8000-000000000001")
USER = UUID("0190a1b2-0000-7000-8000-000000000002")
BOT = UUID("0190a1b2-0000-7000-8000-000000000003")
ADMIN = UUID("0190a1b2-0000-7000-8000-000000000004")
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
}

SAMPLED_TYPES: frozenset[type[Event]] = frozenset(_BUILDERS)


def sample_fields(cls: type[Event], **overrides: Any) -> dict[str, Any]:
    """The keyword arguments of a valid `cls`, with `overrides` applied."""
    return _BUILDERS[cls]() | overrides


def build_sample(cls: type[Event], **overrides: Any) -> Event:
    return cls(**sample_fields(cls, **overrides))


@pytest.fixture
def make_sample() -> Callable[..., Event]:
    """`make_sample(cls, **overrides)`: a valid event of `cls`."""
    return build_sample


@pytest.fixture
def sample_kwargs() -> Callable[..., dict[str, Any]]:
    """`sample_kwargs(cls, **overrides)`: the fields of a valid event of `cls`."""
    return sample_fields


@pytest.fixture
def sampled_types() -> frozenset[type[Event]]:
    return SAMPLED_TYPES
