"""The venue's market info turned into InstrumentRules: each ccxt precision mode, untrusted values,
which markets become instruments, and how an admin's override combines with the venue's rules."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D
from typing import Any

import ccxt
import pytest
from ccxt.base import decimal_to_precision
from trademesh_exchange.exchanges import UnknownExchange

from trademesh_risk import venue_rules
from trademesh_risk.engine import InstrumentRules, rules_in_force
from trademesh_risk.venue_rules import (
    DECIMAL_PLACES,
    SIGNIFICANT_DIGITS,
    TICK_SIZE,
    VenueRules,
    VenueRulesError,
    rules_from_market,
    rules_of_markets,
)

pytestmark = pytest.mark.unit


def market(
    price: Any = 0.01,
    amount: Any = 1e-05,
    min_amount: Any = 1e-05,
    min_cost: Any = 5.0,
    symbol: Any = "BTC/USDT",
    max_amount: Any = 9000.0,
    max_price: Any = 1000000.0,
    max_cost: Any = 9000000.0,
) -> dict[str, Any]:
    """A ccxt unified market as ccxt's binance parses exchangeInfo (floats, as ccxt gives them)."""
    return {
        "symbol": symbol,
        "precision": {"amount": amount, "price": price, "base": 1e-08, "quote": 1e-08},
        "limits": {
            "leverage": {"min": None, "max": None},
            "amount": {"min": min_amount, "max": max_amount},
            "price": {"min": 0.01, "max": max_price},
            "cost": {"min": min_cost, "max": max_cost},
        },
    }


MAXIMA = {"max_quantity": D(9000), "max_price": D(1000000), "max_notional": D(9000000)}


def test_the_precision_modes_are_ccxts() -> None:
    assert (DECIMAL_PLACES, SIGNIFICANT_DIGITS, TICK_SIZE) == (
        decimal_to_precision.DECIMAL_PLACES,
        decimal_to_precision.SIGNIFICANT_DIGITS,
        decimal_to_precision.TICK_SIZE,
    )


def test_tick_size_precision_is_the_step_itself() -> None:
    assert rules_from_market(market(), TICK_SIZE) == InstrumentRules(
        price_step=D("0.01"),
        quantity_step=D("0.00001"),
        min_quantity=D("0.00001"),
        min_notional=D("5"),
        **MAXIMA,
    )


def test_the_maxima_are_the_amount_price_and_cost_limits_and_a_zero_is_none() -> None:
    rules = rules_from_market(market(max_amount="92141578", max_price=0, max_cost=None), TICK_SIZE)
    assert (rules.max_quantity, rules.max_price, rules.max_notional) == (D(92141578), None, None)


def test_floats_are_read_as_written_not_as_their_binary_value() -> None:
    rules = rules_from_market(market(price=0.1, min_cost=0.3), TICK_SIZE)
    assert rules.price_step == D("0.1")  # not 0.1000000000000000055511151231257827...
    assert rules.min_notional == D("0.3")
    assert str(rules.price_step) == "0.1"


def test_numbers_given_as_text_or_int_are_read_too() -> None:
    rules = rules_from_market(market(price="0.5", amount=1, min_amount=" 2 "), TICK_SIZE)
    assert (rules.price_step, rules.quantity_step, rules.min_quantity) == (D("0.5"), D(1), D(2))


def test_decimal_places_precision_is_a_step_of_ten_to_the_minus_n() -> None:
    rules = rules_from_market(market(price=2, amount=8.0), DECIMAL_PLACES)
    assert rules == InstrumentRules(
        price_step=D("0.01"),
        quantity_step=D("1E-8"),
        min_quantity=D("0.00001"),
        min_notional=D("5"),
        **MAXIMA,
    )
    assert rules_from_market(market(price=0), DECIMAL_PLACES).price_step == D(1)
    # Negative decimal places (rounding to tens) are a step of 10.
    assert rules_from_market(market(price=-1), DECIMAL_PLACES).price_step == D(10)


@pytest.mark.parametrize("places", [2.5, 31, -31, "two", float("nan"), float("inf"), True, None])
def test_decimal_places_that_are_no_whole_number_in_range_are_no_rule(places: Any) -> None:
    assert rules_from_market(market(price=places), DECIMAL_PLACES).price_step is None


def test_significant_digits_are_no_step_but_the_minimums_still_apply() -> None:
    rules = rules_from_market(market(price=5, amount=4), SIGNIFICANT_DIGITS)
    assert rules == InstrumentRules(min_quantity=D("0.00001"), min_notional=D("5"), **MAXIMA)


@pytest.mark.parametrize(
    "bad",
    [0, 0.0, -0.01, "-1", float("nan"), "NaN", float("inf"), "-Infinity", "abc", "", True, False],
)
def test_values_that_are_not_positive_finite_numbers_are_no_rule(bad: Any) -> None:
    rules = rules_from_market(
        market(
            price=bad,
            amount=bad,
            min_amount=bad,
            min_cost=bad,
            max_amount=bad,
            max_price=bad,
            max_cost=bad,
        ),
        TICK_SIZE,
    )
    assert rules == InstrumentRules()


@pytest.mark.parametrize("bad", [[0.01], {"value": 0.01}, object()])
def test_values_of_the_wrong_type_are_no_rule(bad: Any) -> None:
    assert rules_from_market(market(price=bad), TICK_SIZE).price_step is None


