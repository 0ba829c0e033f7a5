"""The ccxt venue, and the service's live orders, against a local Binance (trademesh_testing.binance:
real ccxt, real HTTP, Binance's documented JSON, signatures checked)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any
from uuid import UUID

import pytest
from trademesh_events.orders import OrderStatus, OrderType, TimeInForce
from trademesh_testing.binance import (
    API_KEY,
    INSTRUMENT,
    SECRET,
    FakeBinance,
    Received,
    load,
)
from trademesh_testing.tokens import bearer

from trademesh_execution.engine import OrderView
from trademesh_execution.venues import (
    CcxtVenue,
    DuplicateOrder,
    MalformedResponse,
    VenueError,
    VenueRejected,
    VenueTimeout,
    VenueUnavailable,
)

pytestmark = pytest.mark.integration


def order_requests(server: FakeBinance, method: str = "POST") -> list[Received]:
    return [r for r in server.received if r.path == "/api/v3/order" and r.method == method]


def _recent(ts: datetime) -> bool:
    return abs(datetime.now(UTC) - ts) < timedelta(seconds=30)


async def test_submit_sends_the_client_order_id_signed_and_maps_the_answers(
    binance: FakeBinance, make_venue: Callable[..., CcxtVenue], order: Callable[..., OrderView]
) -> None:
    venue = make_venue()
    bought = order(OrderType.MARKET, side="buy", quantity="0.0015", limit=None)
    report = await venue.submit(bought)
    assert (report.client_order_id, report.status) == (bought.client_order_id, OrderStatus.FILLED)
    assert report.venue_order_id == "28457001"
    assert (report.filled, report.remaining) == (D("0.0015"), D(0))
    assert report.avg_price == D("101.25615") / D("0.0015")  # weighted over the two fills
    assert (report.fee, report.fee_currency) == (D("0.06750400") + D("0.03375215"), "USDT")
    assert _recent(report.ts)

    sold = order(OrderType.LIMIT, side="sell", quantity="0.002", limit="70000.00")
    resting = await venue.submit(sold)
    assert (resting.client_order_id, resting.status) == (sold.client_order_id, OrderStatus.ACCEPTED)
    assert (resting.filled, resting.remaining, resting.avg_price) == (D(0), D("0.002"), None)
    assert resting.venue_order_id == "28457002"

    market, limit = order_requests(binance)
    assert market.signed and limit.signed  # HMAC-SHA256 of the request with the test secret
    assert market.params["newClientOrderId"] == bought.client_order_id
    assert (market.params["type"], market.params["side"], market.params["quantity"]) == (
        "MARKET",
        "BUY",
        "0.0015",
    )
    assert "price" not in market.params and "quoteOrderQty" not in market.params
    assert "timeInForce" not in market.params
    assert limit.params["newClientOrderId"] == sold.client_order_id
    assert (limit.params["type"], limit.params["side"], limit.params["timeInForce"]) == (
        "LIMIT",
        "SELL",
        "GTC",
    )
    assert (D(limit.params["price"]), D(limit.params["quantity"])) == (D(70000), D("0.002"))
    assert "signature" not in market.params and "timestamp" in market.params


async def test_fetch_cancel_open_orders_and_trades_by_client_order_id(
    binance: FakeBinance, make_venue: Callable[..., CcxtVenue], order: Callable[..., OrderView]
) -> None:
    venue = make_venue()
    since = datetime.now(UTC) - timedelta(seconds=1)
    bought = order(OrderType.MARKET, side="buy", quantity="0.0015", limit=None)
    await venue.submit(bought)
    resting = order(OrderType.LIMIT, side="sell", quantity="0.002", limit="70000.00")
    await venue.submit(resting)

    found = await venue.fetch(resting)
    assert found is not None
    assert (found.client_order_id, found.status, found.filled) == (
        resting.client_order_id,
        OrderStatus.ACCEPTED,
        D(0),
    )
    lookup = order_requests(binance, "GET")[-1]
    assert lookup.signed and lookup.params["origClientOrderId"] == resting.client_order_id
    assert (await venue.fetch(order())) is None  # never sent: Binance's -2013

    binance.fill(resting.client_order_id, "0.0005", "70000.00")
    partly = await venue.fetch(resting)
    assert partly is not None
    assert (partly.status, partly.filled, partly.remaining, partly.avg_price) == (
        OrderStatus.PARTIALLY_FILLED,
        D("0.0005"),
        D("0.0015"),
        D(70000),
    )

    [listed] = await venue.open_orders(INSTRUMENT)
    assert (listed.client_order_id, listed.status) == (
        resting.client_order_id,
        OrderStatus.PARTIALLY_FILLED,
    )
    assert [r.client_order_id for r in await venue.open_orders()] == [resting.client_order_id]

    trades = await venue.recent_trades(INSTRUMENT, since)
    assert [(t.venue_order_id, t.side, t.quantity, t.price, t.liquidity) for t in trades] == [
        ("28457001", "buy", D("0.001"), D("67504"), "taker"),
        ("28457001", "buy", D("0.0005"), D("67504.3"), "taker"),
        ("28457002", "sell", D("0.0005"), D("70000"), "maker"),
    ]
    assert [t.trade_id for t in trades] == ["3601000001", "3601000002", "3601000003"]
    assert trades[0].fee == D("0.067504") and trades[0].fee_currency == "USDT"
    assert all(t.client_order_id is None and _recent(t.ts) for t in trades)  # Binance: no cid
    assert await venue.recent_trades(INSTRUMENT, datetime.now(UTC) + timedelta(hours=1)) == []

    canceled = await venue.cancel(resting)
    assert (canceled.client_order_id, canceled.status, canceled.filled, canceled.remaining) == (
        resting.client_order_id,
        OrderStatus.CANCELED,
        D("0.0005"),
        D("0.0015"),
    )
    cancel = order_requests(binance, "DELETE")[-1]
    assert cancel.signed and cancel.params["origClientOrderId"] == resting.client_order_id
    assert await venue.open_orders(INSTRUMENT) == []
    after = await venue.fetch(resting)
    assert after is not None and after.status is OrderStatus.CANCELED

    # Cancelling again: Binance's -2011 is a refusal (the service then fetches the order).
    with pytest.raises(VenueRejected, match="Unknown order sent"):
        await venue.cancel(resting)


async def test_a_late_answer_is_a_timeout_and_fetch_then_finds_the_order(
    binance: FakeBinance, make_venue: Callable[..., CcxtVenue], order: Callable[..., OrderView]
) -> None:
    venue = make_venue(timeout_s=0.5)
    await venue.open_orders(INSTRUMENT)  # markets loaded: the timeout is the order's alone
    binance.post_delay = 1.5
    sent = order(OrderType.LIMIT, side="buy", quantity="0.001", limit="60000.00")
    started = time.monotonic()
    with pytest.raises(VenueTimeout):
        await venue.submit(sent)
    assert time.monotonic() - started < 1.4
    assert order_requests(binance)[-1].params["newClientOrderId"] == sent.client_order_id

    found = await venue.fetch(sent)  # the venue did get it: UNKNOWN resolves to ACCEPTED
    assert found is not None
    assert (found.client_order_id, found.status) == (sent.client_order_id, OrderStatus.ACCEPTED)

    # Sending it again is refused as a duplicate, not as a rejection of the order.
    with pytest.raises(DuplicateOrder):
        await venue.submit(sent)


async def test_an_outage_is_unavailable_and_sends_nothing(
    binance: FakeBinance, make_venue: Callable[..., CcxtVenue], order: Callable[..., OrderView]
) -> None:
    venue = make_venue()
    await venue.open_orders(INSTRUMENT)
    binance.outage = True
    sent = order()
    with pytest.raises(VenueUnavailable, match="503"):
        await venue.submit(sent)
    with pytest.raises(VenueUnavailable):
        await venue.fetch(sent)
    with pytest.raises(VenueUnavailable):
        await venue.open_orders()
    binance.outage = False
    assert binance.orders == {}
    assert await venue.fetch(sent) is None


async def test_refusals_are_rejections(
    binance: FakeBinance, make_venue: Callable[..., CcxtVenue], order: Callable[..., OrderView]
) -> None:
    venue = make_venue()
    binance.next_answer = (400, "error_insufficient_balance.json")
    with pytest.raises(VenueRejected, match="insufficient balance") as refused:
        await venue.submit(order())
    assert not isinstance(refused.value, DuplicateOrder)

    # Refused by the venue before anything is sent: off the market's grid, a DAY order, a
    # market stop the market does not offer, another venue's instrument.
    sent = len(order_requests(binance))
    with pytest.raises(VenueRejected, match="grid"):
        await venue.submit(order(quantity="0.0012345"))
    with pytest.raises(VenueRejected, match="grid"):
        await venue.submit(order(limit="70000.005"))
    with pytest.raises(VenueRejected, match="DAY"):
        await venue.submit(order(tif=TimeInForce.DAY))
    with pytest.raises(VenueRejected, match=r"not a valid order type|not allowed"):
        await venue.submit(
            order(OrderType.STOP, side="buy", quantity="0.001", limit=None, stop="71000")
        )
    with pytest.raises(VenueRejected, match="not on venue binance"):
        await venue.submit(replace(order(), instrument_id="kraken:BTC/USD"))
    assert len(order_requests(binance)) == sent

    # A stop-limit the market offers goes out as Binance's STOP_LOSS_LIMIT.
    stop_limit = order(
        OrderType.STOP_LIMIT, side="buy", quantity="0.001", limit="71100", stop="71000"
    )
    report = await venue.submit(stop_limit)
    assert report.status is OrderStatus.ACCEPTED
    last = order_requests(binance)[-1].params
    assert (last["type"], D(last["stopPrice"]), D(last["price"])) == (
        "STOP_LOSS_LIMIT",
        D(71000),
        D(71100),
    )

    # Bad credentials are refused too (and say nothing of the secret).
    wrong = make_venue(secret="not-the-secret-at-all")
    with pytest.raises(VenueRejected, match="Signature for this request is not valid"):
        await wrong.submit(order())


async def test_malformed_answers_raise_or_are_left_out_without_poisoning_the_rest(
    binance: FakeBinance, make_venue: Callable[..., CcxtVenue], order: Callable[..., OrderView]
) -> None:
    venue = make_venue()
    binance.next_answer = (200, "order_new_malformed.json")
    with pytest.raises(MalformedResponse, match="negative"):
        await venue.submit(order(quantity="0.002"))

    since = datetime.now(UTC) - timedelta(seconds=1)
    good = order()
    await venue.submit(good)
    await venue.submit(order(OrderType.MARKET, side="buy", quantity="0.0015", limit=None))
    binance.extra_open_orders = load("openOrders_malformed.json")
    for trade in (bad := load("myTrades_malformed.json")):
        if isinstance(trade["time"], int):
            trade["time"] = binance.now_ms()
    binance.extra_trades = bad

    listed = await venue.open_orders(INSTRUMENT)
    assert [r.client_order_id for r in listed] == [good.client_order_id]
    trades = await venue.recent_trades(INSTRUMENT, since)
    assert [t.trade_id for t in trades] == ["3601000001", "3601000002"]
    assert venue.malformed_records == 1 + 3 + 3  # the submit, three orders, three trades


async def test_balances_come_signed_from_the_account_and_move_with_its_orders(
    binance: FakeBinance, make_venue: Callable[..., CcxtVenue], order: Callable[..., OrderView]
) -> None:
    venue = make_venue()
    binance.set_balance("USDT", "1000.00", "0")
    binance.set_balance("BTC", "0.01", "0")
    before = await venue.balances()
    (request,) = [r for r in binance.received if r.path == "/api/v3/account"]
    assert request.signed and request.method == "GET"
    assert before.total("USDT") == D(1000) and before.total("BTC") == D("0.01")
    assert before.total("ETH") == D(0) and "ETH" in before.currencies  # listed, none held
    assert _recent(before.ts)

    # A resting buy locks its cost: still the account's, no longer free.
    resting = order(OrderType.LIMIT, side="buy", quantity="0.002", limit="70000.00")
    await venue.submit(resting)
    locked = (await venue.balances()).currencies["USDT"]
    assert (locked.free, locked.used, locked.total) == (D(860), D(140), D(1000))
    # Half of it fills at a better price: base in, its cost (and the commission) out.
    binance.fill(resting.client_order_id, "0.001", "69000.00")
    half = await venue.balances()
    assert half.total("BTC") == D("0.011")
    assert half.currencies["USDT"].used == D(70)
    assert half.total("USDT") == D(1000) - D(69) - D("0.069")  # commission: 0.1 % in USDT
    # Cancelled: the rest is free again. A market buy pays at once.
    await venue.cancel(resting)
    await venue.submit(order(OrderType.MARKET, side="buy", quantity="0.0015", limit=None))
    after = (await venue.balances()).currencies["USDT"]
    paid = D("101.25615") + D("0.06750400") + D("0.03375215")  # the two fills, their fees
    assert (after.used, after.total) == (D(0), D(1000) - D(69) - D("0.069") - paid)
    assert (await venue.balances()).total("BTC") == D("0.0125")

    binance.outage = True
    with pytest.raises(VenueUnavailable):
        await venue.balances()
    binance.outage = False
    binance.set_balance("USDT", "-1")  # what Binance never answers
    with pytest.raises(MalformedResponse, match="negative"):
        await venue.balances()
    assert venue.malformed_records == 1


async def test_secrets_are_never_logged_nor_in_errors_or_reprs(
    binance: FakeBinance,
    make_venue: Callable[..., CcxtVenue],
    caplog: pytest.LogCaptureFixture,
    order: Callable[..., OrderView],
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="ccxt")
    venue = make_venue(timeout_s=0.5)
    errors: list[VenueError] = []
    resting = order()
    await venue.submit(resting)
    await venue.submit(order(OrderType.MARKET, side="buy", quantity="0.0015", limit=None))
    await venue.fetch(resting)
    await venue.open_orders()
    await venue.recent_trades(INSTRUMENT, datetime.now(UTC) - timedelta(minutes=1))
    await venue.cancel(resting)
    for setup in ("reject", "timeout", "outage", "malformed"):
        binance.next_answer = {
            "reject": (400, "error_insufficient_balance.json"),
            "malformed": (200, "order_new_malformed.json"),
        }.get(setup)
        binance.post_delay = 1.0 if setup == "timeout" else 0.0
        binance.outage = setup == "outage"
        with pytest.raises(VenueError) as raised:
            await venue.submit(order())
        errors.append(raised.value)
    binance.outage = False
    with pytest.raises(VenueRejected) as refused:
        await make_venue(secret="a-wrong-secret-value").submit(order())
    errors.append(refused.value)

    texts = [caplog.text, repr(venue)]
    texts += [r.getMessage() for r in caplog.records]
    texts += [f"{e!s} {e!r} {e.__cause__!r} {e.__context__!r}" for e in errors]
    for text in texts:
        assert API_KEY not in text and SECRET not in text
        assert "a-wrong-secret-value" not in text
    # ccxt did log its requests, key header and signature masked.
    requests = [r.getMessage() for r in caplog.records if r.name == "ccxt.base.exchange"]
    signed = [m for m in requests if "X-MBX-APIKEY" in m]
    assert signed and all("'X-MBX-APIKEY': '***'" in m for m in signed)
    assert any("signature=***" in m for m in requests)
    assert not any(r.exc_info for r in caplog.records if r.name == "ccxt.base.exchange")


async def test_venues_of_one_exchange_share_its_markets_and_rate_limiter(
    binance: FakeBinance, make_venue: Callable[..., CcxtVenue], order: Callable[..., OrderView]
) -> None:
    """The service makes a venue per call: the exchange's markets are loaded once, and every
    venue's requests go through one rate limiter (the exchange counts them per IP)."""
    first = make_venue()
    await first.open_orders(INSTRUMENT)
    assert binance.exchange_info_requests == 1
    second = make_venue(secret="another-accounts-secret")
    with pytest.raises(VenueRejected):  # its own credentials, the shared markets
        await second.open_orders(INSTRUMENT)
    await make_venue().submit(order())
    assert binance.exchange_info_requests == 1
    assert first._exchange.throttler is second._exchange.throttler


