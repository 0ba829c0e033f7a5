"""Buying power: whether an account can pay for an order, the one rule that risk (before an order
goes out), the paper venue (when it fills) and the backtester (both) apply.

An account trades in one of two margin modes (`AccountTerms`):
- `cash` (the default): no borrowing. A buy needs its cost (notional plus fee) in cash not
  already reserved by pending orders; a sell needs the base asset held and not already being
  sold, unless the account allows shorting, in which case the short part needs its full value in
  cash as collateral.
- `margin`, with a maximum leverage L >= 1: the account's gross exposure (every position at its
  last price, plus what pending orders reserve) may reach L x its equity (cash plus positions at
  their last prices). A short needs `allow_short` here too.

The part of an order that reduces a position (selling what is held, buying back a short in
margin mode) needs nothing: an account must always be able to get out. Spot buying back a short
in cash mode pays cash like any buy.

An order is valued at its worst price (`order_price`): its limit price for LIMIT and STOP_LIMIT,
else the last price (or the stop price if beyond it) moved against the trader by a collar, since
a market order fills at a price not known yet. Pure: Decimal in, Decimal out; no I/O, no clock.

An exchange account's buying power is its venue's balances (`at_venue`, `venue_moves`): its cash is
the venue's total of its settlement currency, which is checked only for orders quoted in that
currency, and a sell takes the base the venue holds (docs/decisions/0116-venue-buying-power.md).

A backtest's account holds one instrument: `check_and_reserve_alone` applies the same rule to its
figures, without building Holdings (docs/decisions/0135-backtest-buying-power-from-figures.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from enum import StrEnum
from typing import Literal

from trademesh_events.ids import InstrumentId

from trademesh_trading.currencies import currencies_of

ZERO = Decimal(0)
ONE = Decimal(1)
BPS = Decimal(10_000)
# How far a market or stop order's price is assumed to move against it from the last price when
# the account sets no price collar: 1 %.
DEFAULT_COLLAR_BPS = Decimal(100)


class MarginMode(StrEnum):
    CASH = "cash"
    MARGIN = "margin"


# The rule runs for every order a backtest places and fills: an enum member read through its
# class costs four times a module global, and the builtins min() and max() three times an `if`.
_CASH, _MARGIN = MarginMode.CASH, MarginMode.MARGIN


@dataclass(frozen=True)
class AccountTerms:
    """What an account may borrow and sell: its margin mode, the leverage of a margin account
    (1 for a cash account), whether it may sell what it does not hold, and the fee rate its venue
    charges (basis points of the notional)."""

    mode: MarginMode = MarginMode.CASH
    max_leverage: Decimal = ONE
    allow_short: bool = False
    fee_bps: Decimal = ZERO

    def __post_init__(self) -> None:
        if not isinstance(self.max_leverage, Decimal) or not self.max_leverage.is_finite():
            raise ValueError(f"max_leverage must be a finite Decimal, not {self.max_leverage!r}")
        if self.max_leverage < ONE:
            raise ValueError(f"max_leverage must be at least 1, not {self.max_leverage}")
        if self.mode is MarginMode.CASH and self.max_leverage != ONE:
            raise ValueError("a cash account borrows nothing: its max_leverage is 1")
        if not self.fee_bps.is_finite() or self.fee_bps < 0:
            raise ValueError(f"fee_bps must be a finite Decimal >= 0, not {self.fee_bps}")


@dataclass(frozen=True)
class Holdings:
    """What the account has when an order is checked: cash, signed positions, the last price of
    each instrument, the quote amount pending orders reserve (their worst-case cost, see
    `reservation`), and per instrument the base quantity pending sells are already selling and
    pending buys are buying.

    Pending buys count as held for a sell: risk may decide the sell that closes a position
    before it has seen the fill of the buy that opened it (two consumers of one topic), and
    denying it then would be wrong; a sell still not covered when it fills is refused by the
    venue (the paper venue's check has no pending orders)."""

    cash: Decimal
    positions: Mapping[InstrumentId, Decimal] = field(default_factory=dict)
    prices: Mapping[InstrumentId, Decimal] = field(default_factory=dict)
    reserved: Decimal = ZERO
    selling: Mapping[InstrumentId, Decimal] = field(default_factory=dict)
    buying: Mapping[InstrumentId, Decimal] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.reserved < 0:
            raise ValueError(f"reserved must be >= 0, not {self.reserved}")


@dataclass(frozen=True)
class Shortfall:
    """An order that does not fit: what it needs and what is available, in the quote currency
    (`unit` "quote") or, for a sell of more than is held, in the base asset (`unit` "base")."""

    needed: Decimal
    available: Decimal
    unit: Literal["quote", "base"]
    mode: MarginMode

    def message(self, instrument_id: InstrumentId) -> str:
        if self.unit == "base":
            return (
                f"insufficient funds: selling {_fmt(self.needed)} {instrument_id} needs it held; "
                f"{_fmt(self.available)} is available and the account does not allow shorting"
            )
        return (
            f"insufficient funds ({self.mode.value} account): the order needs "
            f"{_fmt(self.needed)}, {_fmt(self.available)} is available"
        )


def _fmt(value: Decimal) -> str:
    """A Decimal as people write it, without trailing zeros: 90.0910 is 90.091, 1E+3 is 1000."""
    return f"{value.normalize():f}"


def order_price(
    *,
    side: Literal["buy", "sell"],
    order_type: str,
    limit_price: Decimal | None,
    stop_price: Decimal | None,
    last: Decimal | None,
    collar_bps: Decimal = DEFAULT_COLLAR_BPS,
) -> Decimal | None:
    """The worst price the order is valued at: the limit price of a LIMIT or STOP_LIMIT; else
    the last price, or the stop price if it lies beyond it, moved by the collar against the
    trader (up for a buy, down for a sell). None when there is no price to start from."""
    if order_type in ("LIMIT", "STOP_LIMIT", "limit", "stop_limit"):
        return limit_price
    base = last
    if stop_price is not None:
        base = stop_price if base is None else (max if side == "buy" else min)(base, stop_price)
    if base is None:
        return None
    moved = base * collar_bps / BPS
    return base + moved if side == "buy" else base - moved


def fee_of(notional: Decimal, terms: AccountTerms) -> Decimal:
    return notional * terms.fee_bps / BPS


def _growing(
    side: Literal["buy", "sell"], quantity: Decimal, position: Decimal, sellable: Decimal
) -> Decimal:
    """The part of the order that opens or grows a position (the rest reduces it), from the
    instrument's position and, for a sell, what it may take (`_sellable`)."""
    if side == "buy":
        short = -position
        reducing = ZERO if short < ZERO else short  # max(short, ZERO)
    else:
        reducing = sellable
    return quantity - (reducing if reducing < quantity else quantity)  # min(quantity, reducing)


def _sellable(position: Decimal, buying: Decimal, selling: Decimal) -> Decimal:
    """The base a sell may take without shorting: held, plus pending buys, less pending sells."""
    free = position + buying - selling
    return ZERO if free < ZERO else free  # max(free, ZERO)


def _figures(
    holdings: Holdings, instrument_id: InstrumentId, side: Literal["buy", "sell"]
) -> tuple[Decimal, Decimal]:
    """The instrument's position and, for a sell, what it may take (0 for a buy)."""
    position = holdings.positions.get(instrument_id, ZERO)
    if side == "buy":
        return position, ZERO
    buying = holdings.buying.get(instrument_id, ZERO)
    return position, _sellable(position, buying, holdings.selling.get(instrument_id, ZERO))


def equity(holdings: Holdings) -> Decimal:
    """Cash plus every position at its last price; ValueError names a position without one."""
    total = holdings.cash
    for instrument, quantity in _in_order(holdings.positions):
        if quantity != 0:
            total += quantity * _price(holdings, instrument)
    return total


def gross_exposure(holdings: Holdings) -> Decimal:
    """Every position's absolute value at its last price, plus what pending orders reserve."""
    total = holdings.reserved
    for instrument, quantity in _in_order(holdings.positions):
        if quantity != 0:
            total += abs(quantity) * _price(holdings, instrument)
    return total


def _in_order(
    positions: Mapping[InstrumentId, Decimal],
) -> Iterable[tuple[InstrumentId, Decimal]]:
    """The positions by instrument: Decimal sums round, so they add up in one order always (a
    single position needs no sorting)."""
    return positions.items() if len(positions) < 2 else sorted(positions.items())


def _price(holdings: Holdings, instrument: InstrumentId) -> Decimal:
    price = holdings.prices.get(instrument)
    if price is None:
        raise ValueError(f"no last price for {instrument} to value its position at")
    return price


def reservation(
    terms: AccountTerms,
    holdings: Holdings,
    *,
    instrument_id: InstrumentId,
    side: Literal["buy", "sell"],
    quantity: Decimal,
    price: Decimal,
) -> Decimal:
    """The quote amount an order takes from buying power while it is pending: in a cash account
    a buy's notional plus fee, a short sale's too (its collateral); in a margin account the value
    of the part that grows the position, plus the fee; nothing for a sell of what is held."""
    _positive(quantity, price)
    position, sellable = _figures(holdings, instrument_id, side)
    return _reserve(terms, side, quantity, price, _growing(side, quantity, position, sellable))


def _positive(quantity: Decimal, price: Decimal) -> None:
    if quantity <= 0 or price <= 0:
        raise ValueError(f"an order has a positive quantity and price, not {quantity} at {price}")


def _reserve(
    terms: AccountTerms,
    side: Literal["buy", "sell"],
    quantity: Decimal,
    price: Decimal,
    growing: Decimal,
) -> Decimal:
    """reservation() once the part that grows the position is known."""
    if terms.mode is _CASH and side == "buy":
        notional = quantity * price
        return notional + fee_of(notional, terms)
    if growing == 0:
        return ZERO
    return growing * price + fee_of(quantity * price, terms)


def check(
    terms: AccountTerms,
    holdings: Holdings,
    *,
    instrument_id: InstrumentId,
    side: Literal["buy", "sell"],
    quantity: Decimal,
    price: Decimal,
) -> Shortfall | None:
    """None when the order (valued at `price`, see `order_price`) fits the account's buying
    power, else what it needs and what is available. Amounts are exact: needed == available
    fits. A margin account's positions must have prices (ValueError names one without)."""
    short, _ = check_and_reserve(
        terms, holdings, instrument_id=instrument_id, side=side, quantity=quantity, price=price
    )
    return short


def check_and_reserve(
    terms: AccountTerms,
    holdings: Holdings,
    *,
    instrument_id: InstrumentId,
    side: Literal["buy", "sell"],
    quantity: Decimal,
    price: Decimal,
) -> tuple[Shortfall | None, Decimal]:
    """check() and, for an order that fits, its reservation() in one pass (the order's valuation
    is worked out once): (None, what it reserves) or (the shortfall, 0)."""
    position, sellable = _figures(holdings, instrument_id, side)
    short, needed, freed = _demand(terms, side, quantity, price, position, sellable)
    if short is not None or needed == 0:
        return short, ZERO
    if terms.mode is _CASH:
        available = holdings.cash - holdings.reserved + freed
    else:
        available = equity(holdings) * terms.max_leverage - gross_exposure(holdings) + freed
    return _verdict(terms, needed, available)


def check_and_reserve_alone(
    terms: AccountTerms,
    *,
    cash: Decimal,
    position: Decimal,
    mark: Decimal,
    reserved: Decimal = ZERO,
    selling: Decimal = ZERO,
    buying: Decimal = ZERO,
    side: Literal["buy", "sell"],
    quantity: Decimal,
    price: Decimal,
) -> tuple[Shortfall | None, Decimal]:
    """check_and_reserve() for an account that holds this instrument alone (a backtest's), its
    position valued at `mark`, with what pending orders reserve, sell and buy of it: the same
    rule as on Holdings(cash, {i: position}, {i: mark}, reserved, {i: selling}, {i: buying}),
    from the figures, without building Holdings and their maps (most of the rule's cost when it
    runs for every order and every fill of a backtest)."""
    sellable = ZERO if side == "buy" else _sellable(position, buying, selling)
    short, needed, freed = _demand(terms, side, quantity, price, position, sellable)
    if short is not None or needed == 0:
        return short, ZERO
    if terms.mode is _CASH:
        available = cash - reserved + freed
    else:  # equity() and gross_exposure() of that one position
        value, exposure = cash, reserved
        if position != 0:
            value += position * mark
            exposure += abs(position) * mark
        available = value * terms.max_leverage - exposure + freed
    return _verdict(terms, needed, available)


def _demand(
    terms: AccountTerms,
    side: Literal["buy", "sell"],
    quantity: Decimal,
    price: Decimal,
    position: Decimal,
    sellable: Decimal,
) -> tuple[Shortfall | None, Decimal, Decimal]:
    """The rule's first half, from the instrument's own figures: a sale of what may not be sold
    (a shortfall in base units), else what the order needs (0: it fits whatever the account
    has) and what its reducing part frees."""
    growing = _growing(side, quantity, position, sellable)
    if side == "sell" and growing > 0 and not terms.allow_short:
        return Shortfall(quantity, sellable, "base", terms.mode), ZERO, ZERO
    _positive(quantity, price)
    needed = _reserve(terms, side, quantity, price, growing)
    # The part that reduces a position frees what it is worth first: a sale's proceeds in cash, a
    # margin account's exposure (a spot buy that covers a short frees nothing: it pays cash).
    freed = ZERO
    if needed != 0 and (side == "sell" or terms.mode is _MARGIN):
        freed = (quantity - growing) * price
    return None, needed, freed


def _verdict(
    terms: AccountTerms, needed: Decimal, available: Decimal
) -> tuple[Shortfall | None, Decimal]:
    """The rule's second half: the order fits when it needs no more than is available."""
    if needed <= available:
        return None, needed
    return Shortfall(needed, max(available, ZERO), "quote", terms.mode), ZERO


# ---- exchange accounts: the venue's balances -------------------------------------------------


def at_venue(
    holdings: Holdings,
    *,
    instrument_id: InstrumentId,
    currency: str,
    venue_holdings: Mapping[str, Decimal] | None,
) -> Holdings | None:
    """The holdings an exchange account's order of `instrument_id` is checked on, or None when
    its buying power is not checked here: the order is not quoted in the account's settlement
    `currency` (whose venue total is `holdings.cash`; what it reserves is counted in the same
    currency only). A sell takes the base the venue holds (`venue_holdings`, the venue's totals of
    the other currencies) in place of the position booked from fills, when they are known: the
    account may hold what it bought elsewhere or before."""
    pair = currencies_of(instrument_id)
    if pair is None or pair[1] != currency:
        return None
    if venue_holdings is None:
        return holdings
    held = venue_holdings.get(pair[0], ZERO)
    return replace(holdings, positions={**holdings.positions, instrument_id: held})


def venue_moves(
    instrument_id: InstrumentId,
    *,
    side: Literal["buy", "sell"],
    quantity: Decimal,
    price: Decimal,
    fee: Decimal,
    fee_currency: str,
) -> dict[str, Decimal] | None:
    """What a fill moves at its venue, per currency: a buy adds the base and takes its cost in
    the quote, a sell the reverse, and the fee is taken in the currency it was charged in (a
    rebate, negative, adds). None for an instrument that names no base and quote."""
    pair = currencies_of(instrument_id)
    if pair is None:
        return None
    base, quote = pair
    sign = ONE if side == "buy" else -ONE
    moves: dict[str, Decimal] = {base: sign * quantity}
    moves[quote] = moves.get(quote, ZERO) - sign * quantity * price
    charged = fee_currency.upper()
    moves[charged] = moves.get(charged, ZERO) - fee
    return moves
