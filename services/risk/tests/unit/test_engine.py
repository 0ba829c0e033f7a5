"""The risk engine alone: every check at its boundary, the check order, the bookkeeping. No
broker, no database, no clock."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest
from trademesh_events.orders import DenialReason, OrderType, SubmitOrder
from trademesh_events.risk import TradingStateChanged, TradingStateReason
from trademesh_trading import positions

from trademesh_risk.engine import (
    AccountView,
    DailyLossReached,
    Denial,
    InstrumentRules,
    KillSwitchSet,
    Limits,
    PositionUpdate,
    StateCause,
    StateSet,
    TradingControls,
    TradingState,
    apply_fill,
    breaches_daily_loss,
    ceilings,
    check,
    check_cancel,
    effective,
    over_ceilings,
    reduces,
    reference_price,
    rules_in_force,
    transition,
)

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
BTC = "binance:BTC/USDT"
ETH = "binance:ETH/USDT"
R = DenialReason
D = Decimal


def order(
    side: str = "buy",
    quantity: str = "1",
    order_type: OrderType = OrderType.MARKET,
    *,
    limit: str | None = None,
    stop: str | None = None,
    reduce_only: bool = False,
    instrument: str = BTC,
) -> SubmitOrder:
    return SubmitOrder(
        account_id=uuid4(),
        user_id=uuid4(),
        client_order_id="c-1",
        instrument_id=instrument,
        side=side,
        order_type=order_type,
        quantity=D(quantity),
        limit_price=None if limit is None else D(limit),
        stop_price=None if stop is None else D(stop),
        reduce_only=reduce_only,
        source="manual",
        created_at=T0,
    )


def limit_order(side: str, quantity: str, price: str, **kw: Any) -> SubmitOrder:
    return order(side, quantity, OrderType.LIMIT, limit=price, **kw)


NO_LIMITS = Limits()
VIEW = AccountView(
    state=TradingState.ACTIVE,
    kill_switch=False,
    global_kill_switch=False,
    realised_pnl_today=D(0),
    positions={},
    pending={},
    open_orders=0,
    prices={BTC: D(100)},
    recent_approvals=(),
)


def view(**changes: Any) -> AccountView:
    return replace(VIEW, **changes)


def ago(*seconds: float) -> tuple[datetime, ...]:
    return tuple(T0 - timedelta(seconds=s) for s in seconds)


def every_limit(amount: int) -> Limits:
    return Limits(
        max_order_quantity=D(amount),
        max_order_notional=D(amount),
        max_position=D(amount),
        max_gross_exposure=D(amount),
        max_open_orders=amount,
        daily_loss_limit=D(amount),
        price_collar_bps=D(amount),
        max_orders_per_second=amount,
        max_orders_per_minute=amount,
    )


# ---- every check at its boundary -------------------------------------------------------------


@dataclass(frozen=True)
class Boundary:
    """A limit, an order (and account) right at it, and one a step beyond."""

    reason: DenialReason
    names: str  # the limit's name, in the denial's message
    at: SubmitOrder
    beyond: SubmitOrder
    shows: str  # the value that broke it, in the message
    limits: Limits = NO_LIMITS
    rules: InstrumentRules | None = None
    view_at: AccountView = VIEW
    view_beyond: AccountView | None = None  # the same as view_at unless given


BOUNDARIES = {
    "max_order_quantity": Boundary(
        R.MAX_ORDER_QUANTITY,
        "max_order_quantity 10",
        order(quantity="10"),
        order(quantity="10.001"),
        "10.001",
        limits=Limits(max_order_quantity=D(10)),
    ),
    "max_order_notional at the last price": Boundary(
        R.MAX_ORDER_NOTIONAL,
        "max_order_notional 1000",
        order(quantity="10"),
        order(quantity="10.01"),
        "1001",
        limits=Limits(max_order_notional=D(1000)),
    ),
    "max_order_notional at the limit price": Boundary(
        R.MAX_ORDER_NOTIONAL,
        "max_order_notional 1000",
        limit_order("buy", "10", "100"),
        limit_order("buy", "10", "100.01"),
        "1000.1",
        limits=Limits(max_order_notional=D(1000)),
    ),
    "max_position long": Boundary(
        R.MAX_POSITION,
        "max_position 5",
        order("buy", "2"),
        order("buy", "2.001"),
        "5.001",
        limits=Limits(max_position=D(5)),
        view_at=view(positions={BTC: D(3)}),
    ),
    "max_position short": Boundary(
        R.MAX_POSITION,
        "max_position 5",
        order("sell", "2"),
        order("sell", "2.001"),
        "5.001",
        limits=Limits(max_position=D(5)),
        view_at=view(positions={BTC: D(-3)}),
    ),
    "max_position with pending buys": Boundary(
        R.MAX_POSITION,
        "max_position 5",
        order("buy", "2"),
        order("buy", "2.001"),
        "5.001",
        limits=Limits(max_position=D(5)),
        view_at=view(positions={BTC: D(2)}, pending={BTC: (D(1), D(4))}),
    ),
    "max_gross_exposure": Boundary(
        R.MAX_GROSS_EXPOSURE,
        "max_gross_exposure 10000",
        order("buy", "60"),
        order("buy", "60.001"),
        "10000.1",
        limits=Limits(max_gross_exposure=D(10_000)),
        view_at=view(positions={ETH: D(2)}, prices={BTC: D(100), ETH: D(2000)}),
    ),
    "max_gross_exposure counts the worst side of other instruments": Boundary(
        R.MAX_GROSS_EXPOSURE,
        "max_gross_exposure 10000",
        order("buy", "60"),
        order("buy", "60.001"),
        "10000.1",
        limits=Limits(max_gross_exposure=D(10_000)),
        # ETH: max(|1 + 0.5|, |1 - 3|) = 2 at 2000
        view_at=view(
            positions={ETH: D(1)},
            pending={ETH: (D("0.5"), D(3))},
            prices={BTC: D(100), ETH: D(2000)},
        ),
    ),
    "max_open_orders": Boundary(
        R.MAX_OPEN_ORDERS,
        "max_open_orders 3",
        order(),
        order(),
        "3 orders are open",
        limits=Limits(max_open_orders=3),
        view_at=view(open_orders=2),
        view_beyond=view(open_orders=3),
    ),
    "daily_loss_limit (reaching it denies)": Boundary(
        R.DAILY_LOSS_LIMIT,
        "daily_loss_limit 500",
        order(),
        order(),
        "-500",
        limits=Limits(daily_loss_limit=D(500)),
        view_at=view(realised_pnl_today=D("-499.99")),
        view_beyond=view(realised_pnl_today=D("-500")),
    ),
    "price_collar_bps above": Boundary(
        R.PRICE_COLLAR,
        "price_collar_bps 50",
        limit_order("buy", "1", "100.50"),
        limit_order("buy", "1", "100.51"),
        "51.00 bps",
        limits=Limits(price_collar_bps=D(50)),
    ),
    "price_collar_bps below": Boundary(
        R.PRICE_COLLAR,
        "price_collar_bps 50",
        limit_order("sell", "1", "99.50"),
        limit_order("sell", "1", "99.49"),
        "51.00 bps",
        limits=Limits(price_collar_bps=D(50)),
    ),
    "price_collar_bps on a stop-limit": Boundary(
        R.PRICE_COLLAR,
        "price_collar_bps 2.5",
        order("buy", "1", OrderType.STOP_LIMIT, limit="100.025", stop="100"),
        order("buy", "1", OrderType.STOP_LIMIT, limit="100.026", stop="100"),
        "2.60 bps",
        limits=Limits(price_collar_bps=D("2.5")),
    ),
    "max_orders_per_second": Boundary(
        R.ORDER_RATE,
        "max_orders_per_second 3",
        order(),
        order(),
        "approval 4",
        limits=Limits(max_orders_per_second=3),
        view_at=view(recent_approvals=ago(0.9, 0.5, 1, 5)),  # 1 s ago is out of the window
        view_beyond=view(recent_approvals=ago(0.9, 0.5, 0)),  # now is in it
    ),
    "max_orders_per_minute": Boundary(
        R.ORDER_RATE,
        "max_orders_per_minute 3",
        order(),
        order(),
        "approval 4",
        limits=Limits(max_orders_per_minute=3),
        view_at=view(recent_approvals=ago(59.999, 30, 60, 61)),
        view_beyond=view(recent_approvals=ago(59.999, 30, 0)),
    ),
    "min_quantity": Boundary(
        R.INSTRUMENT_MINIMUM,
        "min_quantity 0.01",
        order(quantity="0.01"),
        order(quantity="0.009"),
        "0.009",
        rules=InstrumentRules(min_quantity=D("0.01")),
    ),
    "min_notional": Boundary(
        R.INSTRUMENT_MINIMUM,
        "min_notional 10",
        order(quantity="0.1"),
        order(quantity="0.099"),
        "9.9",
        rules=InstrumentRules(min_notional=D(10)),
    ),
    "price_step 0.01": Boundary(
        R.INSTRUMENT_PRECISION,
        "price_step 0.01",
        limit_order("buy", "1", "100.01"),
        limit_order("buy", "1", "100.005"),
        "100.005",
        rules=InstrumentRules(price_step=D("0.01")),
    ),
    "price_step of a stop price": Boundary(
        R.INSTRUMENT_PRECISION,
        "price_step 0.5",
        order("sell", "1", OrderType.STOP, stop="99.5"),
        order("sell", "1", OrderType.STOP, stop="99.25"),
        "stop price 99.25",
        rules=InstrumentRules(price_step=D("0.5")),
    ),
    "max_quantity": Boundary(
        R.INSTRUMENT_MAXIMUM,
        "max_quantity 10 of binance:BTC/USDT",
        order(quantity="10"),
        order(quantity="10.001"),
        "quantity 10.001",
        rules=InstrumentRules(max_quantity=D(10)),
    ),
    "max_price of a limit price": Boundary(
        R.INSTRUMENT_MAXIMUM,
        "max_price 1000 of binance:BTC/USDT",
        limit_order("sell", "1", "1000"),
        limit_order("sell", "1", "1000.01"),
        "limit price 1000.01",
        rules=InstrumentRules(max_price=D(1000)),
    ),
    "max_price of a stop price": Boundary(
        R.INSTRUMENT_MAXIMUM,
        "max_price 1000",
        order("buy", "1", OrderType.STOP, stop="1000"),
        order("buy", "1", OrderType.STOP, stop="1000.01"),
        "stop price 1000.01",
        rules=InstrumentRules(max_price=D(1000)),
    ),
    "max_notional": Boundary(
        R.INSTRUMENT_MAXIMUM,
        "max_notional 1000",
        order(quantity="10"),
        order(quantity="10.01"),
        "notional 1001",
        rules=InstrumentRules(max_notional=D(1000)),
    ),
    "price_collar_bps on a stop price": Boundary(
        R.PRICE_COLLAR,
        "price_collar_bps 50",
        order("sell", "1", OrderType.STOP, stop="99.50"),
        order("sell", "1", OrderType.STOP, stop="99.49"),
        "stop price 99.49 is 51.00 bps",
        limits=Limits(price_collar_bps=D(50)),
    ),
    "price_collar_bps on a stop-limit's stop price": Boundary(
        R.PRICE_COLLAR,
        "price_collar_bps 50",
        order("buy", "1", OrderType.STOP_LIMIT, limit="100", stop="100.50"),
        order("buy", "1", OrderType.STOP_LIMIT, limit="100", stop="100.51"),
        "stop price 100.51 is 51.00 bps",
        limits=Limits(price_collar_bps=D(50)),
    ),
    "quantity_step 0.001": Boundary(
        R.INSTRUMENT_PRECISION,
        "quantity_step 0.001",
        order(quantity="1.001"),
        order(quantity="1.0005"),
        "1.0005",
        rules=InstrumentRules(quantity_step=D("0.001")),
    ),
}


@pytest.mark.parametrize("case", BOUNDARIES.values(), ids=BOUNDARIES.keys())
def test_each_check_passes_at_its_boundary(case: Boundary) -> None:
    assert check(case.at, case.view_at, case.limits, case.rules, T0) is None


@pytest.mark.parametrize("case", BOUNDARIES.values(), ids=BOUNDARIES.keys())
def test_each_check_denies_one_step_beyond_and_names_the_limit(case: Boundary) -> None:
    denial = check(case.beyond, case.view_beyond or case.view_at, case.limits, case.rules, T0)
    assert denial is not None
    assert denial.reason == case.reason
    assert case.names in denial.message
    assert case.shows in denial.message
    assert len(denial.message) <= 500


def test_no_limits_no_rules_approve_anything() -> None:
    big = order("sell", "1000000")
    assert check(big, view(open_orders=10_000), Limits(), None, T0) is None


# ---- the check order --------------------------------------------------------------------------


def test_a_kill_switched_account_hears_of_the_switch_not_of_its_oversized_order() -> None:
    the_view = view(kill_switch=True)
    denial = check(order(quantity="5"), the_view, Limits(max_order_quantity=D(1)), None, T0)
    assert denial is not None and denial.reason == R.KILL_SWITCH


# Each check the everything-broken order fails, in check's order, and how to mend it.
CHECK_ORDER: list[tuple[DenialReason, str, dict[str, Any]]] = [
    (R.KILL_SWITCH, "view", {"global_kill_switch": False}),
    (R.KILL_SWITCH, "view", {"kill_switch": False}),
    (R.TRADING_HALTED, "view", {"state": TradingState.REDUCING}),
    (R.NO_MARKET_PRICE, "view", {"prices": {BTC: D(100)}}),  # the collar needs a last price
    (R.INSTRUMENT_PRECISION, "order", {"limit_price": D(200)}),
    (R.INSTRUMENT_PRECISION, "order", {"quantity": D(5)}),
    (R.INSTRUMENT_MINIMUM, "rules", {"min_quantity": None}),
    (R.INSTRUMENT_MAXIMUM, "rules", {"max_quantity": None}),
    (R.INSTRUMENT_MAXIMUM, "rules", {"max_price": None}),
    (R.INSTRUMENT_MAXIMUM, "rules", {"max_notional": None}),
    (R.MAX_ORDER_QUANTITY, "limits", {"max_order_quantity": None}),
    (R.MAX_ORDER_NOTIONAL, "limits", {"max_order_notional": None}),
    (R.REDUCE_ONLY, "view", {"state": TradingState.ACTIVE}),
    (R.DAILY_LOSS_LIMIT, "view", {"realised_pnl_today": D(0)}),
    (R.MAX_POSITION, "limits", {"max_position": None}),
    (R.MAX_GROSS_EXPOSURE, "limits", {"max_gross_exposure": None}),
    (R.MAX_OPEN_ORDERS, "limits", {"max_open_orders": None}),
    (R.PRICE_COLLAR, "limits", {"price_collar_bps": None}),
    (R.ORDER_RATE, "limits", {"max_orders_per_second": None}),
    (R.ORDER_RATE, "limits", {"max_orders_per_minute": None}),
]


def test_the_checks_run_in_the_documented_order() -> None:
    """Break every check at once, then mend them one at a time: the first failure wins, so the
    reasons come out in check's order."""
    inputs: dict[str, Any] = {
        "order": limit_order("buy", "5.5", "200.005"),
        "view": view(
            global_kill_switch=True,
            kill_switch=True,
            state=TradingState.HALTED,
            prices={},
            realised_pnl_today=D(-9),
            open_orders=9,
            recent_approvals=ago(0.5, 30),
        ),
        "limits": replace(every_limit(1), max_orders_per_minute=2),
        "rules": InstrumentRules(
            price_step=D("0.01"),
            quantity_step=D(1),
            min_quantity=D(10),
            max_quantity=D(1),
            max_price=D(100),
            max_notional=D(1),
        ),
    }
    seen = []
    for _, part, mend in CHECK_ORDER:
        denial = check(**inputs, now=T0)
        assert denial is not None
        seen.append(denial.reason)
        current = inputs[part]
        inputs[part] = (
            current.model_copy(update=mend) if part == "order" else replace(current, **mend)
        )
    assert seen == [reason for reason, _, _ in CHECK_ORDER]
    assert check(**inputs, now=T0) is None


