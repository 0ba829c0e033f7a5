"""The buying-power rule, worked out by hand, and its edge cases over many random accounts."""

from __future__ import annotations

import random
from decimal import Decimal as D

import pytest
from trademesh_trading.buying_power import (
    AccountTerms,
    Holdings,
    MarginMode,
    Shortfall,
    at_venue,
    check,
    check_and_reserve,
    check_and_reserve_alone,
    order_price,
    reservation,
    venue_moves,
)
from trademesh_trading.currencies import currencies_of

pytestmark = pytest.mark.unit

CASH = AccountTerms(fee_bps=D(10))
MARGIN = AccountTerms(MarginMode.MARGIN, max_leverage=D(2), allow_short=True, fee_bps=D(10))


def test_cash_buy_that_costs_exactly_the_cash_fits() -> None:
    # 9.99 x 1000 = 9990, fee 10 bps = 9.99: 9999.99 of 9999.99.
    holdings = Holdings(cash=D("9999.99"))
    assert (
        check(CASH, holdings, instrument_id="X", side="buy", quantity=D("9.99"), price=D(1000))
        is None
    )


def test_cash_buy_one_cent_over_is_short_with_the_figures() -> None:
    holdings = Holdings(cash=D("9999.98"))
    found = check(CASH, holdings, instrument_id="X", side="buy", quantity=D("9.99"), price=D(1000))
    assert found == Shortfall(D("9999.99"), D("9999.98"), "quote", MarginMode.CASH)
    assert "needs 9999.99" in found.message("X") and "9999.98 is available" in found.message("X")


def test_cash_buy_counts_what_pending_orders_reserve() -> None:
    holdings = Holdings(cash=D(10_000), reserved=D(6_000))
    found = check(CASH, holdings, instrument_id="X", side="buy", quantity=D(5), price=D(1000))
    assert found is not None and found.available == D(4_000) and found.needed == D(5_005)


def test_cash_sell_of_what_is_held_fits_without_cash() -> None:
    holdings = Holdings(cash=D(0), positions={"X": D(3)}, prices={"X": D(10)})
    assert check(CASH, holdings, instrument_id="X", side="sell", quantity=D(3), price=D(10)) is None


def test_cash_sell_beyond_holdings_without_shorting_is_short_in_base_units() -> None:
    holdings = Holdings(cash=D(1_000_000), positions={"X": D(3)}, selling={"X": D(1)})
    found = check(CASH, holdings, instrument_id="X", side="sell", quantity=D(3), price=D(10))
    assert found == Shortfall(D(3), D(2), "base", MarginMode.CASH)
    assert "does not allow shorting" in found.message("X")


def test_cash_short_when_allowed_needs_full_collateral() -> None:
    terms = AccountTerms(allow_short=True)
    holdings = Holdings(cash=D(100))
    assert (
        check(terms, holdings, instrument_id="X", side="sell", quantity=D(10), price=D(10)) is None
    )
    found = check(terms, holdings, instrument_id="X", side="sell", quantity=D(11), price=D(10))
    assert found is not None and found.needed == D(110) and found.available == D(100)


def test_margin_buy_up_to_leverage_times_equity() -> None:
    # equity 10,000 at 2x: 20,000 of exposure, 5,000 already held.
    holdings = Holdings(cash=D(5_000), positions={"Y": D(50)}, prices={"Y": D(100)})
    terms = AccountTerms(MarginMode.MARGIN, max_leverage=D(2))
    assert (
        check(terms, holdings, instrument_id="X", side="buy", quantity=D(15), price=D(1000)) is None
    )
    found = check(terms, holdings, instrument_id="X", side="buy", quantity=D(16), price=D(1000))
    assert found == Shortfall(D(16_000), D(15_000), "quote", MarginMode.MARGIN)


def test_margin_reducing_order_always_fits_even_underwater() -> None:
    holdings = Holdings(cash=D(-20_000), positions={"X": D(10)}, prices={"X": D(1000)})
    assert (
        check(MARGIN, holdings, instrument_id="X", side="sell", quantity=D(10), price=D(990))
        is None
    )


