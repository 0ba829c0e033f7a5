"""Position bookkeeping at average cost, shared by the risk and execution services: a position
after a fill, the PnL it realised, the PnL still open at a price, cash and equity.

Conventions: a position is a signed quantity (long > 0, short < 0) with the average price of
its open part (0 when flat). Fees are in the instrument's quote currency, positive when paid and
negative when rebated. Cash is spot-style: every fill moves it by its notional and fee, so an
account's equity is its cash plus the market value of its positions (see `equity`).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import NamedTuple

from trademesh_events.orders import Side

ZERO = Decimal(0)


class PositionUpdate(NamedTuple):
    """A position after a fill, and the PnL the fill realised."""

    position: Decimal
    avg_price: Decimal  # of the open position; 0 when flat
    realised_pnl: Decimal


def apply_fill(
    position: Decimal,
    avg_price: Decimal,
    side: Side,
    qty: Decimal,
    price: Decimal,
    fee: Decimal,
) -> PositionUpdate:
    """The position, average price and realised PnL after a fill, at average cost.

    A fill that opens or adds moves the average price to the quantity-weighted mean and realises
    nothing but its fee. A fill that reduces realises (fill price - average price) on the closed
    quantity (the reverse for a short) and keeps the average; one that flips through zero closes
    the whole position and opens the rest at the fill price. The fee is always realised, in full,
    by the fill that pays it (a cost when positive, a rebate when negative): the day's realised
    PnL is then what the day cost, and the average price stays the venue's. Averages are exact
    up to Decimal's 28 significant digits.
    """
    if not qty > 0:
        raise ValueError(f"a fill's quantity must be positive, not {qty}")
    if not price > 0:
        raise ValueError(f"a fill's price must be positive, not {price}")
    if avg_price < 0:
        raise ValueError(f"an average price cannot be negative: {avg_price}")
    signed = qty if side == "buy" else -qty
    after = position + signed
    if position == 0 or (position > 0) == (signed > 0):
        average = (abs(position) * avg_price + qty * price) / abs(after)
        return PositionUpdate(after, average, -fee)
    closed = min(qty, abs(position))
    gross = closed * (price - avg_price) * (1 if position > 0 else -1)
    if after == 0:
        average = ZERO
    elif (after > 0) == (position > 0):
        average = avg_price
    else:
        average = price
    return PositionUpdate(after, average, gross - fee)


def mark(position: Decimal, avg_price: Decimal, last_price: Decimal) -> Decimal:
    """The unrealised PnL of a position at `last_price`: position x (last - average), which is
    positive for a long when the price rose and for a short when it fell; 0 when flat. Fees are
    not in it (they were realised by the fills that paid them)."""
    if not last_price > 0:
        raise ValueError(f"a price must be positive, not {last_price}")
    return position * (last_price - avg_price)


def cash_delta(side: Side, qty: Decimal, price: Decimal, fee: Decimal) -> Decimal:
    """How a fill moves the account's cash: a buy pays qty x price, a sell receives it; the fee
    is paid either way (a negative fee, a rebate, is received)."""
    if not qty > 0:
        raise ValueError(f"a fill's quantity must be positive, not {qty}")
    if not price > 0:
        raise ValueError(f"a fill's price must be positive, not {price}")
    notional = qty * price
    return (-notional if side == "buy" else notional) - fee


def equity(
    cash: Decimal, positions: Mapping[str, Decimal], prices: Mapping[str, Decimal]
) -> Decimal:
    """Cash plus the market value of every position (signed: a short counts negative), each at
    its instrument's price in `prices`. A non-zero position without a price cannot be valued:
    ValueError names it rather than counting it as zero."""
    total = cash
    for instrument, quantity in sorted(positions.items()):
        if quantity == 0:
            continue
        price = prices.get(instrument)
        if price is None:
            raise ValueError(f"no price for {instrument} to value its position {quantity} at")
        total += quantity * price
    return total
