"""Order flow: intents (commands), risk decisions, and the order lifecycle events. Keyed by account."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal, Self, TypeAlias

from pydantic import Field, StringConstraints, model_validator

from trademesh_events.base import Event
from trademesh_events.ids import (
    AccountId,
    BotId,
    ClientOrderId,
    InstrumentId,
    TradeId,
    UserId,
    UtcDateTime,
    VenueOrderId,
)
from trademesh_events.money import Money, NonNegative, Price, Quantity

Side = Literal["buy", "sell"]
Reason = Annotated[str, StringConstraints(max_length=500)]


class OrderType(StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    STOP = "STOP"
    STOP_LIMIT = "STOP_LIMIT"


class TimeInForce(StrEnum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"
    DAY = "DAY"


class OrderStatus(StrEnum):
    """The execution service's order state machine (PENDING is persisted before anything is sent).

    INITIALIZED and DENIED come before it, in execution's read model of an order's story: an
    intent recorded and not yet decided by risk, and one risk denied (terminal)."""

    INITIALIZED = "INITIALIZED"
    DENIED = "DENIED"
    PENDING = "PENDING"
    SUBMITTED = "SUBMITTED"
    ACCEPTED = "ACCEPTED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    UNKNOWN = "UNKNOWN"


class DenialReason(StrEnum):
    """Machine-readable reason codes of a risk denial."""

    MAX_ORDER_QUANTITY = "MAX_ORDER_QUANTITY"
    MAX_ORDER_NOTIONAL = "MAX_ORDER_NOTIONAL"
    MAX_POSITION = "MAX_POSITION"
    MAX_GROSS_EXPOSURE = "MAX_GROSS_EXPOSURE"
    MAX_OPEN_ORDERS = "MAX_OPEN_ORDERS"
    DAILY_LOSS_LIMIT = "DAILY_LOSS_LIMIT"
    PRICE_COLLAR = "PRICE_COLLAR"
    ORDER_RATE = "ORDER_RATE"
    INSTRUMENT_PRECISION = "INSTRUMENT_PRECISION"
    INSTRUMENT_MINIMUM = "INSTRUMENT_MINIMUM"
    INSTRUMENT_MAXIMUM = "INSTRUMENT_MAXIMUM"  # over the instrument's maxima
    REDUCE_ONLY = "REDUCE_ONLY"
    TRADING_HALTED = "TRADING_HALTED"
    KILL_SWITCH = "KILL_SWITCH"
    NO_MARKET_PRICE = "NO_MARKET_PRICE"
    INVALID_ORDER = "INVALID_ORDER"
    INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"  # over the account's buying power


# ---- commands (orders.intents.v1, orders.approved.v1) ---------------------------------------


class SubmitOrder(Event):
    """Place an order (from a bot or a manual order through the gateway)."""

    type: Literal["trademesh.order.intent"] = "trademesh.order.intent"
    account_id: AccountId
    user_id: UserId
    client_order_id: ClientOrderId
    instrument_id: InstrumentId
    side: Side
    order_type: OrderType
    quantity: Quantity
    limit_price: Price | None = None
    stop_price: Price | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    reduce_only: bool = False
    bot_id: BotId | None = None
    source: Literal["bot", "manual"]
    created_at: UtcDateTime
    # The market time of the decision: for a bot's order, the close time of the last bar its
    # strategy had seen. The paper venue fills the order only on bars after it, however late
    # execution reads that bar (bars and orders travel on different topics).
    decided_at: UtcDateTime | None = None

    @model_validator(mode="after")
    def _prices_match_type(self) -> Self:
        needs_limit = self.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT)
        needs_stop = self.order_type in (OrderType.STOP, OrderType.STOP_LIMIT)
        if needs_limit != (self.limit_price is not None):
            raise ValueError(
                f"{self.order_type} orders {'need' if needs_limit else 'take no'} limit_price"
            )
        if needs_stop != (self.stop_price is not None):
            raise ValueError(
                f"{self.order_type} orders {'need' if needs_stop else 'take no'} stop_price"
            )
        if self.source == "bot" and self.bot_id is None:
            raise ValueError("bot orders need bot_id")
        return self


class CancelOrder(Event):
    """Cancel one order by its client order id (risk forwards it to execution unchanged)."""

    type: Literal["trademesh.order.cancel"] = "trademesh.order.cancel"
    account_id: AccountId
    user_id: UserId
    client_order_id: ClientOrderId
    created_at: UtcDateTime


class OrderApproved(Event):
    """Risk approved the order; execution places it."""

    type: Literal["trademesh.order.approved"] = "trademesh.order.approved"
    account_id: AccountId
    order: SubmitOrder
    approved_at: UtcDateTime

    @model_validator(mode="after")
    def _same_account(self) -> Self:
        if self.order.account_id != self.account_id:
            raise ValueError("account_id must match the order's account")
        return self


class CancelAllOrders(Event):
    """Cancel every open order of an account (a kill switch asks for it)."""

    type: Literal["trademesh.order.cancel_all"] = "trademesh.order.cancel_all"
    account_id: AccountId
    reason: Reason
    created_at: UtcDateTime


class OrderDenied(Event):
    """Risk refused the order: loudly, with a reason code."""

    type: Literal["trademesh.order.denied"] = "trademesh.order.denied"
    account_id: AccountId
    user_id: UserId
    client_order_id: ClientOrderId
    instrument_id: InstrumentId
    reason: DenialReason
    message: Reason
    denied_at: UtcDateTime
    #: The intent denied, so that the denial alone tells the order's story (execution records
    #: it); None in denials made before it was carried.
    order: SubmitOrder | None = None


# ---- lifecycle events (orders.events.v1) ------------------------------------------------------


class _OrderEvent(Event):
    account_id: AccountId
    user_id: UserId
    client_order_id: ClientOrderId
    instrument_id: InstrumentId
    venue_order_id: VenueOrderId | None = None
    ts: UtcDateTime


class OrderSubmitted(_OrderEvent):
    type: Literal["trademesh.order.submitted"] = "trademesh.order.submitted"


class OrderAccepted(_OrderEvent):
    type: Literal["trademesh.order.accepted"] = "trademesh.order.accepted"


class OrderRejected(_OrderEvent):
    type: Literal["trademesh.order.rejected"] = "trademesh.order.rejected"
    reason: Reason


class OrderCanceled(_OrderEvent):
    type: Literal["trademesh.order.canceled"] = "trademesh.order.canceled"
    reason: Reason | None = None


class OrderExpired(_OrderEvent):
    type: Literal["trademesh.order.expired"] = "trademesh.order.expired"


class OrderStatusUnknown(_OrderEvent):
    """A send timed out: the venue may or may not have the order until it is looked up."""

    type: Literal["trademesh.order.unknown"] = "trademesh.order.unknown"
    reason: Reason


class OrderFilled(_OrderEvent):
    """A (partial) fill. leaves_qty == 0 means the order is completely filled."""

    type: Literal["trademesh.order.filled"] = "trademesh.order.filled"
    trade_id: TradeId
    side: Side
    last_qty: Quantity
    last_price: Price
    cum_qty: Quantity
    leaves_qty: NonNegative
    fee: Money
    fee_currency: Annotated[str, StringConstraints(min_length=1, max_length=16)]
    liquidity: Literal["maker", "taker"]
    # The fee valued in the instrument's quote currency, which positions and PnL count: set by
    # execution when the venue charged it in another currency (the base, or its own token),
    # at the fill's price or its last price of that currency; 0 when it has no such price (the
    # fee and its currency above stay as charged). None: `fee` is in the quote already.
    quote_fee: Money | None = None

    @model_validator(mode="after")
    def _quantities(self) -> Self:
        if self.last_qty > self.cum_qty:
            raise ValueError("last_qty cannot exceed cum_qty")
        return self

    @property
    def booked_fee(self) -> Decimal:
        """The fee in the quote currency: what a position's cash and realised PnL count."""
        return self.fee if self.quote_fee is None else self.quote_fee