# ---- reducing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("reduce_only", [False, True], ids=["state REDUCING", "reduce_only order"])
@pytest.mark.parametrize(
    ("position", "pending", "the_order", "allowed"),
    [
        pytest.param("5", ("0", "0"), order("sell", "3"), True, id="long, sell part"),
        pytest.param("5", ("0", "0"), order("sell", "5"), True, id="long, sell all"),
        pytest.param("5", ("0", "0"), order("sell", "5.001"), False, id="long, flip"),
        pytest.param("5", ("0", "0"), order("buy", "1"), False, id="long, increase"),
        pytest.param("5", ("4", "2"), order("sell", "3"), True, id="long, pending sells fit"),
        pytest.param("5", ("0", "3"), order("sell", "3"), False, id="long, pending sells flip"),
        pytest.param("-5", ("0", "0"), order("buy", "5"), True, id="short, buy all"),
        pytest.param("-5", ("0", "0"), order("buy", "6"), False, id="short, flip"),
        pytest.param("-5", ("0", "0"), order("sell", "1"), False, id="short, increase"),
        pytest.param("-5", ("2", "0"), limit_order("buy", "3", "99"), True, id="short, limit buy"),
        pytest.param("0", ("0", "0"), order("sell", "1"), False, id="flat"),
    ],
)
def test_reducing_allows_only_orders_that_reduce_without_flipping(
    reduce_only: bool,
    position: str,
    pending: tuple[str, str],
    the_order: SubmitOrder,
    allowed: bool,
) -> None:
    state = TradingState.ACTIVE if reduce_only else TradingState.REDUCING
    the_view = view(
        state=state,
        positions={BTC: D(position)},
        pending={BTC: (D(pending[0]), D(pending[1]))},
    )
    the_order = the_order.model_copy(update={"reduce_only": reduce_only})
    denial = check(the_order, the_view, Limits(), None, T0)
    if allowed:
        assert denial is None
    else:
        assert denial is not None and denial.reason == R.REDUCE_ONLY
        assert ("reduce_only" if reduce_only else "REDUCING") in denial.message