def test_margin_flip_pays_only_for_the_new_side() -> None:
    holdings = Holdings(cash=D(0), positions={"X": D(10)}, prices={"X": D(100)})
    # equity 1000, exposure 1000, room 1000 at 2x; selling 15 opens a short of 5 (500 + fee 1.5).
    assert reservation(
        MARGIN, holdings, instrument_id="X", side="sell", quantity=D(15), price=D(100)
    ) == D("501.5")
    assert (
        check(MARGIN, holdings, instrument_id="X", side="sell", quantity=D(15), price=D(100))
        is None
    )


def test_margin_position_without_a_price_cannot_be_valued() -> None:
    holdings = Holdings(cash=D(1000), positions={"Y": D(1)})
    with pytest.raises(ValueError, match="no last price for Y"):
        check(MARGIN, holdings, instrument_id="X", side="buy", quantity=D(1), price=D(1))


def test_cash_account_cannot_have_leverage() -> None:
    with pytest.raises(ValueError, match="max_leverage is 1"):
        AccountTerms(MarginMode.CASH, max_leverage=D(2))
    with pytest.raises(ValueError, match="at least 1"):
        AccountTerms(MarginMode.MARGIN, max_leverage=D("0.5"))


@pytest.mark.parametrize(
    ("side", "kind", "limit", "stop", "last", "price"),
    [
        ("buy", "LIMIT", D(90), None, D(100), D(90)),
        ("buy", "MARKET", None, None, D(100), D(101)),
        ("sell", "MARKET", None, None, D(100), D(99)),
        ("buy", "STOP", None, D(110), D(100), D("111.1")),
        ("sell", "STOP", None, D(90), D(100), D("89.1")),
        ("buy", "STOP_LIMIT", D(112), D(110), D(100), D(112)),
        ("buy", "MARKET", None, None, None, None),
    ],
)
def test_order_price_is_the_limit_or_the_collared_last(
    side: str, kind: str, limit: D | None, stop: D | None, last: D | None, price: D | None
) -> None:
    assert (
        order_price(side=side, order_type=kind, limit_price=limit, stop_price=stop, last=last)
        == price
    )  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", range(40))
def test_properties_over_random_accounts(seed: int) -> None:
    """Whatever the account: a fitting order leaves cash (cash mode) or exposure (margin mode)
    within bounds once reserved; the figures of a shortfall say needed > available; a smaller
    order never fails where a larger one of the same kind fits."""
    rng = random.Random(seed)
    mode = rng.choice([MarginMode.CASH, MarginMode.MARGIN])
    terms = AccountTerms(
        mode,
        max_leverage=D(1) if mode is MarginMode.CASH else D(rng.randint(1, 5)),
        allow_short=rng.random() < 0.5,
        fee_bps=D(rng.randint(0, 50)),
    )
    price = D(rng.randint(1, 10_000)) / 100
    position = D(rng.randint(-20, 20))
    holdings = Holdings(
        cash=D(rng.randint(0, 100_000)) / 10,
        positions={"X": position},
        prices={"X": price},
        reserved=D(rng.randint(0, 2_000)),
        selling={"X": D(rng.randint(0, 5))},
    )
    side = rng.choice(["buy", "sell"])
    quantity = D(rng.randint(1, 100))
    found = check(terms, holdings, instrument_id="X", side=side, quantity=quantity, price=price)  # type: ignore[arg-type]
    if found is not None:
        assert found.needed > found.available >= 0
        return
    cost = reservation(
        terms, holdings, instrument_id="X", side=side, quantity=quantity, price=price
    )  # type: ignore[arg-type]
    assert cost >= 0
    if cost and mode is MarginMode.CASH:
        assert holdings.cash - holdings.reserved - cost >= 0
    smaller = quantity - 1
    if smaller > 0:
        assert (
            check(terms, holdings, instrument_id="X", side=side, quantity=smaller, price=price)
            is None
        )  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", range(200))
