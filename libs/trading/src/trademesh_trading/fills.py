"""The fill model shared by the backtester and the paper venue: when and at what price an order
fills against a bar, with slippage and fees in basis points.

Rules (an order placed during bar t is first tried against bar t+1):
- market: fills at the bar's open, moved against the trader by the slippage;
- limit: buy when the bar's low reaches the limit, at the limit or the open if the bar opens
  better; sell symmetrically with the high; no slippage (the price is the trader's);
- stop: triggers when the bar's high (buy) or low (sell) reaches the stop, at the stop or the
  open if the bar gaps through it, moved by the slippage (a stop becomes a market order);
- stop-limit: triggers like a stop; in that bar it fills at the stop (or the open past it)
  when that is within the limit, otherwise it rests as a limit order;
- with `max_volume_share`, a fill takes at most that share of the bar's volume (the rest stays
  open), so a large order fills over several bars;
- the fee is `fee_bps` of the filled notional.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Literal

from trademesh_events.ids import ClientOrderId
from trademesh_events.marketdata import Bar

BPS = Decimal(10_000)


@dataclass
class SimOrder:
    client_order_id: ClientOrderId
    side: Literal["buy", "sell"]
    quantity: Decimal
    kind: Literal["market", "limit", "stop", "stop_limit"] = "market"
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    leg: str = "main"
    filled: Decimal = Decimal(0)
    triggered: bool = False  # a stop-limit whose stop was reached

    @property
    def remaining(self) -> Decimal:
        return self.quantity - self.filled


@dataclass(frozen=True)
class Fill:
    client_order_id: ClientOrderId
    side: Literal["buy", "sell"]
    quantity: Decimal
    price: Decimal
    fee: Decimal


@dataclass(frozen=True)
class FillModel:
    slippage_bps: Decimal = Decimal(0)
    fee_bps: Decimal = Decimal(0)
    max_volume_share: Decimal | None = None
    quantity_step: Decimal | None = None  # volume-capped fills round down to this

    def fill(self, order: SimOrder, bar: Bar) -> Fill | None:
        """The fill of `order` in `bar`, if any (the order is updated: filled, triggered)."""
        price = self._price(order, bar)
        if price is None:
            return None
        quantity = order.remaining
        if self.max_volume_share is not None:
            cap = bar.volume * self.max_volume_share
            if self.quantity_step is not None:
                cap = (cap / self.quantity_step).to_integral_value(ROUND_DOWN) * self.quantity_step
            quantity = min(quantity, cap)
        if quantity <= 0:
            return None
        order.filled += quantity
        return Fill(
            order.client_order_id,
            order.side,
            quantity,
            price,
            fee=price * quantity * self.fee_bps / BPS,
        )

    def _price(self, order: SimOrder, bar: Bar) -> Decimal | None:
        buy = order.side == "buy"
        slip = bar.open * self.slippage_bps / BPS
        if order.kind == "market":
            return bar.open + slip if buy else bar.open - slip
        if order.kind == "limit":
            return self._limit(order, bar)
        stop = order.stop_price
        assert stop is not None, "stop orders carry stop_price"
        reached = bar.high >= stop if buy else bar.low <= stop
        if order.kind == "stop":
            if order.triggered:  # the rest of a volume-capped stop: a market order now
                base = bar.open
            elif reached:
                order.triggered = True
                base = max(stop, bar.open) if buy else min(stop, bar.open)
            else:
                return None
            moved = base * self.slippage_bps / BPS
            return base + moved if buy else base - moved
        if order.triggered:
            return self._limit(order, bar)
        if not reached:
            return None
        order.triggered = True
        # In the bar that triggers it, nothing trades before the stop: the price is the stop
        # (or the open past it), if that is within the limit; otherwise it rests as a limit.
        limit = order.limit_price
        assert limit is not None, "stop-limit orders carry limit_price"
        base = max(stop, bar.open) if buy else min(stop, bar.open)
        within = base <= limit if buy else base >= limit
        return base if within else None

    @staticmethod
    def _limit(order: SimOrder, bar: Bar) -> Decimal | None:
        limit = order.limit_price
        assert limit is not None, "limit orders carry limit_price"
        if order.side == "buy":
            return min(limit, bar.open) if bar.low <= limit else None
        return max(limit, bar.open) if bar.high >= limit else None