# What orders.events.v1 carries: the type a handler of the topic takes (trademesh_events.topics).
OrderLifecycleEvent: TypeAlias = (
    OrderSubmitted
    | OrderAccepted
    | OrderRejected
    | OrderCanceled
    | OrderExpired
    | OrderStatusUnknown
    | OrderFilled
)

ORDER_LIFECYCLE: tuple[type[OrderLifecycleEvent], ...] = (
    OrderSubmitted,
    OrderAccepted,
    OrderRejected,
    OrderCanceled,
    OrderExpired,
    OrderStatusUnknown,
    OrderFilled,
)


# ---- an account's buying power (orders.events.v1) ---------------------------------------------


# A currency code as ccxt writes it (`USDT`, `BTC`, `1000SATS`).
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")]
MAX_HOLDINGS = 10_000


class AccountChanged(Event):
    """A paper account was opened, or its buying-power terms changed, or an exchange account's
    balances were read from its venue (execution): its cash at that moment, which the account's
    fills after it on this topic move, and its terms. On the account's partition of
    orders.events.v1, so that a consumer sees it in order with the account's fills
    (docs/decisions/0112-buying-power.md, 0116-venue-buying-power.md).

    An exchange account's event carries its settlement `currency`: `cash` is the venue's total
    of that currency (free and locked), and `holdings` the venue's totals of the other
    currencies it holds (not zero). Both are None for a paper account, whose cash has no
    currency of its own."""

    type: Literal["trademesh.account.changed"] = "trademesh.account.changed"
    account_id: AccountId
    user_id: UserId
    venue: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    cash: Money
    margin_mode: Literal["cash", "margin"]
    max_leverage: Annotated[Price, Field(ge=1)]
    allow_short: bool
    fee_bps: NonNegative
    changed_at: UtcDateTime
    currency: Currency | None = None
    holdings: Annotated[dict[Currency, NonNegative], Field(max_length=MAX_HOLDINGS)] | None = None

    @model_validator(mode="after")
    def _venue_figures(self) -> Self:
        if self.holdings is not None and self.currency is None:
            raise ValueError("holdings come with the account's currency")
        if self.holdings is not None and self.currency in self.holdings:
            raise ValueError("the account's currency is its cash, not one of its holdings")
        return self


