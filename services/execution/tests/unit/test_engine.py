"""The execution domain alone: the state machine, the events, the paper venue's matching worked
out by hand, positions. No broker, no database, no clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any
from uuid import UUID

import pytest
from trademesh_events.ids import AccountId, UserId
from trademesh_events.marketdata import Bar, Tick
from trademesh_events.orders import (
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderStatus,
    OrderStatusUnknown,
    OrderSubmitted,
    OrderType,
    SubmitOrder,
    TimeInForce,
)
from trademesh_events.topics import get_topic
from trademesh_trading.fills import Fill, FillModel

from trademesh_execution.engine import (
    TRANSITIONS,
    IllegalTransition,
    OrderView,
    PaperMatch,
    Position,
    advance,
    bar_of_tick,
    book,
    fee_currency,
    fee_in_quote,
    fill_event,
    fill_order,
    is_open,
    lifecycle_event,
    market_clock,
    new_order,
    paper_accept,
    paper_fills,
    same_terms,
    trade_id,
    transition,
    unrealised,
)

pytestmark = pytest.mark.unit

S = OrderStatus
T0 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
BTC = "binance:BTC/USDT"
ACCOUNT = AccountId(UUID("00000000-0000-0000-0000-0000000000a1"))
USER = UserId(UUID("00000000-0000-0000-0000-0000000000b1"))
PLAIN = FillModel()
TEN_BPS = FillModel(slippage_bps=D(10), fee_bps=D(10))


def submit(
    kind: OrderType = OrderType.MARKET,
    side: str = "buy",
    qty: str = "2",
    *,
    limit: str | None = None,
    stop: str | None = None,
    tif: TimeInForce = TimeInForce.GTC,
    cid: str = "c-1",
) -> SubmitOrder:
    return SubmitOrder(
        account_id=ACCOUNT,
        user_id=USER,
        client_order_id=cid,
        instrument_id=BTC,
        side=side,
        order_type=kind,
        quantity=D(qty),
        limit_price=D(limit) if limit else None,
        stop_price=D(stop) if stop else None,
        time_in_force=tif,
        source="manual",
        created_at=T0,
    )


def accepted(*args: Any, at: datetime = T0, **kwargs: Any) -> OrderView:
    """A paper order accepted when the market clock read `at` (bar n opens at T0 + n minutes)."""
    order, _ = paper_accept(new_order(submit(*args, **kwargs)), T0, market_time=at)
    return order


def bar(n: int, o: str, h: str, lo: str, c: str, v: str = "1000", final: bool = True) -> Bar:
    return Bar(
        instrument_id=BTC,
        timeframe="1m",
        open_time=T0 + n * MINUTE,
        close_time=T0 + (n + 1) * MINUTE,
        open=D(o),
        high=D(h),
        low=D(lo),
        close=D(c),
        volume=D(v),
        final=final,
    )


def one(orders: list[OrderView], b: Bar, model: FillModel = PLAIN) -> PaperMatch:
    matches = paper_fills(orders, b, model)
    assert len(matches) == 1
    return matches[0]


def filled(match: PaperMatch) -> OrderFilled:
    event = match.events[0]
    assert isinstance(event, OrderFilled)
    return event


# ---- the state machine ------------------------------------------------------------------------

LEGAL = {
    S.INITIALIZED: {S.PENDING, S.DENIED},
    S.DENIED: set(),
    S.PENDING: {S.SUBMITTED, S.REJECTED, S.CANCELED, S.UNKNOWN},
    S.SUBMITTED: {S.ACCEPTED, S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.REJECTED, S.EXPIRED, S.UNKNOWN},
    S.ACCEPTED: {S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.EXPIRED},
    S.PARTIALLY_FILLED: {S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.EXPIRED},
    S.UNKNOWN: {S.SUBMITTED, S.ACCEPTED, S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.REJECTED, S.EXPIRED},
    S.FILLED: set(),
    S.CANCELED: set(),
    S.REJECTED: set(),
    S.EXPIRED: set(),
}  # fmt: skip


def test_the_transition_table_is_the_documented_one() -> None:
    assert {status: set(targets) for status, targets in TRANSITIONS.items()} == LEGAL


def test_a_resent_order_has_the_same_terms_whatever_its_time_or_notation() -> None:
    kept = new_order(submit(OrderType.LIMIT, qty="2", limit="100"))
    again = submit(OrderType.LIMIT, qty="2.000", limit="100.0").model_copy(
        update={"created_at": T0 + MINUTE}
    )
    assert same_terms(kept, False, again)


@pytest.mark.parametrize(
    "change",
    [
        {"quantity": D(3)},
        {"limit_price": D(101)},
        {"side": "sell"},
        {"time_in_force": TimeInForce.IOC},
        {"reduce_only": True},
        {"account_id": AccountId(UUID(int=7))},
        {"user_id": UserId(UUID(int=8))},
        {"instrument_id": "binance:ETH/USDT"},
    ],
)
def test_an_order_with_other_terms_under_a_used_id_is_another_order(change: dict[str, Any]) -> None:
    kept = new_order(submit(OrderType.LIMIT, qty="2", limit="100"))
    assert not same_terms(
        kept, False, submit(OrderType.LIMIT, qty="2", limit="100").model_copy(update=change)
    )


@pytest.mark.parametrize("current", list(S))
@pytest.mark.parametrize("target", list(S))
def test_every_transition_is_allowed_or_refused_naming_both_states(
    current: OrderStatus, target: OrderStatus
) -> None:
    if target in LEGAL[current]:
        assert transition(current, target) is target
    else:
        with pytest.raises(IllegalTransition, match=f"{current} -> {target}"):
            transition(current, target)


@pytest.mark.parametrize(
    ("status", "message"),
    [(S.FILLED, "FILLED is terminal"), (S.ACCEPTED, "from ACCEPTED an order goes to CANCELED, EXPIRED, FILLED, PARTIALLY_FILLED only")],
)  # fmt: skip
def test_a_refusal_says_why(status: OrderStatus, message: str) -> None:
    with pytest.raises(IllegalTransition, match=message):
        transition(status, S.PENDING)


def test_open_means_not_terminal() -> None:
    assert {s for s in S if not is_open(s)} == {
        S.DENIED,
        S.FILLED,
        S.CANCELED,
        S.REJECTED,
        S.EXPIRED,
    }
    assert is_open("UNKNOWN")  # a status read back as text


# ---- lifecycle events -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason", "kind"),
    [
        (S.SUBMITTED, None, OrderSubmitted),
        (S.ACCEPTED, None, OrderAccepted),
        (S.CANCELED, None, OrderCanceled),
        (S.CANCELED, "kill switch", OrderCanceled),
        (S.REJECTED, "insufficient balance", OrderRejected),
        (S.EXPIRED, None, OrderExpired),
        (S.UNKNOWN, "send timed out", OrderStatusUnknown),
    ],
)
def test_lifecycle_events_carry_the_order_and_the_reason(
    status: OrderStatus, reason: str | None, kind: type[Any]
) -> None:
    order = replace(new_order(submit()), venue_order_id="v-9")
    event = lifecycle_event(order, status, T0, reason=reason)
    assert type(event) is kind
    assert (event.account_id, event.user_id, event.client_order_id) == (ACCOUNT, USER, "c-1")
    assert (event.instrument_id, event.venue_order_id, event.ts) == (BTC, "v-9", T0)
    assert getattr(event, "reason", None) == reason
    assert get_topic("orders.events.v1").key_of(event) == str(ACCOUNT).encode()


@pytest.mark.parametrize(
    ("status", "reason", "message"),
    [
        (S.REJECTED, None, "needs a reason"),
        (S.UNKNOWN, "", "needs a reason"),
        (S.ACCEPTED, "why", "carries no reason"),
        (S.PENDING, None, "no lifecycle event"),
        (S.FILLED, None, "fill_order and fill_event"),
    ],
)
def test_lifecycle_events_refuse_what_they_cannot_say(
    status: OrderStatus, reason: str | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        lifecycle_event(new_order(submit()), status, T0, reason=reason)


def test_a_long_reason_is_cut_to_fit_the_event() -> None:
    event = lifecycle_event(new_order(submit()), S.REJECTED, T0, reason="x" * 600)
    assert isinstance(event, OrderRejected)
    assert len(event.reason) == 500 and event.reason.endswith("…")


def test_advance_moves_the_order_keeps_the_venue_id_and_refuses_illegal_moves() -> None:
    order = new_order(submit())
    sent, event = advance(order, S.SUBMITTED, T0, venue_order_id="v-1")
    assert (sent.status, sent.venue_order_id, event.venue_order_id) == (S.SUBMITTED, "v-1", "v-1")
    canceled, event = advance(sent, S.CANCELED, T0, reason="user")
    assert (canceled.status, canceled.venue_order_id, event.type) == (
        S.CANCELED,
        "v-1",
        "trademesh.order.canceled",
    )
    with pytest.raises(IllegalTransition, match="CANCELED is terminal"):
        advance(canceled, S.ACCEPTED, T0)
    with pytest.raises(ValueError, match="comes with a fill"):
        advance(sent, S.FILLED, T0)


def test_a_fill_updates_the_order_and_its_event_counts_it_in() -> None:
    order = accepted(qty="3")
    first = Fill("c-1", "buy", D(1), D(100), D("0.1"))
    event = fill_event(order, first, T0, "t-1", "USDT", liquidity="maker")
    order = fill_order(order, first)
    assert (order.status, order.filled, order.avg_price, order.fees, order.fills) == (
        S.PARTIALLY_FILLED,
        1,
        100,
        D("0.1"),
        1,
    )
    assert (event.last_qty, event.cum_qty, event.leaves_qty, event.fee) == (1, 1, 2, D("0.1"))
    assert (event.venue_order_id, event.trade_id, event.side, event.liquidity) == (
        "paper-c-1",
        "t-1",
        "buy",
        "maker",
    )
    second = Fill("c-1", "buy", D(2), D(103), D("0.2"))
    event = fill_event(order, second, T0, "t-2", "USDT", liquidity="taker")
    order = fill_order(order, second)
    assert (order.status, order.filled, order.avg_price, order.fees) == (S.FILLED, 3, 102, D("0.3"))
    assert (event.cum_qty, event.leaves_qty, event.last_price) == (3, 0, 103)


@pytest.mark.parametrize(
    ("fill", "message"),
    [
        (Fill("c-2", "buy", D(1), D(100), D(0)), "applied to c-1"),
        (Fill("c-1", "sell", D(1), D(100), D(0)), "sell fill of the buy order"),
        (Fill("c-1", "buy", D(3), D(100), D(0)), "exceeds what remains"),
        (Fill("c-1", "buy", D(0), D(100), D(0)), "positive quantity"),
    ],
)
def test_impossible_fills_are_refused(fill: Fill, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fill_order(accepted(), fill)
    with pytest.raises(ValueError, match=message):
        fill_event(accepted(), fill, T0, "t", "USDT", liquidity="taker")


def test_a_closed_order_cannot_fill() -> None:
    canceled, _ = advance(accepted(), S.CANCELED, T0)
    with pytest.raises(IllegalTransition, match="CANCELED -> FILLED"):
        fill_order(canceled, Fill("c-1", "buy", D(2), D(100), D(0)))


@pytest.mark.parametrize(
    "fields",
    [{"quantity": D(0)}, {"filled": D(3)}, {"filled": D(1)}, {"avg_price": D(1)}, {"status": S.FILLED}],
)  # fmt: skip
def test_an_inconsistent_order_view_is_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="order c-1"):
        replace(new_order(submit()), **fields)


@pytest.mark.parametrize(
    ("instrument", "currency"),
    [(BTC, "USDT"), ("binance:eth/btc", "BTC"), ("nasdaq:GOOG", "USD"), ("replay:GOOG", "USD")],
)
def test_fees_are_in_the_quote_currency(instrument: str, currency: str) -> None:
    assert fee_currency(instrument) == currency


def test_trade_ids_are_numbered_by_the_orders_fills() -> None:
    assert [trade_id("c-1", n) for n in (1, 2)] == ["c-1-1", "c-1-2"]
    with pytest.raises(ValueError, match="from 1"):
        trade_id("c-1", 0)


# ---- the paper venue --------------------------------------------------------------------------


def test_paper_accept_submits_and_accepts_at_the_market_time() -> None:
    order, events = paper_accept(new_order(submit()), T0, market_time=T0 - MINUTE)
    assert [type(e) for e in events] == [OrderSubmitted, OrderAccepted]
    assert (order.status, order.venue_order_id) == (S.ACCEPTED, "paper-c-1")
    assert (order.accepted_at, order.active_from) == (T0 - MINUTE, T0 - MINUTE)
    assert (events[0].venue_order_id, events[1].venue_order_id) == (None, "paper-c-1")
    with pytest.raises(IllegalTransition, match="accepts PENDING orders"):
        paper_accept(order, T0, market_time=T0)


def test_a_market_order_fills_at_the_next_bars_open_with_slippage_and_fee() -> None:
    match = one([accepted()], bar(0, "100", "110", "90", "105"), TEN_BPS)
    event = filled(match)
    assert (event.last_qty, event.last_price, event.fee, event.fee_currency) == (
        2,
        D("100.1"),
        D("0.2002"),
        "USDT",
    )
    assert (event.cum_qty, event.leaves_qty, event.liquidity, event.trade_id, event.ts) == (
        2,
        0,
        "taker",
        "c-1-1",
        T0,
    )
    assert (match.order.status, match.order.avg_price, match.order.fees) == (
        S.FILLED,
        D("100.1"),
        D("0.2002"),
    )
    sold = filled(one([accepted(side="sell")], bar(0, "100", "110", "90", "105"), TEN_BPS))
    assert sold.last_price == D("99.9")


@pytest.mark.parametrize(
    "at",
    [pytest.param(T0 + MINUTE, id="accepted at the bar's close"), pytest.param(T0 + 30 * timedelta(seconds=1), id="accepted mid-bar")],
)  # fmt: skip
def test_an_order_is_not_filled_by_the_bar_during_which_it_was_accepted(at: datetime) -> None:
    order = accepted(at=at)
    assert paper_fills([order], bar(0, "100", "110", "90", "105"), PLAIN) == []
    assert filled(one([order], bar(1, "106", "107", "105", "106"))).last_price == 106


@pytest.mark.parametrize(
    ("side", "limit", "bars", "price", "liquidity"),
    [
        ("buy", "99", [("100", "101", "99.5", "100"), ("100", "101", "98.5", "99")], "99", "maker"),
        ("buy", "99", [("100", "101", "99.5", "100"), ("98", "99", "97", "98")], "98", "taker"),
        ("sell", "101", [("100", "100.5", "99", "100"), ("100", "102", "99", "101")], "101", "maker"),
        ("sell", "101", [("100", "100.5", "99", "100"), ("102", "103", "101", "102")], "102", "taker"),
    ],
)  # fmt: skip
def test_a_limit_order_rests_until_a_bar_crosses_it(
    side: str, limit: str, bars: list[tuple[str, str, str, str]], price: str, liquidity: str
) -> None:
    order = accepted(OrderType.LIMIT, side, limit=limit)
    assert paper_fills([order], bar(0, *bars[0]), TEN_BPS) == []  # resting: nothing to save
    event = filled(one([order], bar(1, *bars[1]), TEN_BPS))
    assert (event.last_price, event.liquidity, event.ts) == (D(price), liquidity, T0 + MINUTE)
    assert event.fee == D(price) * 2 / 1000  # no slippage on a limit price, the fee all the same


def test_a_stop_limit_triggers_then_rests_as_a_limit() -> None:
    order = accepted(OrderType.STOP_LIMIT, "buy", limit="106", stop="105")
    assert paper_fills([order], bar(0, "100", "104", "99", "103"), PLAIN) == []
    # The stop is reached but the bar opens past the limit: triggered, nothing filled, saved.
    triggered = one([order], bar(1, "107", "108", "106.5", "107"))
    assert (triggered.fill, triggered.events, triggered.order.triggered) == (None, (), True)
    assert triggered.order.active_from == T0 + 2 * MINUTE
    assert paper_fills([triggered.order], bar(2, "107", "108", "106.5", "107"), PLAIN) == []
    event = filled(one([triggered.order], bar(3, "107", "108", "105.5", "106")))
    assert (event.last_price, event.liquidity) == (106, "maker")
    # Triggered and filled in one bar, at the stop: it took liquidity.
    event = filled(one([order], bar(1, "103", "107", "102", "106")))
    assert (event.last_price, event.liquidity) == (105, "taker")


def test_a_stop_becomes_a_market_order_when_reached() -> None:
    order = accepted(OrderType.STOP, "sell", stop="95")
    assert paper_fills([order], bar(0, "100", "101", "96", "97"), TEN_BPS) == []
    event = filled(one([order], bar(1, "97", "98", "94", "95"), TEN_BPS))
    assert (event.last_price, event.liquidity) == (D("94.905"), "taker")  # 95 - 10 bps


def test_a_large_order_fills_over_several_bars_with_max_volume_share() -> None:
    model = FillModel(max_volume_share=D("0.1"))
    order = accepted(qty="25")
    seen = []
    for n, price in enumerate(["100", "102", "104"]):
        match = one([order], bar(n, price, price, price, price, v="100"), model)
        order = match.order
        event = filled(match)
        seen.append((event.last_qty, event.cum_qty, event.leaves_qty, event.trade_id, order.status))
    assert seen == [
        (10, 10, 15, "c-1-1", S.PARTIALLY_FILLED),
        (10, 20, 5, "c-1-2", S.PARTIALLY_FILLED),
        (5, 25, 0, "c-1-3", S.FILLED),
    ]
    assert order.avg_price == D("101.6")  # (1000 + 1020 + 520) / 25


def test_a_redelivered_bar_fills_nothing_twice_and_a_replayed_fill_keeps_its_trade_id() -> None:
    model = FillModel(max_volume_share=D("0.5"))
    order = accepted(qty="10")
    first = one([order], bar(0, "100", "100", "100", "100", v="10"), model)
    assert paper_fills([first.order], bar(0, "100", "100", "100", "100", v="10"), model) == []
    # A crash before the match was saved: the same bar gives the same fill, with the same id.
    assert one([order], bar(0, "100", "100", "100", "100", v="10"), model) == first
    assert (
        filled(one([first.order], bar(1, "101", "101", "101", "101", v="10"), model)).trade_id
        == "c-1-2"
    )


def test_only_working_orders_of_the_instrument_on_final_bars_are_tried() -> None:
    working = accepted()
    pending = new_order(submit(cid="c-2"))
    done, _ = advance(accepted(cid="c-3"), S.CANCELED, T0)
    other = replace(accepted(cid="c-4"), instrument_id="binance:ETH/USDT")
    b = bar(0, "100", "101", "99", "100")
    assert [
        m.order.client_order_id for m in paper_fills([pending, done, other, working], b, PLAIN)
    ] == ["c-1"]
    assert paper_fills([working], bar(0, "100", "101", "99", "100", final=False), PLAIN) == []
    with pytest.raises(ValueError, match="paper_accept"):
        paper_fills([replace(working, active_from=None)], b, PLAIN)


@pytest.mark.parametrize(
    ("kind", "tif", "limit", "fills", "status"),
    [
        pytest.param(OrderType.MARKET, TimeInForce.IOC, None, [D(4)], S.EXPIRED, id="IOC takes what there is"),
        pytest.param(OrderType.LIMIT, TimeInForce.IOC, "90", [], S.EXPIRED, id="IOC limit not crossed"),
        pytest.param(OrderType.MARKET, TimeInForce.FOK, None, [], S.EXPIRED, id="FOK not all"),
        pytest.param(OrderType.MARKET, TimeInForce.GTC, None, [D(4)], S.PARTIALLY_FILLED, id="GTC rests"),
    ],
)  # fmt: skip
def test_ioc_and_fok_are_decided_by_the_first_bar(
    kind: OrderType, tif: TimeInForce, limit: str | None, fills: list[D], status: OrderStatus
) -> None:
    model = FillModel(max_volume_share=D("0.1"))
    match = one(
        [accepted(kind, qty="10", limit=limit, tif=tif)],
        bar(0, "100", "101", "99", "100", v="40"),
        model,
    )
    assert [e.last_qty for e in match.events if isinstance(e, OrderFilled)] == fills
    assert match.order.status is status
    assert [type(e) for e in match.events][-1] is (
        OrderExpired if status is S.EXPIRED else OrderFilled
    )


def test_a_fok_order_the_bar_can_fill_fills() -> None:
    match = one([accepted(tif=TimeInForce.FOK)], bar(0, "100", "101", "99", "100"))
    assert (match.order.status, [type(e) for e in match.events]) == (S.FILLED, [OrderFilled])


def test_a_day_order_expires_at_the_first_bar_of_the_next_utc_day() -> None:
    order = accepted(OrderType.LIMIT, limit="90", tif=TimeInForce.DAY)
    assert paper_fills([order], bar(0, "100", "101", "99", "100"), PLAIN) == []
    next_day = (datetime(2026, 1, 6, tzinfo=UTC) - T0) // MINUTE
    match = one([order], bar(next_day, "80", "81", "79", "80"))  # would have filled
    assert (match.fill, match.order.status, [e.ts for e in match.events]) == (
        None,
        S.EXPIRED,
        [datetime(2026, 1, 6, tzinfo=UTC)],
    )


def test_ticks_are_one_second_bars_and_move_the_market_clock() -> None:
    tick = Tick(instrument_id=BTC, ts=T0, price=D(100), size=D("0.5"))
    b = bar_of_tick(tick)
    assert (b.open_time, b.close_time, b.open, b.high, b.low, b.close, b.volume, b.final) == (
        T0,
        T0 + timedelta(seconds=1),
        100,
        100,
        100,
        100,
        D("0.5"),
        True,
    )
    clock = market_clock(None, b)
    assert clock == T0 + timedelta(seconds=1)
    assert market_clock(clock, bar(-1, "1", "1", "1", "1")) == clock  # a late bar: no going back
    assert market_clock(clock, bar(0, "1", "1", "1", "1", final=False)) == clock
    order = accepted(at=clock)
    assert paper_fills([order], b, PLAIN) == []
    later = bar_of_tick(tick.model_copy(update={"ts": T0 + timedelta(seconds=2), "price": D(101)}))
    assert filled(one([order], later, FillModel(max_volume_share=D(1)))).last_qty == D("0.5")


# ---- positions --------------------------------------------------------------------------------


def test_fills_book_into_the_position_at_average_cost() -> None:
    position = Position(ACCOUNT, BTC)
    order = accepted(qty="10")
    for qty, price, fee, side in [
        ("2", "100", "0.2", "buy"),
        ("2", "110", "0.22", "buy"),
        ("1", "120", "0.12", "sell"),
        ("5", "100", "0.5", "sell"),
    ]:
        fill = Fill("c-1", side, D(qty), D(price), D(fee))
        event = fill_event(replace(order, side=side), fill, T0, "t", "USDT", liquidity="taker")
        position = book(position, event)
    # long 4 @ 105; sell 1 @ 120 realises 15; sell 5 @ 100 closes 3 (-15) and opens -2 @ 100
    assert (position.quantity, position.avg_price) == (-2, 100)
    assert (position.realised_pnl, position.fees) == (D("-1.04"), D("1.04"))
    assert unrealised(position, D(90)) == 20


def test_a_fill_of_another_account_or_currency_does_not_book() -> None:
    event = fill_event(
        accepted(), Fill("c-1", "buy", D(1), D(100), D(0)), T0, "t", "BNB", liquidity="taker"
    )
    with pytest.raises(ValueError, match="fee in BNB"):
        book(Position(ACCOUNT, BTC), event)
    with pytest.raises(ValueError, match="applied to the position"):
        book(Position(ACCOUNT, "binance:ETH/USDT"), event)


def test_fees_in_other_currencies_are_valued_in_the_quote() -> None:
    prices = {"binance:BNB/USDT": D("600"), "binance:USDT/EUR": D("0.9")}
    assert fee_in_quote(BTC, D("0.5"), "USDT", D(70000), prices) == D("0.5")
    # Binance takes a buyer's fee in the coin bought: valued at the fill's price.
    assert fee_in_quote(BTC, D("0.000001"), "btc", D(70000), prices) == D("0.070000")
    assert fee_in_quote(BTC, D("0.0001"), "BNB", D(70000), prices) == D("0.06")
    assert fee_in_quote(BTC, D("0.9"), "EUR", D(70000), prices) == D(1)  # through USDT/EUR
    assert fee_in_quote(BTC, D("1"), "XYZ", D(70000), prices) is None  # no price: not valued
    assert fee_in_quote(BTC, D("1"), "BNB", D(70000), {"binance:BNB/USDT": D(0)}) is None


def test_a_fee_valued_in_the_quote_books_at_its_value() -> None:
    event = fill_event(
        accepted(), Fill("c-1", "buy", D(1), D(100), D("0.002")), T0, "t", "BNB", liquidity="taker"
    )
    valued = event.model_copy(update={"quote_fee": D("1.2")})
    assert valued.booked_fee == D("1.2") and event.booked_fee == D("0.002")
    position = book(Position(ACCOUNT, BTC), valued)
    assert (position.fees, position.realised_pnl, position.quantity) == (D("1.2"), D("-1.2"), 1)


# ---- the contract -----------------------------------------------------------------------------
