"""Position bookkeeping at average cost, worked out by hand: fills, marks, cash and equity."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from trademesh_trading.positions import PositionUpdate, apply_fill, cash_delta, equity, mark

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("before", "fill", "after"),
    [
        pytest.param(("0", "0"), ("buy", "2", "100", "0.2"), ("2", "100", "-0.2"), id="open long, fee"),
        pytest.param(("2", "100"), ("buy", "2", "110", "0"), ("4", "105", "0"), id="add"),
        pytest.param(("4", "105"), ("sell", "1", "120", "0.12"), ("3", "105", "14.88"), id="partial close, fee"),
        pytest.param(("3", "105"), ("sell", "3", "100", "0"), ("0", "0", "-15"), id="full close at a loss"),
        pytest.param(("3", "105"), ("sell", "5", "110", "0.55"), ("-2", "110", "14.45"), id="flip long to short"),
        pytest.param(("0", "0"), ("sell", "2", "100", "0"), ("-2", "100", "0"), id="open short"),
        pytest.param(("-2", "100"), ("sell", "2", "90", "0"), ("-4", "95", "0"), id="add short"),
        pytest.param(("-2", "100"), ("buy", "1", "90", "0.09"), ("-1", "100", "9.91"), id="cover part"),
        pytest.param(("-2", "100"), ("buy", "3", "95", "0"), ("1", "95", "10"), id="flip short to long"),
        pytest.param(("-2", "100"), ("buy", "2", "104", "0"), ("0", "0", "-8"), id="cover at a loss"),
        pytest.param(("0", "0"), ("buy", "1", "100", "-0.01"), ("1", "100", "0.01"), id="maker rebate"),
        pytest.param(("0.5", "20000"), ("buy", "0.25", "23000", "0"), ("0.75", "21000", "0"), id="fractional"),
    ],
)  # fmt: skip
def test_apply_fill_at_average_cost(
    before: tuple[str, str], fill: tuple[str, str, str, str], after: tuple[str, str, str]
) -> None:
    side, qty, price, fee = fill
    result = apply_fill(D(before[0]), D(before[1]), side, D(qty), D(price), D(fee))
    assert result == PositionUpdate(*(D(value) for value in after))


def test_apply_fill_averages_in_exact_decimals() -> None:
    result = apply_fill(D(1), D(100), "buy", D(2), D(101), D(0))
    assert result.avg_price == D(302) / D(3)
    assert isinstance(result.avg_price, D)
    assert result.realised_pnl == 0


def test_a_round_trip_realises_the_price_move_minus_every_fee_and_moves_cash_the_same() -> None:
    position, avg, realised, cash = D(0), D(0), D(0), D(1000)
    for side, qty, price, fee in [
        ("buy", "1", "100", "0.1"),
        ("buy", "1", "102", "0.1"),
        ("sell", "0.5", "105", "0.05"),
        ("sell", "1.5", "99", "0.15"),
    ]:
        position, avg, pnl = apply_fill(position, avg, side, D(qty), D(price), D(fee))
        realised += pnl
        cash += cash_delta(side, D(qty), D(price), D(fee))
    # cash: -100 - 102 + 52.5 + 148.5 = -1; fees 0.4
    assert (position, avg, realised) == (0, 0, D("-1.4"))
    assert cash == D(1000) + realised  # flat: everything realised, all of it in cash


@pytest.mark.parametrize(
    ("qty", "price", "avg"), [("0", "100", "0"), ("1", "0", "0"), ("-1", "100", "0"), ("1", "100", "-1")]
)  # fmt: skip
def test_apply_fill_refuses_impossible_fills(qty: str, price: str, avg: str) -> None:
    with pytest.raises(ValueError, match=r"must be positive|cannot be negative"):
        apply_fill(D(1), D(avg), "buy", D(qty), D(price), D(0))


@pytest.mark.parametrize(
    ("position", "avg", "last", "unrealised"),
    [("2", "100", "110", "20"), ("2", "100", "90", "-20"), ("-2", "100", "90", "20"), ("-2", "100", "110", "-20"), ("0", "0", "50", "0")],
)  # fmt: skip
def test_mark_is_the_open_pnl_at_a_price(
    position: str, avg: str, last: str, unrealised: str
) -> None:
    assert mark(D(position), D(avg), D(last)) == D(unrealised)


@pytest.mark.parametrize(
    ("side", "fee", "delta"), [("buy", "0.2", "-200.2"), ("sell", "0.2", "199.8"), ("buy", "-0.1", "-199.9")]
)  # fmt: skip
def test_cash_delta_pays_the_notional_and_the_fee(side: str, fee: str, delta: str) -> None:
    assert cash_delta(side, D(2), D(100), D(fee)) == D(delta)


def test_equity_is_cash_plus_the_market_value_of_positions() -> None:
    positions = {"binance:BTC/USDT": D("0.5"), "binance:ETH/USDT": D(-2), "binance:SOL/USDT": D(0)}
    prices = {"binance:BTC/USDT": D(40000), "binance:ETH/USDT": D(2500)}  # no SOL price: flat
    assert equity(D(1000), positions, prices) == D(1000) + D(20000) - D(5000)
    with pytest.raises(ValueError, match="no price for binance:ETH/USDT"):
        equity(D(1000), positions, {"binance:BTC/USDT": D(40000)})
    with pytest.raises(ValueError, match="must be positive"):
        mark(D(1), D(100), D(0))