@pytest.mark.parametrize(
    "mangled",
    [
        {"symbol": "BTC/USDT"},  # no precision, no limits
        {"symbol": "BTC/USDT", "precision": None, "limits": None},
        {"symbol": "BTC/USDT", "precision": [0.01], "limits": "5"},
        {"symbol": "BTC/USDT", "precision": {}, "limits": {"amount": None, "cost": 5}},
    ],
)
def test_missing_or_mangled_sections_are_no_rule(mangled: dict[str, Any]) -> None:
    assert rules_from_market(mangled, TICK_SIZE) == InstrumentRules()


def test_an_unknown_precision_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="precision mode"):
        rules_from_market(market(), 7)


def test_markets_become_exchange_symbol_instruments_and_the_rest_is_skipped() -> None:
    markets: list[object] = [
        market(),
        market(symbol="ETH/BTC", price=1e-05),
        market(symbol="BTC/USDT:USDT"),  # a swap: no instrument id
        market(symbol="x" * 70),  # too long for an instrument id
        market(symbol=None),
        "not a market",
    ]
    rules, skipped = rules_of_markets("binance", markets, TICK_SIZE)
    assert sorted(rules) == ["binance:BTC/USDT", "binance:ETH/BTC"]
    assert rules["binance:ETH/BTC"].price_step == D("0.00001")
    assert skipped == 4


def test_injected_ccxt_config_replaces_the_default_and_keeps_timeout_and_rate_limit() -> None:
    store: Any = None
    default = VenueRules(store, ["binance"], refresh_s=60, timeout_s=2)
    assert default.config_of("binance")["options"]["fetchMarkets"] == {"types": ["spot"]}
    assert default.config_of("kraken") == {"timeout": 2000, "enableRateLimit": True}
    injected = VenueRules(
        store,
        ["binance"],
        refresh_s=60,
        ccxt_config={"binance": {"urls": {"api": {}}, "enableRateLimit": False}},
    )
    assert injected.config_of("binance") == {
        "urls": {"api": {}},
        "timeout": 10000,
        "enableRateLimit": True,
    }
    with pytest.raises(ValueError, match="public: no apiKey"):
        VenueRules(store, [], refresh_s=60, ccxt_config={"binance": {"apiKey": "k"}}).config_of(
            "binance"
        )


def test_an_admin_override_wins_field_by_field_over_the_venue() -> None:
    venue = InstrumentRules(
        price_step=D("0.01"), quantity_step=D("0.001"), min_quantity=D("0.001"), min_notional=D(5)
    )
    admin = InstrumentRules(min_notional=D(50), quantity_step=D("0.1"))
    assert rules_in_force(venue, admin) == InstrumentRules(
        price_step=D("0.01"), quantity_step=D("0.1"), min_quantity=D("0.001"), min_notional=D(50)
    )
    # Looser than the venue's is the admin's decision too.
    loose = rules_in_force(venue, InstrumentRules(min_notional=D(1)))
    assert loose is not None and loose.min_notional == D(1)
    assert rules_in_force(venue, None) == venue
    assert rules_in_force(None, admin) == admin
    assert rules_in_force(None, None) is None


def test_the_default_bounds_apply_where_neither_the_venue_nor_an_admin_sets_a_maximum() -> None:
    default = InstrumentRules(max_quantity=D(10) ** 12, max_price=D(10) ** 12)
    venue = InstrumentRules(price_step=D("0.01"), max_quantity=D(9000))
    admin = InstrumentRules(max_price=D(2_000_000))
    assert rules_in_force(venue, admin, default) == InstrumentRules(
        price_step=D("0.01"), max_quantity=D(9000), max_price=D(2_000_000)
    )
    # Without venue or admin rules, the default bounds are the rules: no instrument is unbounded.
    assert rules_in_force(None, None, default) == default
    # A venue's maximum above the default is the venue's to state: it wins.
    assert rules_in_force(InstrumentRules(max_price=D(10) ** 13), None, default) == InstrumentRules(
        max_quantity=D(10) ** 12, max_price=D(10) ** 13
    )
    assert rules_in_force(None, None) is None


class _Store:
    def __init__(self) -> None:
        self.written: list[dict[str, InstrumentRules]] = []

    async def put_venue_rules(self, rules: dict[str, InstrumentRules]) -> int:
        self.written.append(rules)
        return len(rules)


async def test_a_failing_venue_is_tried_again_at_the_next_refresh_and_others_still_sync(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    stop = asyncio.Event()
    store = _Store()

    async def load(exchange: str, config: Any, **_: Any) -> tuple[int, list[object]]:
        calls.append(exchange)
        if exchange == "kraken" and calls.count("kraken") == 1:
            raise ccxt.ExchangeNotAvailable("503 Service Unavailable")
        if calls.count("kraken") == 2:
            stop.set()
        return TICK_SIZE, [market()]

    monkeypatch.setattr(venue_rules, "load_public_markets", load)
    sync = VenueRules(store, ["kraken", "binance"], refresh_s=0.01)
    await asyncio.wait_for(sync.run(stop), 5)
    assert calls[:3] == ["kraken", "binance", "kraken"]  # kraken again at the next refresh
    assert [sorted(w) for w in store.written[:2]] == [["binance:BTC/USDT"], ["kraken:BTC/USDT"]]


async def test_a_failing_load_is_a_venue_rules_error_and_writes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def load(exchange: str, config: Any, **_: Any) -> tuple[int, list[object]]:
        raise TypeError("ccxt's parser choked on the answer")

    monkeypatch.setattr(venue_rules, "load_public_markets", load)
    store = _Store()
    with pytest.raises(VenueRulesError, match="TypeError: ccxt's parser choked"):
        await VenueRules(store, [], refresh_s=60).sync("binance")
    with pytest.raises(UnknownExchange):
        await VenueRules(store, [], refresh_s=60).sync("no_such_exchange")
    assert store.written == []
