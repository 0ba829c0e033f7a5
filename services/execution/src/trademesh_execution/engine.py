"""The execution domain: the order state machine, the lifecycle events on orders.events.v1, the
paper venue's matching, fee currencies and positions. Pure: no I/O and no wall clock (every time
is an argument); every price, quantity and amount is a Decimal.

An order's life as the service keeps it (an `OrderView`):
0. a manual order's intent may be recorded INITIALIZED before risk decides it, and a denied
   order is kept DENIED (the order's story, decision 0113; `same_terms` tells a re-sent order);
1. an approval arrives: `new_order` gives it PENDING, persisted before anything is sent (so a
   crash between the send and the write cannot lose an order the venue has);
2. it is sent: `advance` to SUBMITTED then ACCEPTED (or REJECTED, or UNKNOWN when the send times
   out), each step with its event; the paper venue does both at once (`paper_accept`);
3. it fills: `fill_order` is the order after a fill, `fill_event` its OrderFilled; the paper
   venue matches its orders against every final bar or tick (`paper_fills`), which does both;
4. it ends: FILLED by its last fill, or `advance` to CANCELED / EXPIRED.

`advance` and `fill_order` refuse what `TRANSITIONS` does not allow (`IllegalTransition`). A
redelivered venue report of the state an order is already in is a duplicate for the service to
drop before asking (only PARTIALLY_FILLED -> PARTIALLY_FILLED is a transition: another fill).

The paper venue and time. An order placed during bar t fills from bar t+1, as in the backtester:
the paper venue tries an order only against bars that open at or after `active_from`, which
`paper_accept` sets to the *market time* of the acceptance: the instrument's market clock, the
latest close_time of the final bars (and ticks, as 1-second bars: `bar_of_tick`) the service has
processed for the instrument (`market_clock` advances it; the service keeps it per instrument,
across restarts). Market time rather than the wall clock, so that replayed history fills too:
the bar a bot decided on has closed by then, and the next one opens at the clock. After a bar
that changes an order (a fill, a stop-limit's trigger, an expiry) `active_from` moves to that
bar's close_time, so a redelivered bar cannot fill the order twice; a bar that changed nothing
changes nothing when redelivered either. A crash after publishing a fill but before saving it
re-creates the same fill with the same `trade_id` (numbered by the order's fills), which
consumers deduplicate. The time of a paper fill (its event's ts) is the bar's open_time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Literal, TypeAlias

from trademesh_events.ids import AccountId, ClientOrderId, InstrumentId, UserId
from trademesh_events.marketdata import Bar, Tick
from trademesh_events.orders import (
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderLifecycleEvent,
    OrderRejected,
    OrderStatus,
    OrderStatusUnknown,
    OrderSubmitted,
    OrderType,
    Side,
    SubmitOrder,
    TimeInForce,
)
from trademesh_trading import buying_power
from trademesh_trading.buying_power import AccountTerms, Holdings
from trademesh_trading.currencies import quote_currency
from trademesh_trading.fills import Fill, FillModel, SimOrder
from trademesh_trading.positions import apply_fill, mark
from trademesh_trading.timeframes import Timeframe

ZERO = Decimal(0)
MAX_REASON = 500  # the lifecycle events' reason limit
Liquidity = Literal["maker", "taker"]
OrderEvent: TypeAlias = OrderLifecycleEvent  # what orders.events.v1 carries

# ---- the order state machine ------------------------------------------------------------------

_S = OrderStatus
_VENUE_REPORTS = frozenset(
    {
        _S.SUBMITTED,
        _S.ACCEPTED,
        _S.PARTIALLY_FILLED,
        _S.FILLED,
        _S.CANCELED,
        _S.REJECTED,
        _S.EXPIRED,
    }
)

TRANSITIONS: Mapping[OrderStatus, frozenset[OrderStatus]] = MappingProxyType(
    {
        # Persisted, not sent yet. Sent: SUBMITTED; refused at once by the venue (or found
        # unplaceable by the service): REJECTED; cancelled before it was sent: CANCELED (nothing
        # goes to the venue); the send timed out: UNKNOWN.
        _S.PENDING: frozenset({_S.SUBMITTED, _S.REJECTED, _S.CANCELED, _S.UNKNOWN}),
        # Before that, only in the order's story (decision 0113): a manual intent recorded and
        # not decided yet, which risk's approval makes PENDING (place_pending) or its denial
        # DENIED. Neither is a venue's state, so neither has a lifecycle event.
        _S.INITIALIZED: frozenset({_S.PENDING, _S.DENIED}),
        _S.DENIED: frozenset(),
        # The venue has the request. It may report any outcome directly: an immediate market
        # fill (FILLED), part of one (PARTIALLY_FILLED), an IOC/FOK that found nothing (EXPIRED or
        # CANCELED), a refusal (REJECTED); or its acknowledgement never comes (UNKNOWN).
        _S.SUBMITTED: frozenset(
            {
                _S.ACCEPTED,
                _S.PARTIALLY_FILLED,
                _S.FILLED,
                _S.CANCELED,
                _S.REJECTED,
                _S.EXPIRED,
                _S.UNKNOWN,
            }
        ),
        # Working at the venue: fills, a cancel, an expiry. Never REJECTED any more (a venue that
        # drops a working order cancels or expires it) and never UNKNOWN (the venue has it).
        _S.ACCEPTED: frozenset({_S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELED, _S.EXPIRED}),
        # More partial fills, the last one, or the rest cancelled or expired.
        _S.PARTIALLY_FILLED: frozenset({_S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELED, _S.EXPIRED}),
        # A send timed out: the order is whatever the venue reports when it is looked up (not
        # found: REJECTED, it never got there). Never back to PENDING: it may have been sent.
        _S.UNKNOWN: _VENUE_REPORTS,
        _S.FILLED: frozenset(),
        _S.CANCELED: frozenset(),
        _S.REJECTED: frozenset(),
        _S.EXPIRED: frozenset(),
    }
)
"""Where an order may go from each status (see the comments for why each edge exists)."""

TERMINAL: frozenset[OrderStatus] = frozenset(s for s, to in TRANSITIONS.items() if not to)
WORKING: frozenset[OrderStatus] = frozenset({_S.ACCEPTED, _S.PARTIALLY_FILLED})
"""The statuses in which an order rests at the venue and the paper venue tries to fill it."""


class IllegalTransition(ValueError):
    """An order asked to go where TRANSITIONS does not allow."""


def transition(current: OrderStatus, target: OrderStatus) -> OrderStatus:
    """`target` if an order in `current` may go there, else IllegalTransition naming both."""
    current, target = OrderStatus(current), OrderStatus(target)
    allowed = TRANSITIONS[current]
    if target in allowed:
        return target
    if not allowed:
        why = f"{current} is terminal"
    else:
        why = f"from {current} an order goes to {', '.join(sorted(allowed))} only"
    raise IllegalTransition(f"illegal order transition {current} -> {target}: {why}")


def is_open(status: OrderStatus) -> bool:
    """Whether the order may still fill: every status but the terminal ones (UNKNOWN too: the
    venue may have it working)."""
    return OrderStatus(status) not in TERMINAL


# ---- the order as the service keeps it --------------------------------------------------------


@dataclass(frozen=True)
class OrderView:
    """What the service stores of an order. `filled` is the cumulative filled quantity,
    `avg_price` its average fill price (None before the first fill), `fees` their sum, `fills`
    their number (which numbers the paper venue's trade ids). The last four fields are the paper
    venue's: `triggered` (a stop or stop-limit whose stop was reached), `accepted_at` (the market
    time of the acceptance, for DAY orders) and `active_from` (the market time from which bars
    may fill the order; see the module's docstring)."""

    client_order_id: ClientOrderId
    account_id: AccountId
    user_id: UserId
    instrument_id: InstrumentId
    side: Side
    order_type: OrderType
    quantity: Decimal
    limit_price: Decimal | None
    stop_price: Decimal | None
    status: OrderStatus
    created_at: datetime
    filled: Decimal = ZERO
    avg_price: Decimal | None = None
    fees: Decimal = ZERO
    venue_order_id: str | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    fills: int = 0
    triggered: bool = False
    accepted_at: datetime | None = None
    active_from: datetime | None = None

    def __post_init__(self) -> None:
        name = f"order {self.client_order_id}"
        if not self.quantity > 0:
            raise ValueError(f"{name}: quantity must be positive, not {self.quantity}")
        if not ZERO <= self.filled <= self.quantity:
            raise ValueError(f"{name}: filled {self.filled} is not within 0..{self.quantity}")
        if (self.filled == 0) != (self.avg_price is None):
            raise ValueError(f"{name}: avg_price must be set exactly when something filled")
        if (self.filled == 0) != (self.fills == 0) or self.fills < 0:
            raise ValueError(f"{name}: {self.fills} fills for a filled quantity of {self.filled}")
        if self.status is OrderStatus.FILLED and self.filled != self.quantity:
            raise ValueError(f"{name}: FILLED with {self.filled} of {self.quantity} filled")
        if self.status is OrderStatus.PARTIALLY_FILLED and not ZERO < self.filled < self.quantity:
            raise ValueError(f"{name}: PARTIALLY_FILLED with {self.filled} of {self.quantity}")

    @property
    def remaining(self) -> Decimal:
        return self.quantity - self.filled

    @property
    def is_open(self) -> bool:
        return is_open(self.status)


def same_terms(order: OrderView, reduce_only: bool, intent: SubmitOrder) -> bool:
    """Whether `intent` asks for what `order` (kept under the same client order id, with its
    `reduce_only`) asked for: a re-sent order, rather than another one under a used id. Amounts
    compare as numbers (1.0 is 1)."""
    return (
        order.user_id,
        order.account_id,
        order.instrument_id,
        order.side,
        order.order_type,
        order.quantity,
        order.limit_price,
        order.stop_price,
        order.time_in_force,
        reduce_only,
    ) == (
        intent.user_id,
        intent.account_id,
        intent.instrument_id,
        intent.side,
        intent.order_type,
        intent.quantity,
        intent.limit_price,
        intent.stop_price,
        intent.time_in_force,
        intent.reduce_only,
    )


def new_order(order: SubmitOrder) -> OrderView:
    """The PENDING order of an approved intent (OrderApproved.order)."""
    return OrderView(
        client_order_id=order.client_order_id,
        account_id=order.account_id,
        user_id=order.user_id,
        instrument_id=order.instrument_id,
        side=order.side,
        order_type=order.order_type,
        quantity=order.quantity,
        limit_price=order.limit_price,
        stop_price=order.stop_price,
        status=OrderStatus.PENDING,
        created_at=order.created_at,
        time_in_force=order.time_in_force,
    )


# ---- lifecycle events -------------------------------------------------------------------------


def _reason(status: OrderStatus, reason: str | None, *, required: bool) -> str | None:
    if reason is None or reason == "":
        if required:
            raise ValueError(f"a {status} event needs a reason")
        return None
    if len(reason) > MAX_REASON:  # a venue's long error must not make the event invalid
        return reason[: MAX_REASON - 1] + "…"
    return reason


def lifecycle_event(
    order: OrderView, status: OrderStatus, ts: datetime, *, reason: str | None = None
) -> OrderEvent:
    """The orders.events.v1 event saying `order` is now `status`: SUBMITTED, ACCEPTED, CANCELED
    (reason optional), REJECTED or UNKNOWN (reason required), EXPIRED. Fills have their own
    (`fill_event`) and PENDING none (nothing happened outside the service). The order's fields
    are taken as they are (venue_order_id included); the transition is not checked (`advance`
    does both). A reason longer than the events allow is cut to MAX_REASON characters."""
    status = OrderStatus(status)
    common = {
        "account_id": order.account_id,
        "user_id": order.user_id,
        "client_order_id": order.client_order_id,
        "instrument_id": order.instrument_id,
        "venue_order_id": order.venue_order_id,
        "ts": ts,
    }
    if status in (OrderStatus.SUBMITTED, OrderStatus.ACCEPTED, OrderStatus.EXPIRED):
        if reason is not None:
            raise ValueError(f"a {status} event carries no reason (got {reason!r})")
        if status is OrderStatus.SUBMITTED:
            return OrderSubmitted(**common)
        if status is OrderStatus.ACCEPTED:
            return OrderAccepted(**common)
        return OrderExpired(**common)
    if status is OrderStatus.CANCELED:
        return OrderCanceled(**common, reason=_reason(status, reason, required=False))
    if status is OrderStatus.REJECTED:
        return OrderRejected(**common, reason=_reason(status, reason, required=True))
    if status is OrderStatus.UNKNOWN:
        return OrderStatusUnknown(**common, reason=_reason(status, reason, required=True))
    raise ValueError(
        f"no lifecycle event for {status}: fills go through fill_order and fill_event, and "
        "PENDING publishes nothing"
    )


def advance(
    order: OrderView,
    target: OrderStatus,
    ts: datetime,
    *,
    reason: str | None = None,
    venue_order_id: str | None = None,
) -> tuple[OrderView, OrderEvent]:
    """The order moved to `target` (not a fill status) and its event; IllegalTransition if it
    may not go there. `venue_order_id`, when the venue gives one, is kept from then on."""
    target = transition(order.status, target)
    if target in (OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED):
        raise ValueError(f"{target} comes with a fill: use fill_order and fill_event")
    moved = replace(order, status=target, venue_order_id=venue_order_id or order.venue_order_id)
    return moved, lifecycle_event(moved, target, ts, reason=reason)


def _check_fill(order: OrderView, fill: Fill) -> Decimal:
    """The order's cumulative filled quantity after `fill`, if `fill` can be one of its fills."""
    if fill.client_order_id != order.client_order_id:
        raise ValueError(f"a fill of {fill.client_order_id} applied to {order.client_order_id}")
    if fill.side != order.side:
        raise ValueError(f"a {fill.side} fill of the {order.side} order {order.client_order_id}")
    if not fill.quantity > 0 or not fill.price > 0:
        raise ValueError(f"a fill needs a positive quantity and price, not {fill}")
    if fill.quantity > order.remaining:
        raise ValueError(
            f"a fill of {fill.quantity} exceeds what remains of {order.client_order_id}: "
            f"{order.remaining}"
        )
    return order.filled + fill.quantity


def fill_order(order: OrderView, fill: Fill) -> OrderView:
    """The order after `fill`: filled, average price, fees and fill count updated, status
    PARTIALLY_FILLED or, when nothing remains, FILLED (IllegalTransition from a status that
    cannot fill, e.g. CANCELED)."""
    cum = _check_fill(order, fill)
    status = transition(
        order.status,
        OrderStatus.FILLED if cum == order.quantity else OrderStatus.PARTIALLY_FILLED,
    )
    average = (
        fill.price
        if order.avg_price is None
        else (order.avg_price * order.filled + fill.price * fill.quantity) / cum
    )
    return replace(
        order,
        status=status,
        filled=cum,
        avg_price=average,
        fees=order.fees + fill.fee,
        fills=order.fills + 1,
    )


def fill_event(
    order: OrderView,
    fill: Fill,
    ts: datetime,
    trade_id: str,
    fee_currency: str,
    *,
    liquidity: Liquidity,
) -> OrderFilled:
    """The OrderFilled of `fill`, for `order` as it was BEFORE the fill (cum_qty and leaves_qty
    count the fill in; `fill_order` gives the order after it)."""
    cum = _check_fill(order, fill)
    return OrderFilled(
        account_id=order.account_id,
        user_id=order.user_id,
        client_order_id=order.client_order_id,
        instrument_id=order.instrument_id,
        venue_order_id=order.venue_order_id,
        ts=ts,
        trade_id=trade_id,
        side=order.side,
        last_qty=fill.quantity,
        last_price=fill.price,
        cum_qty=cum,
        leaves_qty=order.quantity - cum,
        fee=fill.fee,
        fee_currency=fee_currency,
        liquidity=liquidity,
    )


def trade_id(client_order_id: ClientOrderId, n: int) -> str:
    """The paper venue's id of an order's `n`-th fill (from 1): the same order and fill number
    always give the same id, so a fill re-created after a crash is recognised as the same."""
    if n < 1:
        raise ValueError(f"fills are numbered from 1, not {n}")
    return f"{client_order_id}-{n}"


def fee_currency(instrument_id: InstrumentId) -> str:
    """The currency of an instrument's prices and fees: the quote of a `BASE/QUOTE` symbol
    (`binance:BTC/USDT` -> `USDT`), USD for a symbol without `/` (`nasdaq:GOOG` -> `USD`: stocks
    and the replays of their history)."""
    quote = quote_currency(instrument_id)
    if quote is None:
        raise ValueError(f"instrument id {instrument_id!r} names no quote currency")
    return quote


# ---- the paper venue --------------------------------------------------------------------------

_KINDS: Mapping[OrderType, Literal["market", "limit", "stop", "stop_limit"]] = {
    OrderType.MARKET: "market",
    OrderType.LIMIT: "limit",
    OrderType.STOP: "stop",
    OrderType.STOP_LIMIT: "stop_limit",
}


def paper_order_id(client_order_id: ClientOrderId) -> str:
    """The paper venue's order id of an order."""
    return f"paper-{client_order_id}"


def paper_accept(
    order: OrderView, ts: datetime, *, market_time: datetime
) -> tuple[OrderView, list[OrderEvent]]:
    """The paper venue takes a PENDING order: SUBMITTED then ACCEPTED (both events at `ts`),
    with a paper venue order id, to be tried against bars opening at or after `market_time`:
    the instrument's market clock when the order is accepted (see the module's docstring; with
    no market data yet, the service's now)."""
    if order.status is not OrderStatus.PENDING:
        raise IllegalTransition(
            f"the paper venue accepts PENDING orders, not {order.status} ({order.client_order_id})"
        )
    if market_time.utcoffset() is None:
        raise ValueError("market_time must be timezone-aware")
    submitted, sent = advance(order, OrderStatus.SUBMITTED, ts)
    accepted, taken = advance(
        replace(submitted, accepted_at=market_time, active_from=market_time),
        OrderStatus.ACCEPTED,
        ts,
        venue_order_id=paper_order_id(order.client_order_id),
    )
    return accepted, [sent, taken]


def market_clock(previous: datetime | None, bar: Bar) -> datetime | None:
    """An instrument's market clock after `bar`: the latest close_time of its final bars (a
    bar still in progress moves nothing; a late bar never moves the clock back)."""
    if not bar.final:
        return previous
    return bar.close_time if previous is None else max(previous, bar.close_time)


def bar_of_tick(tick: Tick, timeframe: str = "1s") -> Bar:
    """A tick as a final bar the paper venue can match: open = high = low = close = the price,
    volume = the size, over [ts, ts + timeframe). So an order accepted just after a tick is
    first tried against ticks a timeframe later (the 1-second bar after the tick's)."""
    return Bar(
        instrument_id=tick.instrument_id,
        timeframe=timeframe,
        open_time=tick.ts,
        close_time=tick.ts + Timeframe.parse(timeframe).delta,
        open=tick.price,
        high=tick.price,
        low=tick.price,
        close=tick.price,
        volume=tick.size,
        trades=1,
        final=True,
    )


@dataclass(frozen=True)
class PaperMatch:
    """What one bar did to one paper order: the order after it (to save), the fill (if any)
    and the events to publish, in order (an OrderFilled, and/or an OrderExpired)."""

    order: OrderView
    fill: Fill | None
    events: tuple[OrderFilled | OrderExpired | OrderCanceled, ...]


def paper_fills(
    orders: Sequence[OrderView],
    bar: Bar,
    model: FillModel,
    *,
    currency: str | None = None,
) -> list[PaperMatch]:
    """Try every working paper order of the bar's instrument against a final `bar` with the
    shared fill model (the backtester's); one PaperMatch per order the bar changed, in the
    orders' order. Each order is tried on its own (with max_volume_share, each may take that
    share of the bar). Skipped: orders of other instruments, orders not ACCEPTED or
    PARTIALLY_FILLED, orders whose `active_from` is after the bar's open (the bar during which
    they were accepted, or one that already changed them), and every order for a bar still in
    progress. Fees are in `currency` (default: `fee_currency` of the instrument).

    Liquidity: market and stop fills, and a stop-limit's fill in the bar that triggers it, take
    liquidity ("taker"); a limit fill (a triggered stop-limit's too) is "maker" at its limit
    price (the market came to it) and "taker" at a better open (it crossed the market).

    Time in force: IOC and FOK are decided by the first bar in which the order is live (market
    and limit orders: the first bar tried; stops: the bar that triggers them): IOC takes what
    that bar fills and expires the rest, FOK fills completely there or expires unfilled. A DAY
    order expires, unfilled, at the first bar opening on a later UTC date than its acceptance.
    """
    if not bar.final:
        return []
    currency = currency or fee_currency(bar.instrument_id)
    matches: list[PaperMatch] = []
    for order in orders:
        if order.instrument_id != bar.instrument_id or order.status not in WORKING:
            continue
        if order.active_from is None or order.accepted_at is None:
            raise ValueError(
                f"paper order {order.client_order_id} is {order.status} without accepted_at and "
                "active_from: accept paper orders with paper_accept"
            )
        if bar.open_time < order.active_from:
            continue
        match = _match(order, bar, model, currency)
        if match is not None:
            matches.append(match)
    return matches


def paper_refusal(
    order: OrderView, match: PaperMatch, terms: AccountTerms, holdings: Holdings, at: datetime
) -> PaperMatch | None:
    """The paper venue as an exchange: when the fill of `match` is more than the account can
    pay for now (the trading library's buying-power rule, at the fill's own price and fee
    rate), the order (`order`, as it was before the bar) is CANCELED with the figures instead,
    at `at`; None when the fill fits (or there is none)."""
    fill = match.fill
    if fill is None:
        return None
    short = buying_power.check(
        terms,
        holdings,
        instrument_id=order.instrument_id,
        side=fill.side,
        quantity=fill.quantity,
        price=fill.price,
    )
    if short is None:
        return None
    reason = short.message(order.instrument_id)[:MAX_REASON]
    canceled, event = advance(order, OrderStatus.CANCELED, at, reason=reason)
    assert isinstance(event, OrderCanceled)
    return PaperMatch(replace(canceled, active_from=match.order.active_from), None, (event,))


def _utc_date(at: datetime) -> date:
    return at.astimezone(UTC).date()


def _match(order: OrderView, bar: Bar, model: FillModel, currency: str) -> PaperMatch | None:
    assert order.accepted_at is not None  # checked by paper_fills
    if order.time_in_force is TimeInForce.DAY and _utc_date(bar.open_time) > _utc_date(
        order.accepted_at
    ):
        ended, event = advance(order, OrderStatus.EXPIRED, bar.open_time)
        assert isinstance(event, OrderExpired)
        return PaperMatch(replace(ended, active_from=bar.close_time), None, (event,))
    sim = SimOrder(
        order.client_order_id,
        order.side,
        order.quantity,
        _KINDS[order.order_type],
        order.limit_price,
        order.stop_price,
        filled=order.filled,
        triggered=order.triggered,
    )
    fill = model.fill(sim, bar)
    live = order.order_type in (OrderType.MARKET, OrderType.LIMIT) or sim.triggered
    immediate = live and order.time_in_force in (TimeInForce.IOC, TimeInForce.FOK)
    fok = immediate and order.time_in_force is TimeInForce.FOK
    if fok and fill is not None and fill.quantity < order.remaining:
        fill = None  # all or nothing
    if fill is None and not immediate and sim.triggered == order.triggered:
        return None  # the bar changed nothing: a redelivery of it will not either
    after = order
    events: list[OrderFilled | OrderExpired] = []
    if fill is not None:
        number = trade_id(order.client_order_id, order.fills + 1)
        liquidity = _liquidity(order, fill)
        events.append(fill_event(order, fill, bar.open_time, number, currency, liquidity=liquidity))
        after = fill_order(order, fill)
    after = replace(after, triggered=sim.triggered, active_from=bar.close_time)
    if immediate and after.is_open:
        after, expired = advance(after, OrderStatus.EXPIRED, bar.open_time)
        assert isinstance(expired, OrderExpired)
        events.append(expired)
    return PaperMatch(after, fill, tuple(events))


def _liquidity(order: OrderView, fill: Fill) -> Liquidity:
    """`order` as it was before `fill` (see paper_fills)."""
    if order.order_type in (OrderType.MARKET, OrderType.STOP):
        return "taker"
    if order.order_type is OrderType.STOP_LIMIT and not order.triggered:
        return "taker"  # filled in the bar that triggered it
    return "maker" if fill.price == order.limit_price else "taker"


# ---- positions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Position:
    """An account's position in an instrument, at average cost (trademesh_trading.positions):
    the signed quantity, the average price of its open part (0 when flat), the PnL realised so
    far net of fees, and the fees paid, all in the instrument's quote currency."""

    account_id: AccountId
    instrument_id: InstrumentId
    quantity: Decimal = ZERO
    avg_price: Decimal = ZERO
    realised_pnl: Decimal = ZERO
    fees: Decimal = ZERO


def book(position: Position, fill: OrderFilled) -> Position:
    """The position after a fill of one of the account's orders on its instrument. The fee
    counted is the fill's `booked_fee`: in the instrument's quote currency (`fee_currency`), as
    the paper venue's are, or valued in it (`quote_fee`, see `fee_in_quote`); a fee in another
    currency that nobody valued is refused rather than added to quote amounts."""
    if (fill.account_id, fill.instrument_id) != (position.account_id, position.instrument_id):
        raise ValueError(
            f"a fill of {fill.account_id}/{fill.instrument_id} applied to the position of "
            f"{position.account_id}/{position.instrument_id}"
        )
    quote = fee_currency(position.instrument_id)
    if fill.fee_currency != quote and fill.quote_fee is None:
        raise ValueError(
            f"fee in {fill.fee_currency} for {position.instrument_id}, which is priced in {quote}, "
            "without its value in the quote currency"
        )
    fee = fill.booked_fee
    update = apply_fill(
        position.quantity, position.avg_price, fill.side, fill.last_qty, fill.last_price, fee
    )
    return replace(
        position,
        quantity=update.position,
        avg_price=update.avg_price,
        realised_pnl=position.realised_pnl + update.realised_pnl,
        fees=position.fees + fee,
    )


def fee_in_quote(
    instrument_id: InstrumentId,
    fee: Decimal,
    currency: str,
    fill_price: Decimal,
    prices: Mapping[InstrumentId, Decimal],
) -> Decimal | None:
    """A fee charged in `currency`, valued in the instrument's quote currency: as it is in the
    quote; at the fill's price in the base (Binance takes a buyer's fee in the coin bought); at
    the last price of `venue:CURRENCY/QUOTE` (or the inverse of `venue:QUOTE/CURRENCY`) in
    `prices` for a third currency (an exchange's own token). None when no price values it."""
    venue, _, symbol = instrument_id.partition(":")
    quote = fee_currency(instrument_id)
    currency = currency.upper()
    if currency == quote:
        return fee
    if "/" in symbol and currency == symbol.split("/", 1)[0].upper():
        return fee * fill_price
    direct = prices.get(f"{venue}:{currency}/{quote}")
    if direct is not None and direct > 0:
        return fee * direct
    inverse = prices.get(f"{venue}:{quote}/{currency}")
    if inverse is not None and inverse > 0:
        return fee / inverse
    return None


def unrealised(position: Position, last_price: Decimal) -> Decimal:
    """The position's open PnL at `last_price` (fees are in realised_pnl already)."""
    return mark(position.quantity, position.avg_price, last_price)