def test_check_and_reserve_is_check_then_reservation(seed: int) -> None:
    """The one-pass form the backtester uses gives what check() and reservation() give."""
    rng = random.Random(seed)
    mode = rng.choice([MarginMode.CASH, MarginMode.MARGIN])
    terms = AccountTerms(
        mode,
        max_leverage=D(1) if mode is MarginMode.CASH else D(rng.randint(1, 5)),
        allow_short=rng.random() < 0.5,
        fee_bps=D(rng.randint(0, 50)),
    )
    price = D(rng.randint(1, 10_000)) / 100
    holdings = Holdings(
        cash=D(rng.randint(0, 100_000)) / 10,
        positions={"X": D(rng.randint(-20, 20)), "Y": D(rng.randint(-5, 5))},
        prices={"X": price, "Y": D(rng.randint(1, 500))},
        reserved=D(rng.randint(0, 2_000)),
        selling={"X": D(rng.randint(0, 5))},
        buying={"X": D(rng.randint(0, 5))},
    )
    side = rng.choice(["buy", "sell"])
    quantity = D(rng.randint(1, 100))
    order = {"instrument_id": "X", "side": side, "quantity": quantity, "price": price}
    short, reserved = check_and_reserve(terms, holdings, **order)  # type: ignore[arg-type]
    assert short == check(terms, holdings, **order)  # type: ignore[arg-type]
    assert reserved == (reservation(terms, holdings, **order) if short is None else 0)  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", range(400))
def test_check_and_reserve_alone_is_the_rule_on_a_one_instrument_account(seed: int) -> None:
    """The backtester's form, from plain figures, gives what check_and_reserve() gives on the
    same account as Holdings: the same shortfalls (refused where they were) and reservations."""
    rng = random.Random(seed)
    mode = rng.choice([MarginMode.CASH, MarginMode.MARGIN])
    terms = AccountTerms(
        mode,
        max_leverage=D(1) if mode is MarginMode.CASH else D(rng.randint(1, 5)),
        allow_short=rng.random() < 0.5,
        fee_bps=D(rng.randint(0, 50)),
    )
    cash = D(rng.randint(-1_000, 100_000)) / 10
    position = D(rng.choice([0, 0, rng.randint(-20, 20)])) / rng.choice([1, 10])
    mark = D(rng.randint(1, 10_000)) / 100
    reserved, selling, buying = (D(rng.choice([0, rng.randint(0, 2_000)])) for _ in range(3))
    price = mark * D(rng.randint(90, 110)) / 100
    side = rng.choice(["buy", "sell"])
    quantity = D(rng.randint(1, 100))
    holdings = Holdings(cash, {"X": position}, {"X": mark}, reserved, {"X": selling}, {"X": buying})
    order = {"side": side, "quantity": quantity, "price": price}
    expected = check_and_reserve(terms, holdings, instrument_id="X", **order)  # type: ignore[arg-type]
    alone = check_and_reserve_alone(
        terms,
        cash=cash,
        position=position,
        mark=mark,
        reserved=reserved,
        selling=selling,
        buying=buying,
        **order,  # type: ignore[arg-type]
    )
    assert alone == expected


def test_check_and_reserve_alone_refuses_and_reserves_as_worked_out_by_hand() -> None:
    # Margin 2x, 15,000 cash and 50 short at 100: equity 10,000, so 20,000 of exposure, 5,000 used.
    margin = AccountTerms(MarginMode.MARGIN, max_leverage=D(2), allow_short=True)
    figures = {"cash": D(15_000), "position": D(-50), "mark": D(100)}
    assert check_and_reserve_alone(
        margin, **figures, side="sell", quantity=D(151), price=D(100)
    ) == (Shortfall(D(15_100), D(15_000), "quote", MarginMode.MARGIN), D(0))
    assert check_and_reserve_alone(
        margin, **figures, side="sell", quantity=D(150), price=D(100)
    ) == (None, D(15_000))
    # Buying back the 50 and 10 more: the 10 need 1,000 (the 50 free 5,000 of exposure).
    assert check_and_reserve_alone(margin, **figures, side="buy", quantity=D(60), price=D(100)) == (
        None,
        D(1_000),
    )