# ---- the service driving live orders through this venue ----------------------------------------


async def test_a_pending_live_order_is_sent_once_with_its_client_id_and_filled(
    live_app: Any, live: Any, binance: FakeBinance
) -> None:
    from trademesh_testing.http import app_client

    user = UUID(int=7)
    async with app_client(live_app) as client:
        account = await live.account(client, user)
        client_order_id = await live.pending(account, user)
        filled = await live.status(client_order_id, OrderStatus.FILLED)
        assert filled.filled == D("0.0015") and filled.venue_order_id is not None
        sent = order_requests(binance)
        assert [r.params["newClientOrderId"] for r in sent] == [client_order_id]
        assert all(r.signed for r in sent)
        history = [h["status"] for h in await live_app.state.runtime.store.history(client_order_id)]
        # Binance's answer has two executions: each is a fill, under the venue's trade id, with
        # its own price and fee.
        assert history == ["PENDING", "SUBMITTED", "PARTIALLY_FILLED", "FILLED"]
        fills = await live_app.state.runtime.store.fills_of(account, 10)
        assert sorted((f["trade_id"], f["quantity"], f["price"], f["fee"]) for f in fills) == [
            (f"{INSTRUMENT}#{t['id']}", D(t["qty"]), D(t["price"]), D(t["commission"]))
            for t in binance.trades
        ]
        pnl = (await client.get(f"/api/v1/accounts/{account}/pnl", headers=bearer(user))).json()
        assert [D(p["quantity"]) for p in pnl["positions"]] == [D("0.0015")]