def test_reduces_means_closing_part_or_all_but_not_flipping() -> None:
    the_view = view(positions={BTC: D(2)})
    assert reduces(order("sell", "2"), the_view)
    assert not reduces(order("sell", "2.5"), the_view)
    assert not reduces(order("buy", "1"), the_view)


# ---- the daily loss ---------------------------------------------------------------------------

LOSS = Limits(daily_loss_limit=D(500))


@pytest.mark.parametrize(
    ("pnl", "breached"),
    [("-500", True), ("-500.01", True), ("-499.99", False), ("0", False), ("100", False)],
)
def test_breaches_daily_loss_from_exactly_minus_the_limit(pnl: str, breached: bool) -> None:
    assert breaches_daily_loss(view(realised_pnl_today=D(pnl)), LOSS) is breached
    assert breaches_daily_loss(view(realised_pnl_today=D(pnl)), Limits()) is False


@pytest.mark.parametrize(
    ("the_order", "denied"),
    [
        pytest.param(order("buy", "1"), True, id="increase"),
        pytest.param(order("sell", "3.5"), True, id="flip"),
        pytest.param(order("sell", "3"), False, id="close"),
        pytest.param(order("sell", "1"), False, id="reduce"),
    ],
)
def test_at_the_daily_loss_limit_only_reducing_orders_pass(
    the_order: SubmitOrder, denied: bool
) -> None:
    the_view = view(realised_pnl_today=D(-500), positions={BTC: D(3)})
    denial = check(the_order, the_view, LOSS, None, T0)
    assert (denial.reason if denial else None) == (R.DAILY_LOSS_LIMIT if denied else None)