def test_a_pending_buy_counts_as_held_for_a_sell() -> None:
    holdings = Holdings(cash=D(0), buying={"X": D(2)}, selling={"X": D(1)})
    assert check(CASH, holdings, instrument_id="X", side="sell", quantity=D(1), price=D(10)) is None
    found = check(CASH, holdings, instrument_id="X", side="sell", quantity=D(2), price=D(10))
    assert found == Shortfall(D(2), D(1), "base", MarginMode.CASH)


# ---- exchange accounts ----------------------------------------------------------------------

BTC = "binance:BTC/USDT"


@pytest.mark.parametrize(
    ("instrument", "pair"),
    [
        ("binance:BTC/USDT", ("BTC", "USDT")),
        ("binance:eth/btc", ("ETH", "BTC")),
        ("binance:BTC/USDT:USDT", ("BTC", "USDT")),
        ("nasdaq:GOOG", None),
        ("binance:/USDT", None),
        ("binance:BTC/", None),
    ],
)
def test_an_instruments_currencies_are_its_base_and_quote(
    instrument: str, pair: tuple[str, str] | None
) -> None:
    assert currencies_of(instrument) == pair


def test_an_exchange_account_buys_with_its_venue_cash_and_sells_what_the_venue_holds() -> None:
    """The venue holds 1000 USDT and 0.5 BTC; risk's own books say nothing is held."""
    booked = Holdings(cash=D(1000), positions={BTC: D(0)})
    holdings = at_venue(
        booked, instrument_id=BTC, currency="USDT", venue_holdings={"BTC": D("0.5")}
    )
    assert holdings is not None and holdings.positions[BTC] == D("0.5")
    terms = AccountTerms()
    assert (
        check(terms, holdings, instrument_id=BTC, side="sell", quantity=D("0.5"), price=D(60000))
        is None
    )
    over = check(terms, holdings, instrument_id=BTC, side="sell", quantity=D("0.6"), price=D(60000))
    assert over == Shortfall(D("0.6"), D("0.5"), "base", MarginMode.CASH)
    # 0.02 at 60000 is 1200: more than the venue's 1000.
    short = check(
        terms, holdings, instrument_id=BTC, side="buy", quantity=D("0.02"), price=D(60000)
    )
    assert short == Shortfall(D(1200), D(1000), "quote", MarginMode.CASH)


def test_an_exchange_accounts_base_not_held_at_the_venue_is_none() -> None:
    booked = Holdings(cash=D(1000), positions={BTC: D(2)})  # risk's books: bought elsewhere
    holdings = at_venue(booked, instrument_id=BTC, currency="USDT", venue_holdings={"ETH": D(1)})
    assert holdings is not None and holdings.positions[BTC] == D(0)
    # Unknown holdings (no snapshot yet): the booked position stands.
    kept = at_venue(booked, instrument_id=BTC, currency="USDT", venue_holdings=None)
    assert kept is booked


def test_an_order_quoted_in_another_currency_is_not_checked_for_the_accounts_cash() -> None:
    booked = Holdings(cash=D(1000))
    assert (
        at_venue(booked, instrument_id="binance:ETH/BTC", currency="USDT", venue_holdings={})
        is None
    )
    assert at_venue(booked, instrument_id="nasdaq:GOOG", currency="USD", venue_holdings={}) is None


def test_a_fill_moves_the_venues_base_quote_and_fee_currency() -> None:
    buy = venue_moves(
        BTC, side="buy", quantity=D("0.0015"), price=D(67504), fee=D("0.1"), fee_currency="USDT"
    )
    assert buy == {"BTC": D("0.0015"), "USDT": D("-101.256") - D("0.1")}
    sell = venue_moves(
        BTC, side="sell", quantity=D(1), price=D(100), fee=D("0.01"), fee_currency="bnb"
    )
    assert sell == {"BTC": D(-1), "USDT": D(100), "BNB": D("-0.01")}
    rebate = venue_moves(
        BTC, side="buy", quantity=D(1), price=D(100), fee=D(-1), fee_currency="USDT"
    )
    assert rebate == {"BTC": D(1), "USDT": D(-99)}
    assert (
        venue_moves(
            "nasdaq:GOOG", side="buy", quantity=D(1), price=D(1), fee=D(0), fee_currency="USD"
        )
        is None
    )
