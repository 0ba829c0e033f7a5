"""The ccxt venue's order stream against the local Binance's WebSocket API (trademesh_testing.binance:
real ccxt.pro, real sockets, Binance's documented executionReports, the subscription's signature
checked): updates once each with their executions, refused credentials, drops and reconnection,
pings, no stream where there is none, and no secret in any log."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from decimal import Decimal as D

import pytest
from pydantic import SecretStr
from trademesh_events.orders import OrderStatus, OrderType
from trademesh_testing.binance import API_KEY, SECRET, SUBSCRIBE, FakeBinance, load

from trademesh_execution.engine import OrderView
from trademesh_execution.venues import (
    CcxtVenue,
    StreamUnsupported,
    VenueError,
    VenueRejected,
    VenueUnavailable,
    VenueUpdate,
)

pytestmark = pytest.mark.integration

S = OrderStatus


async def until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


def subscribed(binance: FakeBinance) -> int:
    return sum(len(s.subscriptions) for s in binance.streams)


async def open_stream(venue: CcxtVenue, binance: FakeBinance) -> asyncio.Task[list[VenueUpdate]]:
    """The first call, left waiting on the stream once it is subscribed."""
    before = subscribed(binance)
    waiting = asyncio.create_task(venue.watch_orders())
    await until(lambda: subscribed(binance) > before)
    return waiting


async def collect(
    venue: CcxtVenue, count: int, *, first: asyncio.Task[list[VenueUpdate]] | None = None
) -> list[VenueUpdate]:
    """`count` updates, call after call, then none more (within a short wait)."""
    got = list(await asyncio.wait_for(first, 5)) if first is not None else []
    while len(got) < count:
        got += await asyncio.wait_for(venue.watch_orders(), 5)
    assert len(got) == count, got
    with pytest.raises(TimeoutError):  # nothing more: every update came once
        await asyncio.wait_for(venue.watch_orders(), 0.3)
    return got


async def test_updates_arrive_once_each_with_cumulative_figures_and_their_executions(
    binance: FakeBinance, make_venue: Callable[..., CcxtVenue], order: Callable[..., OrderView]
) -> None:
    venue = make_venue()
    assert venue.streams_orders
    first = await open_stream(venue, binance)
    resting = order(quantity="0.002", limit="70000.00")
    other = order(quantity="0.001", limit="71000.00")
    await venue.submit(resting)
    await venue.submit(other)
    accepted = await collect(venue, 2, first=first)
    assert [(u.report.client_order_id, u.report.status, u.trade) for u in accepted] == [
        (resting.client_order_id, S.ACCEPTED, None),
        (other.client_order_id, S.ACCEPTED, None),
    ]
    new = accepted[0].report
    assert (new.venue_order_id, new.filled, new.remaining, new.avg_price) == (
        "28457001",
        D(0),
        D("0.002"),
        None,
    )

    # Two fills before the next call: both come, each with its own execution (ccxt's cache
    # alone would have kept only the second state of the order).
    binance.fill(resting.client_order_id, "0.0005", "70000.00")
    binance.fill(resting.client_order_id, "0.0015", "70010.00")
    await venue.cancel(other)
    partial, full, canceled = await collect(venue, 3)

    assert partial.report.client_order_id == resting.client_order_id
    assert (partial.report.status, partial.report.filled, partial.report.remaining) == (
        S.PARTIALLY_FILLED,
        D("0.0005"),
        D("0.0015"),
    )
    assert partial.report.avg_price == D(70000)
    assert partial.report.fee is None and partial.report.fee_currency is None
    assert partial.trade is not None and full.trade is not None
    assert partial.trade.trade_id == str(binance.trades[0]["id"])
    assert (partial.trade.client_order_id, partial.trade.venue_order_id) == (
        resting.client_order_id,
        "28457001",
    )
    assert (partial.trade.side, partial.trade.quantity, partial.trade.price) == (
        "sell",
        D("0.0005"),
        D(70000),
    )
    assert (partial.trade.fee, partial.trade.fee_currency, partial.trade.liquidity) == (
        D("0.035"),
        "USDT",
        "maker",
    )

    assert (full.report.status, full.report.filled, full.report.remaining) == (
        S.FILLED,
        D("0.002"),
        D(0),
    )
    assert full.report.avg_price == (D("0.0005") * 70000 + D("0.0015") * D("70010")) / D("0.002")
    assert full.trade.trade_id == str(binance.trades[1]["id"]) != partial.trade.trade_id
    assert (full.trade.quantity, full.trade.price, full.trade.fee) == (
        D("0.0015"),
        D(70010),
        D("0.105015"),
    )

    # The cancel's event names the cancel request's own client id in `c`: the report has the
    # order's.
    assert (canceled.report.client_order_id, canceled.report.status, canceled.trade) == (
        other.client_order_id,
        S.CANCELED,
        None,
    )
    assert binance.events[-1]["c"] != other.client_order_id == binance.events[-1]["C"]

    # The stream's report is the order as fetch reports it (fees aside).
    fetched = await venue.fetch(resting)
    assert fetched is not None
    assert (fetched.status, fetched.filled, fetched.avg_price, fetched.remaining) == (
        full.report.status,
        full.report.filled,
        full.report.avg_price,
        full.report.remaining,
    )
    assert venue.malformed_records == 0
    assert len(binance.events) == 5  # each once: 2 + 3


async def test_a_market_order_reports_its_taker_executions(
    binance: FakeBinance, make_venue: Callable[..., CcxtVenue], order: Callable[..., OrderView]
) -> None:
    venue = make_venue()
    first = await open_stream(venue, binance)
    bought = order(OrderType.MARKET, side="buy", quantity="0.0015", limit=None)
    await venue.submit(bought)
    new, one, two = await collect(venue, 3, first=first)
    assert (new.report.status, new.trade) == (S.ACCEPTED, None)
    assert one.trade is not None and two.trade is not None
    fills = load("order_new_market_full.json")["fills"]
    assert [(t.quantity, t.price, t.fee, t.liquidity, t.side) for t in (one.trade, two.trade)] == [
        (D(f["qty"]), D(f["price"]), D(f["price"]) * D(f["qty"]) / 1000, "taker", "buy")
        for f in fills
    ]
    assert (one.report.status, two.report.status) == (S.PARTIALLY_FILLED, S.FILLED)
    assert two.report.filled == D("0.0015")
    assert {one.trade.client_order_id, two.trade.client_order_id} == {bought.client_order_id}


async def test_the_subscription_is_signed_and_a_wrong_secret_is_refused(
    binance: FakeBinance, make_venue: Callable[..., CcxtVenue]
) -> None:
    venue = make_venue()
    waiting = await open_stream(venue, binance)
    (request,) = [r for r in binance.received if r.method == "WS"]
    assert (request.path, request.signed) == (SUBSCRIBE, True)  # the fake verified it
    assert "timestamp" in request.params
    waiting.cancel()

    refused = make_venue(secret="tm-wrong-secret-0000000000000000")
    for _ in range(2):  # refused again, not left hanging on ccxt's half-done subscription
        with pytest.raises(VenueRejected, match="Signature for this request is not valid"):
            await asyncio.wait_for(refused.watch_orders(), 5)
    assert [r.signed for r in binance.received if r.method == "WS"] == [True, False, False]


async def test_a_dropped_stream_is_unavailable_and_the_next_call_reconnects(
    binance: FakeBinance, make_venue: Callable[..., CcxtVenue], order: Callable[..., OrderView]
) -> None:
    venue = make_venue()
    resting = order(quantity="0.002")
    first = await open_stream(venue, binance)
    await venue.submit(resting)
    await collect(venue, 1, first=first)

    # Dropped under a waiting call: it fails within seconds.
    waiting = asyncio.create_task(venue.watch_orders())
    await asyncio.sleep(0.1)
    await binance.drop_streams()
    with pytest.raises(VenueUnavailable, match="closed"):
        await asyncio.wait_for(waiting, 5)

    # The next call reconnects (a new, signed subscription) and updates come again.
    waiting = await open_stream(venue, binance)
    binance.fill(resting.client_order_id, "0.0005", "70000.00")
    (update,) = await collect(venue, 1, first=waiting)
    assert (update.report.status, update.report.filled) == (S.PARTIALLY_FILLED, D("0.0005"))
    assert [r.signed for r in binance.received if r.method == "WS"] == [True, True]

    # Dropped while nobody waits, with an update read before the drop: that update first,
    # then the drop, then a new stream.
    binance.fill(resting.client_order_id, "0.0005", "70000.00")
    await until(lambda: bool(venue._stream._updates))
    await binance.drop_streams()
    (before,) = await asyncio.wait_for(venue.watch_orders(), 5)
    assert before.report.filled == D("0.001")
    with pytest.raises(VenueUnavailable):
        await asyncio.wait_for(venue.watch_orders(), 5)

    # Refused connections (an outage) are unavailable too; once it is over, it reconnects.
    binance.outage = True
    with pytest.raises(VenueUnavailable):
        await asyncio.wait_for(venue.watch_orders(), 5)
    binance.outage = False
    waiting = await open_stream(venue, binance)
    binance.fill(resting.client_order_id, "0.001", "70000.00")
    (last,) = await collect(venue, 1, first=waiting)
    assert (last.report.status, last.report.filled) == (S.FILLED, D("0.002"))
    assert len(binance.streams) == 1  # the dropped connections are gone


async def test_pings_are_answered_both_ways(
    binance: FakeBinance, make_venue: Callable[..., CcxtVenue], order: Callable[..., OrderView]
) -> None:
    binance.stream_ping_s = 0.05  # the fake pings every 50 ms; ccxt every 100 ms
    venue = make_venue(config={"streaming": {"keepAlive": 100}})
    waiting = await open_stream(venue, binance)
    await until(lambda: binance.pings >= 3 and binance.pongs >= 3)
    await asyncio.sleep(0.5)  # ccxt would drop a connection whose pongs do not come
    resting = order()
    await venue.submit(resting)
    (update,) = await collect(venue, 1, first=waiting)
    assert update.report.client_order_id == resting.client_order_id


async def test_malformed_updates_are_left_out_and_counted(
    binance: FakeBinance, make_venue: Callable[..., CcxtVenue], order: Callable[..., OrderView]
) -> None:
    venue = make_venue()
    waiting = await open_stream(venue, binance)
    resting = order()
    await venue.submit(resting)
    await collect(venue, 1, first=waiting)
    good = binance.events[-1]
    binance.push_event({**good, "z": "-1.00000000"})  # negative filled: fails validation
    binance.push_event({**good, "z": "NaN"})
    binance.push_event({**good, "x": "TRADE", "X": "PARTIALLY_FILLED", "t": 1, "l": "5",
                        "L": "70000", "z": "0.001", "n": "0", "N": "USDT"})  # fmt: skip
    binance.push_event({**good, "c": ""})  # an order without a client id: still an update
    binance.push_event("not an event")
    (anonymous,) = await collect(venue, 1)
    assert anonymous.report.client_order_id is None
    assert anonymous.report.venue_order_id == str(good["i"])
    assert venue.malformed_records == 3


async def test_no_stream_where_there_is_none() -> None:
    """Honest ways to have no stream: the venue told not to stream (`stream_orders=False`), an
    exchange ccxt has no pro class for (bitflyer), and one whose pro class does not watch
    orders (coincheck). None of them touches the network."""
    venues = [
        CcxtVenue("binance", api_key=SecretStr("k"), secret=SecretStr("s"), stream_orders=False),
        CcxtVenue("bitflyer", api_key=SecretStr("k"), secret=SecretStr("s")),
        CcxtVenue("coincheck", api_key=SecretStr("k"), secret=SecretStr("s")),
    ]
    for venue in venues:
        assert venue.streams_orders is False
        with pytest.raises(StreamUnsupported):
            await venue.watch_orders()
        await venue.close()


async def test_no_secret_in_the_stream_s_logs_errors_or_reprs(
    binance: FakeBinance,
    make_venue: Callable[..., CcxtVenue],
    caplog: pytest.LogCaptureFixture,
    order: Callable[..., OrderView],
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="ccxt")
    caplog.set_level(logging.DEBUG, logger="trademesh")
    wrong = "tm-wrong-secret-1111111111111111"
    texts: list[str] = []

    venue = make_venue()
    waiting = await open_stream(venue, binance)
    resting = order()
    await venue.submit(resting)
    await collect(venue, 1, first=waiting)
    binance.fill(resting.client_order_id, "0.001", "70000.00")
    await collect(venue, 1)
    binance.push_event({**binance.events[-1], "z": "NaN"})  # malformed: logged, left out
    waiting = asyncio.create_task(venue.watch_orders())
    await asyncio.sleep(0.2)
    await binance.drop_streams()
    errors: list[BaseException] = []
    try:
        await asyncio.wait_for(waiting, 5)
    except VenueError as exc:
        errors.append(exc)
    refused = make_venue(secret=wrong)
    try:
        await asyncio.wait_for(refused.watch_orders(), 5)
    except VenueError as exc:
        errors.append(exc)
    assert [type(e) for e in errors] == [VenueUnavailable, VenueRejected]
    assert venue.malformed_records == 1
    await venue.close()
    await refused.close()

    texts += [caplog.text, repr(venue), repr(refused), repr(vars(venue)), repr(vars(refused))]
    texts += [r.getMessage() for r in caplog.records] + [repr(r.__dict__) for r in caplog.records]
    texts += [f"{e!s} {e!r} {e.__cause__!r} {e.__context__!r}" for e in errors]
    assert len(binance.signatures) == 2
    for text in texts:
        for secret in (API_KEY, SECRET, wrong, *binance.signatures):
            assert secret not in text
    assert any("order stream" in r.getMessage() for r in caplog.records)
