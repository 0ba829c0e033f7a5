"""An exchange account's buying power from its venue's balances, without a network or database:
the event that tells risk, and when a read is due (at most one per interval, the last fill always
followed by one)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from types import SimpleNamespace
from typing import Any
from uuid import UUID

import pytest
from trademesh_db import Database

from trademesh_execution.store import AccountRow
from trademesh_execution.usecases.balances import BalanceRefresher, account_changed
from trademesh_execution.venues import Balance, VenueBalances

pytestmark = pytest.mark.unit

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
ACCOUNT = UUID(int=7)


def exchange_account(**fields: Any) -> AccountRow:
    values: dict[str, Any] = {
        "account_id": ACCOUNT,
        "user_id": UUID(int=8),
        "name": "live",
        "venue": "binance",
        "cash": D(100_000),  # what the account was opened with: not the venue's
        "created_at": NOW,
        "credentials": "{}",
        "currency": "USDT",
    }
    return AccountRow(**(values | fields))


def balances(**totals: tuple[str, str]) -> VenueBalances:
    return VenueBalances(
        currencies={
            code: Balance(free=D(free), used=D(used), total=D(free) + D(used))
            for code, (free, used) in totals.items()
        },
        ts=NOW,
    )


def test_the_event_carries_the_venues_total_of_the_currency_and_the_other_holdings() -> None:
    read = balances(USDT=("860", "140"), BTC=("0.5", "0.002"), ETH=("0", "0"), BNB=("0.1", "0"))
    event = account_changed(exchange_account(), read, now=NOW)
    # Total, not free: risk's reservations already count the platform's pending orders.
    assert (event.cash, event.currency) == (D(1000), "USDT")
    assert event.holdings == {"BNB": D("0.1"), "BTC": D("0.502")}  # none of ETH: left out
    assert (event.venue, event.margin_mode, event.max_leverage, event.allow_short) == (
        "binance",
        "cash",
        D(1),
        False,
    )
    assert event.fee_bps == 0 and event.changed_at == NOW


def test_a_currency_the_venue_does_not_list_is_none_of_it() -> None:
    event = account_changed(exchange_account(currency="USDC"), balances(BTC=("1", "0")), now=NOW)
    assert (event.cash, event.holdings) == (D(0), {"BTC": D(1)})


def test_an_account_without_a_currency_has_no_venue_buying_power() -> None:
    with pytest.raises(ValueError, match="no settlement currency"):
        account_changed(exchange_account(currency=None), balances(), now=NOW)


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_reads_are_at_most_one_per_interval_and_the_last_fill_is_followed_by_one() -> None:
    clock, live = _Clock(), SimpleNamespace(on_fill=None)
    refresher = BalanceRefresher(
        db=Database("postgresql://unused", "execution"),
        store=None,  # type: ignore[arg-type]  # not reached: no read runs here
        outbox=None,  # type: ignore[arg-type]
        live=live,  # type: ignore[arg-type]
        service="execution",
        clock=lambda: NOW,
        interval=timedelta(seconds=5),
        monotonic=clock,
    )
    assert live.on_fill == refresher.fill_booked
    refresher.request(ACCOUNT)
    assert refresher.due_at(ACCOUNT) == 1000.0  # never read: at once
    refresher.request(ACCOUNT)
    assert refresher.due_at(ACCOUNT) == 1000.0  # covered by the read already due

    # A read started at 1001; a fill at 1002 is followed by a read, 5 s after the last.
    refresher._due.clear()
    refresher._last[ACCOUNT] = 1001.0
    clock.now = 1002.0
    refresher.request(ACCOUNT)
    assert refresher.due_at(ACCOUNT) == 1006.0
    refresher._due.clear()
    clock.now = 1010.0
    refresher.request(ACCOUNT)
    assert refresher.due_at(ACCOUNT) == 1010.0  # long after the last: at once


def test_a_fill_asks_for_a_read_only_once_its_transaction_has_committed() -> None:
    clock, live = _Clock(), SimpleNamespace(on_fill=None)
    db = Database("postgresql://unused", "execution")
    refresher = BalanceRefresher(
        db=db,
        store=None,  # type: ignore[arg-type]
        outbox=None,  # type: ignore[arg-type]
        live=live,  # type: ignore[arg-type]
        service="execution",
        clock=lambda: NOW,
        monotonic=clock,
    )
    committed, rolled_back, other = object(), object(), UUID(int=9)
    refresher.fill_booked(committed, ACCOUNT)  # type: ignore[arg-type]
    refresher.fill_booked(rolled_back, other)  # type: ignore[arg-type]
    assert refresher.due_at(ACCOUNT) is None  # not before the commit: its event goes first
    db._tell(rolled_back, committed=False)  # type: ignore[arg-type]
    db._tell(committed, committed=True)  # type: ignore[arg-type]
    assert refresher.due_at(ACCOUNT) == 1000.0
    assert refresher.due_at(other) is None