# ---- pending orders and the position limits --------------------------------------------------


def test_two_orders_that_each_fit_alone_do_not_both_pass() -> None:
    limits = Limits(max_position=D(5))
    first = second = order("buy", "3")
    assert check(first, VIEW, limits, None, T0) is None
    # the service counts the approved first order as pending right away
    with_first = view(pending={BTC: (D(3), D(0))}, open_orders=1)
    denial = check(second, with_first, limits, None, T0)
    assert denial is not None and denial.reason == R.MAX_POSITION
    assert "6" in denial.message


def test_pending_orders_of_the_other_side_do_not_make_room() -> None:
    limits = Limits(max_position=D(5))
    the_view = view(positions={BTC: D(4)}, pending={BTC: (D(0), D(4))})
    denial = check(order("buy", "2"), the_view, limits, None, T0)
    assert denial is not None and denial.reason == R.MAX_POSITION


@pytest.mark.parametrize(
    ("limits", "the_view"),
    [
        pytest.param(
            Limits(max_position=D(5)), view(positions={BTC: D(10)}), id="max_position lowered"
        ),
        pytest.param(
            Limits(max_gross_exposure=D(500)), view(positions={BTC: D(10)}), id="prices moved"
        ),
        pytest.param(
            Limits(max_gross_exposure=D(500)),
            view(positions={BTC: D(10), ETH: D(1)}, prices={BTC: D(100)}),
            id="an unpriced instrument",
        ),
    ],
)
def test_a_reducing_order_passes_an_account_over_its_position_limits(
    limits: Limits, the_view: AccountView
) -> None:
    assert check(order("sell", "2"), the_view, limits, None, T0) is None
    flip = check(order("sell", "16"), the_view, limits, None, T0)  # ends at -6, still over
    assert flip is not None and flip.reason in (
        R.MAX_POSITION,
        R.MAX_GROSS_EXPOSURE,
        R.NO_MARKET_PRICE,
    )


