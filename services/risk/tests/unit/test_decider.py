"""The decider's pure parts: what a fill moves of an account's cash and venue holdings."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D
from typing import Any
from uuid import UUID

import pytest
from trademesh_events.orders import OrderFilled

from trademesh_risk.usecases.decider import _moves

pytestmark = pytest.mark.unit


def fill(**fields: Any) -> OrderFilled:
    values: dict[str, Any] = {
        "account_id": UUID(int=1),
        "user_id": UUID(int=2),
        "client_order_id": "o-1",
        "instrument_id": "binance:BTC/USDT",
        "ts": datetime(2024, 6, 1, tzinfo=UTC),
        "trade_id": "t-1",
        "side": "buy",
        "last_qty": D("0.5"),
        "last_price": D(60000),
        "cum_qty": D("0.5"),
        "leaves_qty": D(0),
        "fee": D(30),
        "fee_currency": "USDT",
        "liquidity": "taker",
    }
    return OrderFilled(**(values | fields))


def test_a_paper_accounts_fill_moves_its_cash_by_notional_and_fee_in_the_quote() -> None:
    assert _moves(fill(), None) == (D(-30030), None)
    # A fee charged in BNB is booked at its value in the quote.
    assert _moves(fill(fee=D("0.05"), fee_currency="BNB", quote_fee=D(30)), None) == (
        D(-30030),
        None,
    )


def test_an_exchange_accounts_fill_moves_the_venues_currencies() -> None:
    assert _moves(fill(), "USDT") == (D(-30030), {"BTC": D("0.5")})
    sold = fill(side="sell", fee=D("0.05"), fee_currency="BNB", quote_fee=D(30))
    assert _moves(sold, "USDT") == (D(30000), {"BTC": D("-0.5"), "BNB": D("-0.05")})
    # Quoted in another currency than the account's: its cash does not move, the quote does.
    other = fill(
        instrument_id="binance:ETH/BTC", last_qty=D(2), cum_qty=D(2), last_price=D("0.05"), fee=D(0)
    )
    assert _moves(other, "USDT") == (D(0), {"ETH": D(2), "BTC": D("-0.1")})