# What orders.events.v1 carries: the order lifecycle, and accounts' buying-power changes.
OrdersTopicEvent: TypeAlias = OrderLifecycleEvent | AccountChanged
ORDERS_TOPIC_EVENTS: tuple[type[OrdersTopicEvent], ...] = (*ORDER_LIFECYCLE, AccountChanged)


# ---- reconciliation (orders.discrepancies.v1) --------------------------------------------------


class DiscrepancyKind(StrEnum):
    """What reconciliation found that the service's books and the venue disagree on."""

    UNKNOWN_VENUE_ORDER = "UNKNOWN_VENUE_ORDER"  # working at the venue, not an order of ours
    ORDER_MISSING = "ORDER_MISSING"  # ours and working here, the venue does not know it
    STATUS_MISMATCH = "STATUS_MISMATCH"  # ended here, still working at the venue
    UNMATCHED_TRADE = "UNMATCHED_TRADE"  # a fill at the venue of no order of ours
    FILL_MISMATCH = "FILL_MISMATCH"  # the venue's fills and ours disagree on quantity
    MISSING_FILL = "MISSING_FILL"  # a venue fill we had not applied (applied now)


class DiscrepancyDetected(Event):
    """Execution found its books and a venue's disagreeing. Raised, and kept, every time, never
    silently resolved: `resolution` says what the service did about it (None: nothing it could
    do safely, for a human to look at). `venue_ref` names the venue's side of it (an order or
    trade id, or a client id that is not ours) as the venue gave it."""

    type: Literal["trademesh.order.discrepancy"] = "trademesh.order.discrepancy"
    account_id: AccountId
    user_id: UserId
    venue: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_-]{1,32}$")]
    kind: DiscrepancyKind
    client_order_id: ClientOrderId | None = None
    instrument_id: InstrumentId | None = None
    venue_ref: Annotated[str, StringConstraints(max_length=200)] | None = None
    detail: Reason
    resolution: Reason | None = None
    detected_at: UtcDateTime
