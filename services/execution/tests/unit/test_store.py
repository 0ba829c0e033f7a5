"""What placing a batch of orders writes (OrderWrites), gathered in memory before its one statement."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D
from uuid import UUID

import pytest
from trademesh_events.ids import AccountId, UserId
from trademesh_events.orders import OrderStatus, OrderType
from trademesh_trading.fills import Fill

from trademesh_execution.engine import (
    OrderView,
    Position,
    advance,
    book,
    fill_event,
    fill_order,
)
from trademesh_execution.store import OrderWrites

pytestmark = pytest.mark.unit

T = datetime(2026, 3, 2, tzinfo=UTC)
ACCOUNT = AccountId(UUID(int=1))


def pending(client_order_id: str, side: str = "buy", quantity: str = "2") -> OrderView:
    return OrderView(
        client_order_id=client_order_id,
        account_id=ACCOUNT,
        user_id=UserId(UUID(int=2)),
        instrument_id="test:X/USD",
        side=side,  # type: ignore[arg-type]
        order_type=OrderType.MARKET,
        quantity=D(quantity),
        limit_price=None,
        stop_price=None,
        status=OrderStatus.PENDING,
        created_at=T,
    )


def test_an_order_saved_twice_keeps_its_last_state_its_reason_and_each_transition() -> None:
    writes = OrderWrites()
    assert not writes
    order = pending("a")
    submitted, _ = advance(order, OrderStatus.SUBMITTED, T)
    accepted, _ = advance(submitted, OrderStatus.ACCEPTED, T)
    writes.save(submitted, order.status, "why")
    writes.save(accepted, submitted.status)
    half = fill_order(accepted, Fill("a", "buy", D(1), D(100), D("0.1")))
    writes.save(half, accepted.status)
    writes.save(half, half.status)  # another partial fill is a transition of its own
    assert writes
    assert writes.orders == {"a": (half, "why")}
    assert writes.notes == [
        ("a", OrderStatus.SUBMITTED, "why"),
        ("a", OrderStatus.ACCEPTED, None),
        ("a", OrderStatus.PARTIALLY_FILLED, None),
        ("a", OrderStatus.PARTIALLY_FILLED, None),
    ]


def test_fills_move_the_position_and_sum_the_accounts_cash_moves() -> None:
    writes = OrderWrites()
    held = Position(ACCOUNT, "test:X/USD")
    for client_order_id, side, qty, price, fee in (
        ("b", "buy", "2", "100", "0.2"),
        ("s", "sell", "1", "110", "0.11"),
    ):
        order, _ = advance(pending(client_order_id, side, qty), OrderStatus.SUBMITTED, T)
        fill = Fill(client_order_id, side, D(qty), D(price), D(fee))  # type: ignore[arg-type]
        event = fill_event(order, fill, T, f"{client_order_id}-1", "USD", liquidity="taker")
        held = book(held, event)
        writes.book(event, held)
    assert [f.trade_id for f in writes.fills] == ["b-1", "s-1"]
    assert writes.positions == {(ACCOUNT, "test:X/USD"): held}
    assert held.quantity == 1
    assert writes.cash == {ACCOUNT: -(2 * D(100)) - D("0.2") + D(110) - D("0.11")}
