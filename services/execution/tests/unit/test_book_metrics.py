"""Equity and PnL per venue, as the trading dashboard's gauges show them, from the books' rows."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest

from trademesh_execution.book_metrics import venue_totals

pytestmark = pytest.mark.unit


def account(account_id: str, venue: str, cash: str) -> dict[str, Any]:
    return {"account_id": account_id, "venue": venue, "cash": D(cash)}


def position(
    account_id: str, instrument: str, qty: str, avg: str, realised: str, last: str | None
) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "instrument_id": instrument,
        "position": D(qty),
        "avg_price": D(avg),
        "realised": D(realised),
        "last_price": None if last is None else D(last),
    }


def test_paper_is_there_with_zeros_before_any_account() -> None:
    totals = venue_totals([], [])
    assert list(totals) == ["paper"]
    assert (totals["paper"].equity, totals["paper"].realised, totals["paper"].unrealised) == (
        0,
        0,
        0,
    )


def test_totals_add_up_the_accounts_of_each_venue() -> None:
    totals = venue_totals(
        [
            account("a", "paper", "1000"),
            account("b", "paper", "500"),
            account("c", "binance", "10"),
        ],
        [
            position("a", "X/USD", "2", "100", "-1.5", "110"),  # long, up 20, fees paid
            position("a", "Y/USD", "0", "0", "30", "7"),  # closed: realised only
            position("b", "X/USD", "-1", "120", "0", "110"),  # short, up 10
            position("c", "BTC/USDT", "0.5", "20000", "5", "30000"),
        ],
    )
    paper = totals["paper"]
    assert paper.equity == D("1000") + 2 * D("110") + D("500") - D("110")
    assert paper.realised == D("28.5")
    assert paper.unrealised == D("20") + D("10")
    assert (totals["binance"].equity, totals["binance"].unrealised) == (D("15010"), D("5000"))


def test_an_account_with_an_unpriced_position_is_left_out_of_equity_only() -> None:
    totals = venue_totals(
        [account("a", "paper", "1000"), account("b", "paper", "200")],
        [
            position("a", "NEW/USD", "3", "10", "-0.5", None),
            position("b", "X/USD", "1", "100", "0", "101"),
        ],
    )
    assert totals["paper"].equity == D("200") + D("101")  # no honest value for a
    assert totals["paper"].realised == D("-0.5")
    assert totals["paper"].unrealised == D("1")
