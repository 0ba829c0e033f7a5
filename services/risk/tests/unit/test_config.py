"""The settings: defaults, environment, validation, immutability."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError
from trademesh_testing.contract import SettingsContract

from trademesh_risk.config import Settings
from trademesh_risk.engine import InstrumentRules, Limits

pytestmark = pytest.mark.unit


class TestSettings(SettingsContract):
    """Defaults, environment, the common constraints, immutability (trademesh_testing.contract)."""

    settings_class = Settings


def test_venue_rules_fetch_nothing_by_default_and_read_a_json_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TRADEMESH_VENUE_RULES_EXCHANGES", raising=False)
    assert Settings().venue_rules_exchanges == []
    assert Settings().venue_rules_refresh_s == 3600
    monkeypatch.setenv("TRADEMESH_VENUE_RULES_EXCHANGES", '["binance", "kraken"]')
    assert Settings().venue_rules_exchanges == ["binance", "kraken"]


@pytest.mark.parametrize(
    ("exchanges", "why"),
    [(["binanse"], "not ccxt exchange ids: binanse"), (["binance", "binance"], "named twice")],
)
def test_venue_rules_exchanges_must_be_distinct_ccxt_ids(exchanges: list[str], why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        Settings(venue_rules_exchanges=exchanges)


def test_an_instrument_whose_venue_states_no_maxima_has_default_bounds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TRADEMESH_INSTRUMENT_MAX_QUANTITY", raising=False)
    monkeypatch.setenv("TRADEMESH_INSTRUMENT_MAX_PRICE", "5e12")
    assert Settings().instrument_bounds() == InstrumentRules(
        max_quantity=Decimal(10) ** 12, max_price=Decimal(5) * 10**12
    )


def test_every_account_has_conservative_default_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MAX_ORDER_NOTIONAL", "MAX_ORDER_QUANTITY", "PRICE_COLLAR_BPS"):
        monkeypatch.delenv(f"TRADEMESH_DEFAULT_{name}", raising=False)
    assert Settings().default_limits() == Limits(
        max_order_notional=Decimal(100_000),
        max_order_quantity=Decimal(1_000_000),
        price_collar_bps=Decimal(1_000),
    )


def test_a_default_limit_is_changed_or_turned_off_explicitly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRADEMESH_DEFAULT_MAX_ORDER_NOTIONAL", "250000")
    monkeypatch.setenv("TRADEMESH_DEFAULT_PRICE_COLLAR_BPS", "Off")
    monkeypatch.delenv("TRADEMESH_DEFAULT_MAX_ORDER_QUANTITY", raising=False)
    limits = Settings().default_limits()
    assert limits.max_order_notional == Decimal(250_000)
    assert limits.price_collar_bps is None
    assert limits.max_order_quantity == Decimal(1_000_000)  # the others are left as they were


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("default_max_order_notional", "0"),
        ("default_max_order_quantity", "-1"),
        ("default_price_collar_bps", "NaN"),
        ("default_price_collar_bps", ""),  # empty is no way to say off
    ],
)
def test_bad_default_limits_are_refused(field: str, bad: str) -> None:
    with pytest.raises(ValidationError, match=field):
        Settings(**{field: bad})


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("instrument_max_quantity", "off"),  # the instrument bounds cannot be turned off
        ("instrument_max_quantity", "0"),
        ("instrument_max_price", "Infinity"),
    ],
)
def test_bad_instrument_bounds_are_refused(field: str, bad: str) -> None:
    with pytest.raises(ValidationError, match=field):
        Settings(**{field: bad})