async def test_an_approval_for_an_exchange_account_is_stored_pending_then_sent_by_the_driver(
    live_app: Any, live: Any, binance: FakeBinance, settings: Any
) -> None:
    from trademesh_bus import Bus
    from trademesh_events.orders import OrderApproved, SubmitOrder
    from trademesh_testing.http import app_client

    user = UUID(int=9)
    async with app_client(live_app) as client:
        account = await live.account(client, user)
        submit = SubmitOrder(
            account_id=account,
            user_id=user,
            client_order_id=f"tm-approved-{time.time_ns() % 10**12}",
            instrument_id=INSTRUMENT,
            side="buy",
            order_type=OrderType.MARKET,
            quantity=D("0.0015"),
            source="manual",
            created_at=datetime.now(UTC),
        )
        peer = Bus(settings, "test-risk", telemetry=False)
        await peer.start()
        try:
            await peer.publish(
                OrderApproved(account_id=account, order=submit, approved_at=datetime.now(UTC))
            )
            await live.status(submit.client_order_id, OrderStatus.FILLED)
        finally:
            await peer.stop()
        store = live_app.state.runtime.store
        _, row = await store.order(submit.client_order_id)
        assert row["venue"] == "binance"
        history = [h["status"] for h in await store.history(submit.client_order_id)]
        assert history == ["PENDING", "SUBMITTED", "PARTIALLY_FILLED", "FILLED"]
        sent = order_requests(binance)
        assert [r.params["newClientOrderId"] for r in sent] == [submit.client_order_id]