# ---- no market price --------------------------------------------------------------------------

NO_PRICE = view(prices={})


@pytest.mark.parametrize(
    ("the_order", "the_view", "limits", "denied"),
    [
        pytest.param(order(), NO_PRICE, Limits(), True, id="market"),
        pytest.param(
            order("sell", "1", OrderType.STOP, stop="90"), NO_PRICE, Limits(), True, id="stop"
        ),
        pytest.param(
            limit_order("buy", "1", "90"), NO_PRICE, Limits(), False, id="limit, no collar"
        ),
        pytest.param(
            limit_order("buy", "1", "90"),
            NO_PRICE,
            Limits(price_collar_bps=D(100)),
            True,
            id="limit, collared",
        ),
        pytest.param(
            order("buy", "1", OrderType.STOP_LIMIT, limit="91", stop="90"),
            NO_PRICE,
            Limits(price_collar_bps=D(100)),
            True,
            id="stop-limit, collared",
        ),
        pytest.param(
            order(),
            view(positions={ETH: D(1)}),
            Limits(max_gross_exposure=D(10**9)),
            True,
            id="another position unpriced",
        ),
        pytest.param(
            order(),
            view(pending={ETH: (D(0), D(1))}),
            Limits(max_gross_exposure=D(10**9)),
            True,
            id="another pending unpriced",
        ),
        pytest.param(
            order(),
            view(positions={ETH: D(0)}, pending={ETH: (D(0), D(0))}),
            Limits(max_gross_exposure=D(10**9)),
            False,
            id="another flat unpriced",
        ),
        pytest.param(
            order(),
            view(positions={ETH: D(1)}),
            Limits(),
            False,
            id="another unpriced, no exposure limit",
        ),
    ],
)
def test_no_market_price(
    the_order: SubmitOrder, the_view: AccountView, limits: Limits, denied: bool
) -> None:
    denial = check(the_order, the_view, limits, None, T0)
    assert (denial.reason if denial else None) == (R.NO_MARKET_PRICE if denied else None)
    if denial:
        assert ETH in denial.message or BTC in denial.message


def test_an_unpriced_instrument_of_the_order_is_valued_at_its_limit_price() -> None:
    limits = Limits(max_gross_exposure=D(1000))
    the_view = view(prices={}, positions={BTC: D(5)})
    assert check(limit_order("buy", "5", "100"), the_view, limits, None, T0) is None
    denial = check(limit_order("buy", "5", "100.01"), the_view, limits, None, T0)
    assert denial is not None and denial.reason == R.MAX_GROSS_EXPOSURE
    assert "1000.1" in denial.message  # 10 x 100.01


def test_reference_price() -> None:
    assert reference_price(order(), VIEW) == D(100)
    assert reference_price(order("sell", "1", OrderType.STOP, stop="90"), VIEW) == D(100)
    assert reference_price(limit_order("buy", "1", "95"), VIEW) == D(95)
    stop_limit = order("buy", "1", OrderType.STOP_LIMIT, limit="96", stop="95")
    assert reference_price(stop_limit, NO_PRICE) == D(96)
    assert reference_price(order(), NO_PRICE) is None


# ---- precision --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "value", "ok"),
    [
        ("0.01", "100.01", True),
        ("0.01", "100.1", True),
        ("0.01", "100.010000", True),
        ("0.01", "100.011", False),
        ("0.001", "0.123", True),
        ("0.001", "0.1234", False),
        ("0.05", "100.15", True),
        ("0.05", "100.12", False),
        ("1E+1", "120", True),
        ("1E+1", "125", False),
    ],
)
def test_precision_uses_exact_decimal_steps(step: str, value: str, ok: bool) -> None:
    expected = None if ok else R.INSTRUMENT_PRECISION
    prices = InstrumentRules(price_step=D(step))
    quantities = InstrumentRules(quantity_step=D(step))
    for denial in (
        check(limit_order("buy", "1", value), VIEW, Limits(), prices, T0),
        check(order(quantity=value), VIEW, Limits(), quantities, T0),
    ):
        assert (denial.reason if denial else None) == expected


# ---- the rate windows -------------------------------------------------------------------------


def test_rate_windows_are_open_at_the_start_and_closed_at_now() -> None:
    limits = Limits(max_orders_per_second=2, max_orders_per_minute=3)
    # 1 s ago is out of the second's window, 60 s ago out of the minute's
    assert check(order(), view(recent_approvals=ago(1, 60, 0.5)), limits, None, T0) is None
    denial = check(order(), view(recent_approvals=ago(1, 59.999, 0.5)), limits, None, T0)
    assert denial is not None and "max_orders_per_minute 3" in denial.message
    denial = check(order(), view(recent_approvals=ago(0.5, 0)), limits, None, T0)
    assert denial is not None and "max_orders_per_second 2" in denial.message


