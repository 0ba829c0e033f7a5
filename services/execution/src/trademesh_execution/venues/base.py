"""What the execution service asks of a live venue, and what a venue answers.

A `Venue` places, cancels and looks up orders on an exchange by the order's client order id
(the idempotency key end to end: every venue is given it on submit and finds orders by it). Its
answers are `VenueReport`s (an order as the venue sees it, its status already mapped to the
service's `OrderStatus`) and `VenueTrade`s (one fill each). Every amount is a Decimal, every time
timezone-aware UTC.

Failures are one of four `VenueError`s, each telling the caller what to do with the order:

- `VenueUnavailable`: the venue could not be asked (network down, 5xx, rate limited, clock out
  of the venue's receive window). Nothing happened at the venue: retry later. (After one on
  submit, looking the order up by client id before sending it again costs one request and
  rules out a doubled order: see `venues.ccxt.errors`.)
- `VenueTimeout`: the request may or may not have reached the venue. A submit that times out
  leaves the order UNKNOWN until `fetch` says what the venue has (None: it never arrived).
- `VenueRejected(reason)`: the venue refused (invalid order, insufficient funds, bad
  credentials, an order it does not know on cancel). A refused submit is REJECTED;
  `DuplicateOrder` is the one refusal that is not: the venue already has an order under this
  client id, which `fetch` finds.
- `MalformedResponse`: the venue answered, but with something that failed validation (exchange
  answers are untrusted input). On submit the venue did receive the order, so treat it like a
  timeout: UNKNOWN, then `fetch`.

`balances` answers the account's balances at the venue, per currency (`VenueBalances`): what is
free to trade, what the venue holds for working orders (`used`), and their total.

Order updates can also come from the venue's private stream (`watch_orders`, where the venue has
one: `streams_orders`). They are `VenueUpdate`s: the order after the update, and the execution
it reports, if any. The stream adds `StreamUnsupported` (no stream: poll instead). A stream that
drops loses whatever happened while it was down, so after its `VenueUnavailable` the caller
catches up by asking (`fetch`, `open_orders`, `recent_trades`) as well as calling again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol, runtime_checkable

from trademesh_events.orders import OrderStatus, Side

from trademesh_execution.engine import Liquidity, OrderView

# ---- errors -----------------------------------------------------------------------------------


class VenueError(Exception):
    """Any failure of a venue call (the subclasses say what it means for the order)."""


class VenueUnavailable(VenueError):
    """The venue could not be asked (network, 5xx, rate limit): nothing happened, retry later."""


class VenueTimeout(VenueError):
    """The request may or may not have reached the venue: a submitted order is UNKNOWN until
    `fetch` finds it (or finds nothing: it never arrived)."""


class VenueRejected(VenueError):
    """The venue refused the request; `reason` is its (or the adapter's) explanation."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DuplicateOrder(VenueRejected):
    """The venue already has an order with this client order id (a resend of an order it
    received): not a rejection of that order, which `fetch` finds."""


class MalformedResponse(VenueError):
    """The venue's answer failed validation. On submit the order did reach the venue."""


class StreamUnsupported(VenueError):
    """The venue has no private order stream: the caller polls instead."""


# ---- answers ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class VenueReport:
    """An order as the venue reports it.

    `status` is the venue's status mapped to the state machine's (ACCEPTED, PARTIALLY_FILLED,
    FILLED, CANCELED, EXPIRED, REJECTED); `filled` is the cumulative filled quantity, `remaining`
    what is left of the order's quantity (what was left when it ended, for an ended order),
    `avg_price` the average fill price (None before a fill). `fee` is the order's fees so far in
    `fee_currency`, when the venue says (None when it does not, or when they are in several
    currencies: the trades carry each fee). `client_order_id` is None only for an order of the
    account that the venue lists without one (never for an order the service sent). `ts` is the
    venue's time of the report's state (its last update), or the adapter's now when the venue
    gives no time."""

    client_order_id: str | None
    venue_order_id: str
    status: OrderStatus
    filled: Decimal
    avg_price: Decimal | None
    remaining: Decimal
    fee: Decimal | None
    fee_currency: str | None
    ts: datetime

    def __post_init__(self) -> None:
        if not self.venue_order_id:
            raise ValueError("a venue report needs the venue's order id")
        if self.filled < 0 or self.remaining < 0:
            raise ValueError(f"negative quantities in {self}")
        if self.avg_price is not None and not self.avg_price > 0:
            raise ValueError(f"avg_price must be positive, not {self.avg_price}")
        if self.ts.utcoffset() is None:
            raise ValueError("ts must be timezone-aware")


@dataclass(frozen=True)
class VenueTrade:
    """One fill of one of the account's orders, as the venue reports it. `client_order_id` is
    None when the venue's trade list does not carry it (Binance's does not: match on
    `venue_order_id`); `fee` / `fee_currency` / `liquidity` are None when the venue does not
    say."""

    trade_id: str
    client_order_id: str | None
    venue_order_id: str
    side: Side
    quantity: Decimal
    price: Decimal
    fee: Decimal | None
    fee_currency: str | None
    ts: datetime
    liquidity: Liquidity | None

    def __post_init__(self) -> None:
        if not self.trade_id or not self.venue_order_id:
            raise ValueError("a venue trade needs its trade id and the venue's order id")
        if not self.quantity > 0 or not self.price > 0:
            raise ValueError(f"a trade needs a positive quantity and price: {self}")
        if self.ts.utcoffset() is None:
            raise ValueError("ts must be timezone-aware")


@dataclass(frozen=True)
class VenueUpdate:
    """One update of one of the account's orders from the venue's private stream.
    `report` is the order after the update, as `fetch` would report it (cumulative filled,
    average price, status mapped to OrderStatus; `fee` None when the stream does not give the
    order's cumulative fees). `trade` is the execution this update reports, when it reports one
    (an executionReport with execution type TRADE): its trade id, quantity, price, fee, fee
    currency and liquidity, with `client_order_id` and `venue_order_id` set."""

    report: VenueReport
    trade: VenueTrade | None


@dataclass(frozen=True)
class Balance:
    """One currency's balance at the venue: `free` to trade, `used` held for the account's
    working orders (Binance's `locked`), and `total`, both together."""

    free: Decimal
    used: Decimal
    total: Decimal

    def __post_init__(self) -> None:
        for name in ("free", "used", "total"):
            value = getattr(self, name)
            if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
                raise ValueError(f"a balance's {name} must be a finite Decimal >= 0, not {value!r}")


@dataclass(frozen=True)
class VenueBalances:
    """The account's balances at the venue by currency code (as ccxt writes it: `USDT`, `BTC`),
    and when the venue took them (the adapter's now when it does not say). A currency the venue
    does not list has none."""

    currencies: Mapping[str, Balance]
    ts: datetime

    def __post_init__(self) -> None:
        if self.ts.utcoffset() is None:
            raise ValueError("ts must be timezone-aware")

    def total(self, currency: str) -> Decimal:
        """The currency's total (free and used); 0 when the venue lists none of it."""
        found = self.currencies.get(currency)
        return found.total if found is not None else Decimal(0)


# ---- the interface ----------------------------------------------------------------------------


@runtime_checkable
class Venue(Protocol):
    """A live venue. Every method may raise a `VenueError` (see the module docstring)."""

    streams_orders: bool
    """True when `watch_orders` is supported (the venue has a private order stream)."""

    async def submit(self, order: OrderView) -> VenueReport:
        """Send the order (with its client order id); the venue's acknowledgement."""
        ...

    async def cancel(self, order: OrderView) -> VenueReport:
        """Cancel the order (found by its client order id); the venue's report of it after."""
        ...

    async def fetch(self, order: OrderView) -> VenueReport | None:
        """The order as the venue has it, looked up by client order id; None when the venue
        does not know it."""
        ...

    async def open_orders(self, instrument_id: str | None = None) -> list[VenueReport]:
        """The account's working orders at the venue (of one instrument, or all)."""
        ...

    async def recent_trades(self, instrument_id: str, since: datetime) -> list[VenueTrade]:
        """The account's fills in the instrument at or after `since`, oldest first."""
        ...

    async def balances(self) -> VenueBalances:
        """The account's balances at the venue, every currency it lists."""
        ...

    async def watch_orders(self) -> list[VenueUpdate]:
        """Wait for the next updates of the account's orders on the venue's private stream.
        The first call opens and authenticates the stream; the following ones wait on it.
        Raises StreamUnsupported when the venue has none, VenueUnavailable when the stream
        cannot be opened or has dropped (the caller pauses and calls again, which reconnects),
        VenueRejected for refused credentials. A malformed update is left out (counted like
        the other malformed records), never raised."""
        ...

    async def close(self) -> None:
        """Release the connections (the stream's too); the venue is not used after."""
        ...


def split_instrument(instrument_id: str) -> tuple[str, str]:
    """`venue:SYMBOL` as (venue, symbol): `binance:BTC/USDT` -> ("binance", "BTC/USDT")."""
    venue, sep, symbol = instrument_id.partition(":")
    if not sep or not venue or not symbol:
        raise ValueError(f"instrument id {instrument_id!r} is not venue:SYMBOL")
    return venue, symbol
