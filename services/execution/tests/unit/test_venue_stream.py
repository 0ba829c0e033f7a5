"""The ccxt venue's order stream without a network: reading one update (`updates_from_ccxt`), and
the venue taking in what ccxt parses from Binance executionReports handed straight to its message
handler (a ccxt connection object that never connects): each update once, executions kept apart,
malformed messages left out and counted, a full buffer reported."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal as D
from typing import Any

import pytest
from pydantic import SecretStr
from trademesh_events.orders import OrderStatus

from trademesh_execution.venues import (
    CcxtVenue,
    MalformedResponse,
    StreamUnsupported,
    VenueUnavailable,
    VenueUpdate,
)
from trademesh_execution.venues.ccxt import updates_from_ccxt

pytestmark = pytest.mark.unit

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
T_MS = 1717243200000  # 2024-06-01 12:00:00 UTC
URL = "ws://fake-binance.invalid/ws-api/v3"


def ccxt_order(**fields: Any) -> dict[str, Any]:
    order: dict[str, Any] = {
        "id": "28457002",
        "clientOrderId": "tm-order-1",
        "symbol": "BTC/USDT",
        "status": "open",
        "amount": 0.002,
        "filled": 0.0005,
        "remaining": 0.0015,
        "average": 70000.0,
        "lastUpdateTimestamp": T_MS,
        "fee": {"cost": 0.035, "currency": "USDT"},  # the last execution's: not the order's
        "info": {},
    }
    order.update(fields)
    return order


def ccxt_trade(**fields: Any) -> dict[str, Any]:
    trade: dict[str, Any] = {
        "id": "3601000001",
        "order": "28457002",
        "symbol": "BTC/USDT",
        "side": "sell",
        "amount": 0.0005,
        "price": 70000.0,
        "timestamp": T_MS,
        "takerOrMaker": "maker",
        "fee": {"cost": "0.035", "currency": "USDT"},
    }
    trade.update(fields)
    return trade


def test_an_update_is_the_order_after_it_and_its_execution() -> None:
    (update,) = updates_from_ccxt(ccxt_order(), [ccxt_trade()], now=NOW)
    report, trade = update.report, update.trade
    assert (report.client_order_id, report.venue_order_id, report.status) == (
        "tm-order-1",
        "28457002",
        OrderStatus.PARTIALLY_FILLED,
    )
    assert (report.filled, report.remaining, report.avg_price) == (
        D("0.0005"),
        D("0.0015"),
        D(70000),
    )
    assert (report.fee, report.fee_currency) == (None, None)  # not the order's cumulative fee
    assert trade is not None
    assert (trade.trade_id, trade.client_order_id, trade.venue_order_id) == (
        "3601000001",
        "tm-order-1",  # from the order: the execution does not carry it
        "28457002",
    )
    assert (trade.quantity, trade.price, trade.fee, trade.fee_currency, trade.liquidity) == (
        D("0.0005"),
        D(70000),
        D("0.035"),
        "USDT",
        "maker",
    )


def test_an_update_without_an_execution_or_with_several() -> None:
    (accepted,) = updates_from_ccxt(
        ccxt_order(filled=0.0, remaining=0.002, average=None), [], now=NOW
    )
    assert (accepted.report.status, accepted.trade) == (OrderStatus.ACCEPTED, None)
    (anonymous,) = updates_from_ccxt(ccxt_order(clientOrderId=None), [], now=NOW)
    assert anonymous.report.client_order_id is None
    two = updates_from_ccxt(
        ccxt_order(filled=0.001, remaining=0.001),
        [ccxt_trade(), ccxt_trade(id="3601000002")],
        now=NOW,
    )
    assert [u.trade.trade_id for u in two if u.trade] == ["3601000001", "3601000002"]
    assert two[0].report == two[1].report


@pytest.mark.parametrize(
    ("order", "trades", "message"),
    [
        (ccxt_order(filled=-1), [], "filled"),
        (ccxt_order(filled="NaN"), [], "filled"),
        (ccxt_order(status="weird"), [], "unknown order status"),
        (ccxt_order(id=None), [], "no id"),
        ("not an order", [], "not an object"),
        (ccxt_order(), [ccxt_trade(order="999")], "not of 28457002"),
        (ccxt_order(), [ccxt_trade(amount=0.001)], "more than the order's filled"),
        (ccxt_order(), [ccxt_trade(price=-1)], "price"),
    ],
)
def test_malformed_updates_are_refused(order: Any, trades: list[Any], message: str) -> None:
    with pytest.raises(MalformedResponse, match=message):
        updates_from_ccxt(order, trades, now=NOW)


# ---- the venue taking in ccxt's parse of Binance's messages ---------------------------------


def report(execution: str = "NEW", **fields: Any) -> dict[str, Any]:
    """A Binance executionReport, as the user data stream wraps it."""
    event = {
        "e": "executionReport",
        "E": T_MS,
        "s": "BTCUSDT",
        "c": "tm-order-1",
        "S": "SELL",
        "o": "LIMIT",
        "f": "GTC",
        "q": "0.00200000",
        "p": "70000.00000000",
        "C": "",
        "x": execution,
        "X": "NEW",
        "i": 28457002,
        "l": "0.00000000",
        "z": "0.00000000",
        "L": "0.00000000",
        "n": "0",
        "N": None,
        "T": T_MS,
        "t": -1,
        "w": True,
        "m": False,
        "O": T_MS,
        "Z": "0.00000000",
        "Y": "0.00000000",
    }
    event.update(fields)
    return {"subscriptionId": 0, "event": event}


def fill(trade_id: int, qty: str, total: str, price: str = "70000.00000000") -> dict[str, Any]:
    status = "FILLED" if D(total) == D("0.002") else "PARTIALLY_FILLED"
    return report(
        "TRADE",
        X=status,
        t=trade_id,
        l=qty,
        L=price,
        z=total,
        Z=str(D(total) * D(price)),
        n=str(D(qty) * D(price) / 1000),
        N="USDT",
        m=True,
    )


@pytest.fixture
async def venue() -> AsyncIterator[CcxtVenue]:
    made = CcxtVenue(
        "binance",
        api_key=SecretStr("unit-key"),
        secret=SecretStr("unit-secret"),
        urls={"api": {"ws": {"ws-api": {"spot": URL}}}},
        clock=lambda: NOW,
        max_buffered_updates=4,
    )
    yield made
    await made.close()


def deliver(venue: CcxtVenue, message: Any, client: Any = None) -> None:
    """What ccxt does with a message its (current) connection received."""
    venue._exchange.handle_message(client or venue._exchange.client(URL), message)


async def test_every_message_s_update_is_returned_once(venue: CcxtVenue) -> None:
    # No markets are loaded here, so ccxt knows no currency: the second execution's fee (which
    # ccxt would have summed into its cached order, at USDT's precision) must not cost the update.
    deliver(venue, report())
    deliver(venue, fill(3601000001, "0.0005", "0.0005"))
    deliver(venue, fill(3601000002, "0.0015", "0.002", price="70010.00000000"))
    updates = await venue.watch_orders()  # no waiting: they were taken in as they came
    assert [(u.report.status, u.report.filled) for u in updates] == [
        (OrderStatus.ACCEPTED, D(0)),
        (OrderStatus.PARTIALLY_FILLED, D("0.0005")),
        (OrderStatus.FILLED, D("0.002")),
    ]
    assert [u.trade.trade_id if u.trade else None for u in updates] == [
        None,
        "3601000001",
        "3601000002",
    ]
    assert all(isinstance(u, VenueUpdate) and u.report.fee is None for u in updates)
    last = updates[-1].trade
    assert last is not None and (last.quantity, last.price, last.fee, last.liquidity) == (
        D("0.0015"),
        D(70010),
        D("0.105015"),
        "maker",
    )
    assert venue._stream._updates == []  # nothing kept to be returned again


async def test_malformed_and_stray_messages_are_left_out(venue: CcxtVenue) -> None:
    deliver(venue, report(z="NaN"))  # ccxt chokes on it
    deliver(venue, report(z="-0.001"))  # ccxt reads it; validation refuses it
    deliver(venue, {"unexpected": True})
    stray = venue._exchange.clients.pop(URL)  # a connection the venue has dropped
    deliver(venue, report(), client=stray)
    assert venue._stream._updates == []
    assert venue.malformed_records == 2
    deliver(venue, report())
    (update,) = await venue.watch_orders()
    assert update.report.status == OrderStatus.ACCEPTED


async def test_a_full_buffer_is_reported_not_silently_cut(venue: CcxtVenue) -> None:
    deliver(venue, report())
    venue._stream._open = True  # as after the subscription
    for n in range(1, 5):
        deliver(venue, fill(3601000000 + n, "0.0001", f"{D('0.0001') * n}"))
    assert venue._stream._updates == []  # dropped, all of them: the caller must catch up by asking
    deliver(venue, fill(3601000009, "0.0001", "0.0005"))  # nothing more until it is told
    with pytest.raises(VenueUnavailable, match="left unread"):
        await venue.watch_orders()
    assert venue._stream._updates == [] and venue._exchange.clients == {}


async def test_no_stream_when_turned_off() -> None:
    venue = CcxtVenue("binance", api_key=SecretStr("k"), secret=SecretStr("s"), stream_orders=False)
    assert venue.streams_orders is False
    with pytest.raises(StreamUnsupported):
        await venue.watch_orders()
    await venue.close()