# ---- effective limits -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("account", "instrument", "expected"),
    [
        pytest.param(Limits(max_position=D(5)), None, Limits(max_position=D(5)), id="account only"),
        pytest.param(
            Limits(), Limits(max_position=D(5)), Limits(max_position=D(5)), id="instrument only"
        ),
        pytest.param(
            Limits(max_position=D(5)),
            Limits(max_position=D(3)),
            Limits(max_position=D(3)),
            id="instrument stricter",
        ),
        pytest.param(
            Limits(max_position=D(3)),
            Limits(max_position=D(5)),
            Limits(max_position=D(3)),
            id="account stricter",
        ),
        pytest.param(
            Limits(
                max_order_quantity=D(1),
                max_open_orders=10,
                price_collar_bps=D(50),
                max_orders_per_minute=60,
            ),
            Limits(
                max_order_notional=D(100),
                max_open_orders=4,
                price_collar_bps=D("25.5"),
                max_orders_per_second=2,
            ),
            Limits(
                max_order_quantity=D(1),
                max_order_notional=D(100),
                max_open_orders=4,
                price_collar_bps=D("25.5"),
                max_orders_per_second=2,
                max_orders_per_minute=60,
            ),
            id="field by field",
        ),
    ],
)
def test_effective_takes_the_stricter_limit(
    account: Limits, instrument: Limits | None, expected: Limits
) -> None:
    assert effective(account, instrument) == expected


def test_effective_covers_every_field() -> None:
    loose, tight = every_limit(10), every_limit(1)
    assert effective(loose, tight) == tight
    assert effective(tight, loose) == tight


def test_effective_takes_the_stricter_of_every_layer() -> None:
    defaults = Limits(max_order_notional=D(100_000), price_collar_bps=D(1000))
    own = Limits(max_order_notional=D(5000), max_position=D(3))
    per_instrument = Limits(max_position=D(2), price_collar_bps=D(2000))
    assert effective(defaults, own, per_instrument) == Limits(
        max_order_notional=D(5000), max_position=D(2), price_collar_bps=D(1000)
    )
    assert effective(defaults, None, None) == defaults
    assert effective() == Limits()


# ---- ceilings: the defaults and an admin's limits ----------------------------------------------

DEFAULTS = Limits(
    max_order_notional=D(100_000), max_order_quantity=D(1_000_000), price_collar_bps=D(1000)
)


def test_an_admins_limits_replace_the_defaults_field_by_field_higher_or_lower() -> None:
    admin = Limits(max_order_notional=D(500_000), price_collar_bps=D(200), max_open_orders=50)
    assert ceilings(DEFAULTS, admin) == Limits(
        max_order_notional=D(500_000),  # raised
        max_order_quantity=D(1_000_000),  # the default: the admin set none
        price_collar_bps=D(200),  # lowered
        max_open_orders=50,  # a limit the defaults do not have
    )
    assert ceilings(DEFAULTS, None) == DEFAULTS
    assert ceilings(Limits(), None) == Limits()  # defaults turned off, no admin: no ceilings


def test_over_ceilings_names_each_limit_above_its_ceiling_and_nothing_at_it() -> None:
    own = Limits(
        max_order_notional=D("100000.01"),  # above
        max_order_quantity=D(1_000_000),  # at: allowed
        price_collar_bps=D(10),  # under: allowed
        max_position=D(10) ** 20,  # no ceiling: anything goes
    )
    assert over_ceilings(own, DEFAULTS) == {"max_order_notional": (D("100000.01"), D(100_000))}
    assert over_ceilings(Limits(), DEFAULTS) == {}


ABSURD = "99999999999999999"  # 99,999,999,999,999,999
BOUNDS = InstrumentRules(max_quantity=D(10) ** 12, max_price=D(10) ** 12)


@pytest.mark.parametrize(
    "limits",
    [
        pytest.param(Limits(), id="no limits at all"),
        pytest.param(DEFAULTS, id="the defaults"),
        pytest.param(every_limit(10**29), id="every limit as wide as it goes"),
    ],
)
def test_absurd_orders_are_beyond_the_default_bounds_whatever_the_limits(limits: Limits) -> None:
    rules = rules_in_force(None, None, BOUNDS)
    huge_quantity = check(limit_order("buy", ABSURD, "1"), VIEW, limits, rules, T0)
    huge_price = check(limit_order("buy", "1", ABSURD), VIEW, limits, rules, T0)
    huge_stop = check(order("sell", "1", OrderType.STOP, stop=ABSURD), VIEW, limits, rules, T0)
    assert [d.reason if d else None for d in (huge_quantity, huge_price, huge_stop)] == [
        R.INSTRUMENT_MAXIMUM
    ] * 3
    assert huge_quantity is not None and huge_price is not None and huge_stop is not None
    assert f"quantity {ABSURD} exceeds the max_quantity 1000000000000" in huge_quantity.message
    assert f"limit price {ABSURD} exceeds the max_price 1000000000000" in huge_price.message
    assert f"stop price {ABSURD} exceeds the max_price" in huge_stop.message