async def test_a_crash_after_sending_is_recovered_by_lookup_without_a_duplicate(
    live_app: Any,
    live: Any,
    binance: FakeBinance,
    make_venue: Callable[..., CcxtVenue],
    order: Callable[..., OrderView],
) -> None:
    from trademesh_testing.http import app_client

    user = UUID(int=8)
    async with app_client(live_app) as client:
        driver = await live.hold()  # the driver waits: we crash first
        account = await live.account(client, user)
        client_order_id = await live.pending(account, user)
        # The order reached the venue, and the process died before recording it.
        found = await live_app.state.runtime.store.order(client_order_id)
        await make_venue().submit(found[0])
        # The next rounds (a restarted process's reconciliation) look it up first.
        driver.retry_after = timedelta(0)
        assert await driver.step()
        order_ = await live.status(client_order_id, OrderStatus.FILLED)
        assert order_.filled == D("0.0015")
        assert [r.params["newClientOrderId"] for r in order_requests(binance)] == [
            client_order_id
        ]  # the one send before the crash, and no other


async def test_a_send_that_times_out_goes_unknown_and_is_resolved_without_resending(
    live_app: Any, live: Any, binance: FakeBinance, order: Callable[..., OrderView]
) -> None:
    from trademesh_testing.http import app_client

    user = UUID(int=9)
    async with app_client(live_app) as client:
        driver = await live.hold()  # rounds driven by the test, one at a time
        account = await live.account(client, user)
        client_order_id = await live.pending(account, user)
        driver.retry_after = timedelta(0)
        binance.post_delay = 2.0  # the order is booked, the answer comes after the 1 s timeout
        assert await driver.step()
        unknown = await live_app.state.runtime.store.order(client_order_id)
        assert unknown[0].status is OrderStatus.UNKNOWN
        await asyncio.sleep(1.2)  # let the late answer go by
        assert await driver.step()  # looked up by client id: found, adopted
        resolved = await live.status(client_order_id, OrderStatus.FILLED)
        assert resolved.filled == D("0.0015")
        assert len(order_requests(binance)) == 1  # never sent twice
        history = [h["status"] for h in await live_app.state.runtime.store.history(client_order_id)]
        assert history == ["PENDING", "UNKNOWN", "SUBMITTED", "PARTIALLY_FILLED", "FILLED"]