@pytest.mark.parametrize(
    ("the_order", "reason", "shows"),
    [
        pytest.param(order(quantity="1000"), None, "", id="100,000 at the last price 100: passes"),
        pytest.param(
            order(quantity="1000.01"), R.MAX_ORDER_NOTIONAL, "100001", id="over the notional"
        ),
        pytest.param(
            limit_order("buy", "1000001", "0.01"),
            R.MAX_ORDER_QUANTITY,
            "1000001",
            id="a size a made-up price hides",
        ),
        pytest.param(limit_order("buy", "1", "110"), None, "", id="10% from the last price"),
        pytest.param(
            limit_order("buy", "1", "110.01"), R.PRICE_COLLAR, "1001.00 bps", id="beyond 10%"
        ),
        pytest.param(
            order("sell", "1", OrderType.STOP, stop="1000"),
            R.PRICE_COLLAR,
            "stop price 1000 is 90000.00 bps",
            id="a stop ten times the price",
        ),
    ],
)
def test_the_default_limits_on_a_paper_account_at_a_last_price_of_100(
    the_order: SubmitOrder, reason: DenialReason | None, shows: str
) -> None:
    denial = check(the_order, VIEW, DEFAULTS, rules_in_force(None, None, BOUNDS), T0)
    assert (denial.reason if denial else None) == reason
    assert denial is None or shows in denial.message


def test_a_price_far_beyond_the_last_one_is_denied_by_the_collar_not_by_a_crash() -> None:
    """The collar's message computes the distance in bps: 10^17 from a last price of 10^-8 is a
    number of over 28 digits, which the default Decimal context cannot round."""
    tiny = view(prices={BTC: D("0.00000001")})
    collar = Limits(price_collar_bps=D(1000))
    denial = check(limit_order("sell", "1", ABSURD), tiny, collar, None, T0)
    assert denial is not None and denial.reason == R.PRICE_COLLAR