async def test_a_working_live_order_is_polled_to_its_fills(
    live_app: Any, live: Any, binance: FakeBinance
) -> None:
    from trademesh_testing.http import app_client

    user = UUID(int=10)
    async with app_client(live_app) as client:
        driver = await live.hold()
        account = await live.account(client, user)
        client_order_id = await live.pending(
            account, user, side="sell", quantity="0.002", limit="70000.00"
        )
        driver.retry_after = timedelta(0)
        driver.open_poll = timedelta(0)
        assert await driver.step()  # sent: resting at the venue
        accepted = await live.status(client_order_id, OrderStatus.ACCEPTED)
        assert accepted.filled == 0
        binance.fill(client_order_id, "0.0005", "70000.00")
        assert await driver.step()  # polled: a partial fill
        partial = await live.status(client_order_id, OrderStatus.PARTIALLY_FILLED)
        assert (partial.filled, partial.avg_price) == (D("0.0005"), D("70000.00"))
        binance.fill(client_order_id, "0.0015", "70010.00")
        assert await driver.step()
        done = await live.status(client_order_id, OrderStatus.FILLED)
        assert done.filled == D("0.002")
        assert done.avg_price == (D("0.0005") * 70000 + D("0.0015") * D("70010")) / D("0.002")
        assert len(order_requests(binance)) == 1


async def test_a_live_order_is_cancelled_by_its_venue(
    live_app: Any, live: Any, binance: FakeBinance
) -> None:
    from trademesh_testing.http import app_client

    user = UUID(int=11)
    headers = bearer(user)
    async with app_client(live_app) as client:
        driver = await live.hold()
        account = await live.account(client, user)
        client_order_id = await live.pending(
            account, user, side="sell", quantity="0.002", limit="70000.00"
        )
        driver.retry_after = timedelta(0)
        assert await driver.step()
        await live.status(client_order_id, OrderStatus.ACCEPTED)
        # The user cancels: the order stays as it is until its venue says so.
        asked = await client.post(f"/api/v1/orders/{client_order_id}/cancel", headers=headers)
        assert asked.json()["status"] == "ACCEPTED"
        assert await driver.step()  # a requested cancel is due at once
        await live.status(client_order_id, OrderStatus.CANCELED)
        assert len(order_requests(binance, "DELETE")) == 1
        assert binance.orders[client_order_id]["status"] == "CANCELED"