# ---- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "error"),
    [
        pytest.param(lambda: Limits(max_order_quantity=D(0)), ValueError, id="zero quantity"),
        pytest.param(lambda: Limits(max_position=D(-1)), ValueError, id="negative position"),
        pytest.param(lambda: Limits(daily_loss_limit=D(-500)), ValueError, id="negative loss"),
        pytest.param(lambda: Limits(max_open_orders=0), ValueError, id="zero open orders"),
        pytest.param(lambda: Limits(price_collar_bps=D("NaN")), ValueError, id="NaN"),
        pytest.param(lambda: Limits(max_gross_exposure=D("Infinity")), ValueError, id="infinity"),
        pytest.param(lambda: Limits(max_order_notional=1.5), TypeError, id="float"),
        pytest.param(lambda: Limits(max_orders_per_second=True), TypeError, id="bool"),
        pytest.param(lambda: Limits(max_orders_per_minute=D(5)), TypeError, id="Decimal count"),
        pytest.param(lambda: InstrumentRules(price_step=D(0)), ValueError, id="zero step"),
        pytest.param(lambda: InstrumentRules(min_notional=D("-5")), ValueError, id="negative min"),
        pytest.param(lambda: view(open_orders=-1), ValueError, id="negative open orders"),
        pytest.param(lambda: view(pending={BTC: (D(-1), D(0))}), ValueError, id="negative pending"),
        pytest.param(lambda: view(prices={BTC: D(0)}), ValueError, id="zero price"),
        pytest.param(lambda: view(recent_approvals=(datetime(2026, 1, 5),)), ValueError, id="naive time"),
        pytest.param(lambda: Denial(R.INVALID_ORDER, "x" * 501), ValueError, id="long message"),
        pytest.param(lambda: Denial(R.INVALID_ORDER, ""), ValueError, id="empty message"),
        pytest.param(lambda: check(order(), VIEW, Limits(), None, datetime(2026, 1, 5)), ValueError, id="naive now"),
    ],
)  # fmt: skip
def test_invalid_inputs_are_refused(make: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        make()


# ---- the trading state ------------------------------------------------------------------------

A, RD, H = TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED
Why = TradingStateReason
LOSS_REACHED = DailyLossReached()
ENGAGE, RELEASE = KillSwitchSet(engaged=True), KillSwitchSet(engaged=False)


def controls(state: TradingState, kill_switch: bool = False) -> TradingControls:
    return TradingControls(state, kill_switch)


# (controls before, cause, controls after, trading state before -> after, reason)
TRANSITIONS: list[Any] = [
    # every edge between the three states, by each cause that takes it
    pytest.param(controls(A), LOSS_REACHED, controls(RD), (A, RD), Why.DAILY_LOSS_LIMIT, id="A-R loss"),
    pytest.param(controls(A), StateSet(RD), controls(RD), (A, RD), Why.MANUAL, id="A-R admin"),
    pytest.param(controls(RD), StateSet(A), controls(A), (RD, A), Why.MANUAL, id="R-A resume"),
    pytest.param(controls(A), ENGAGE, controls(A, True), (A, H), Why.KILL_SWITCH_ENGAGED, id="A-H switch"),
    pytest.param(controls(A), StateSet(H), controls(H), (A, H), Why.MANUAL, id="A-H admin"),
    pytest.param(controls(A, True), RELEASE, controls(A), (H, A), Why.KILL_SWITCH_RELEASED, id="H-A switch"),
    pytest.param(controls(H), StateSet(A), controls(A), (H, A), Why.MANUAL, id="H-A resume"),
    pytest.param(controls(RD), ENGAGE, controls(RD, True), (RD, H), Why.KILL_SWITCH_ENGAGED, id="R-H switch"),
    pytest.param(controls(RD), StateSet(H), controls(H), (RD, H), Why.MANUAL, id="R-H admin"),
    pytest.param(controls(RD, True), RELEASE, controls(RD), (H, RD), Why.KILL_SWITCH_RELEASED, id="H-R switch"),
    pytest.param(controls(H), StateSet(RD), controls(RD), (H, RD), Why.MANUAL, id="H-R admin"),
    # the platform's: its global kill switch
    pytest.param(controls(A), KillSwitchSet(True, platform=True), controls(A, True), (A, H), Why.GLOBAL_KILL_SWITCH_ENGAGED, id="platform A-H"),
    pytest.param(controls(A, True), KillSwitchSet(False, platform=True), controls(A), (H, A), Why.GLOBAL_KILL_SWITCH_RELEASED, id="platform H-A"),
    # nothing changes: a limit never loosens a state nor lifts a halt; a switch set as it was
    pytest.param(controls(RD), LOSS_REACHED, controls(RD), (RD, RD), Why.DAILY_LOSS_LIMIT, id="loss when R"),
    pytest.param(controls(H), LOSS_REACHED, controls(H), (H, H), Why.DAILY_LOSS_LIMIT, id="loss when H"),
    pytest.param(controls(A, True), ENGAGE, controls(A, True), (H, H), Why.KILL_SWITCH_ENGAGED, id="engaged again"),
    pytest.param(controls(RD), RELEASE, controls(RD), (RD, RD), Why.KILL_SWITCH_RELEASED, id="released again"),
    pytest.param(controls(A), StateSet(A), controls(A), (A, A), Why.MANUAL, id="A set again"),
    pytest.param(controls(H, True), StateSet(H), controls(H, True), (H, H), Why.MANUAL, id="H set again"),
    # what the account returns to changes under its kill switch, its trading state does not
    pytest.param(controls(A, True), LOSS_REACHED, controls(RD, True), (H, H), Why.DAILY_LOSS_LIMIT, id="loss under switch"),
    pytest.param(controls(RD, True), StateSet(A), controls(A, True), (H, H), Why.MANUAL, id="resume under switch"),
    pytest.param(controls(H, True), RELEASE, controls(H), (H, H), Why.KILL_SWITCH_RELEASED, id="released, still halted"),
]  # fmt: skip


@pytest.mark.parametrize(("before", "cause", "after", "states", "reason"), TRANSITIONS)
def test_a_transition_gives_the_new_controls_and_whether_the_state_changed(
    before: TradingControls,
    cause: StateCause,
    after: TradingControls,
    states: tuple[TradingState, TradingState],
    reason: TradingStateReason,
) -> None:
    change = transition(before, cause)
    assert (change.before, change.after, change.reason) == (before, after, reason)
    assert (change.old_state, change.new_state) == states
    assert change.changed is (states[0] is not states[1])
    assert change.controls_changed is (before != after)


def test_the_transitions_cover_every_edge_between_the_states() -> None:
    edges = {
        (param.values[3][0], param.values[3][1])
        for param in TRANSITIONS
        if param.values[3][0] is not param.values[3][1]
    }
    assert edges == {(a, b) for a in TradingState for b in TradingState if a is not b}


@pytest.mark.parametrize(("before", "cause", "after", "states", "reason"), TRANSITIONS)
def test_a_transition_makes_an_event_exactly_when_the_state_changed(
    before: TradingControls,
    cause: StateCause,
    after: TradingControls,
    states: tuple[TradingState, TradingState],
    reason: TradingStateReason,
) -> None:
    platform = isinstance(cause, KillSwitchSet) and cause.platform
    account, admin = None if platform else uuid4(), uuid4()
    event = transition(before, cause).event(account, T0, by=admin, message="drill")
    if states[0] is states[1]:
        assert event is None
        return
    assert event == TradingStateChanged(
        account_id=account,
        old_state=states[0],
        new_state=states[1],
        reason=reason,
        message="drill",
        changed_by=admin,
        changed_at=T0,
    )


def test_a_state_change_of_risk_alone_names_no_user_and_a_long_message_is_cut() -> None:
    event = transition(controls(A), LOSS_REACHED).event(uuid4(), T0, message="x" * 600)
    assert event is not None and event.changed_by is None
    assert event.message is not None and len(event.message) == 500
    assert event.message.endswith("…")


def test_the_kill_switch_halts_whatever_the_state_and_releases_to_it() -> None:
    for state in TradingState:
        assert controls(state, True).trading_state is H
        assert controls(state).trading_state is state


# ---- cancels ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "the_view",
    [VIEW, view(kill_switch=True, global_kill_switch=True), view(state=TradingState.HALTED)],
)
def test_cancels_are_always_allowed(the_view: AccountView) -> None:
    assert check_cancel(the_view) is None


# ---- position bookkeeping ---------------------------------------------------------------------


def test_position_bookkeeping_is_the_trading_librarys() -> None:
    """apply_fill moved to trademesh_trading.positions (tested there); the decider still imports
    it from the engine."""
    assert (apply_fill, PositionUpdate) == (positions.apply_fill, positions.PositionUpdate)


# ---- the contract -----------------------------------------------------------------------------
