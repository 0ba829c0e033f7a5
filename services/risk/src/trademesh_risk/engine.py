"""The risk engine: the pre-trade checks of an order intent. Pure: no I/O, no clock (`now` is an
argument), no database. The position bookkeeping that feeds the checks (`apply_fill`) is the
trading library's, shared with execution, and re-exported here.

For each intent the service builds an `AccountView` (what it knows of the account right then),
the `effective` limits (the account's `ceilings`: the platform's defaults or an admin's limits in
their place; the account's own limits; its limits for the instrument), and the instrument's
rules in force (the venue's, an admin's override, the platform's default bounds), and asks
`check`: None approves, a `Denial` says why not, with a `DenialReason` code and a message for
humans. The checks run in a fixed order and the first failure wins (see `check`).

An account's trading state changes only by `transition`: given what it comes from (its
`TradingControls`: the state set on it, its kill switch) and a cause (the daily loss limit
reached, the kill switch set, a state set by an admin), the controls after it and whether the
trading state changed, which is when the service publishes a TradingStateChanged.

Deliberate rules:
- Every limit is inclusive: a value equal to the limit passes, one step beyond is denied. The
  daily loss limit is a level rather than a ceiling: a realised loss of exactly the limit has
  reached it (the account goes REDUCING).
- Pending orders count as if filled, on their own side (the worst case): the service counts an
  order as pending as soon as it approves it, so two quick intents cannot both pass a limit only
  one of them fits.
- An order that reduces its position (see `reduces`) is never denied by max_position,
  max_gross_exposure or the daily loss limit: an account over one of them (the limit lowered,
  prices moved, losses taken) must always be able to get back under it. The other limits (order
  size, open orders, collar, rate) still apply to it.
- Kill switches and HALTED deny every new order, reducing ones included: they stop the account
  until a human lifts them.
- Cancels are always allowed, under a kill switch and when HALTED too: cancelling only ever
  reduces risk (`check_cancel`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from decimal import ROUND_UP, Decimal, InvalidOperation, localcontext
from typing import Any, ClassVar, TypeVar, assert_never

from trademesh_events.ids import AccountId, InstrumentId, UserId
from trademesh_events.orders import DenialReason, OrderType, SubmitOrder

# What an account may do (ACTIVE, REDUCING, HALTED) is part of the events contract, since risk
# publishes its changes (TradingStateChanged); re-exported here for the service.
from trademesh_events.risk import TradingState as TradingState
from trademesh_events.risk import TradingStateChanged, TradingStateReason

# The position bookkeeping lives in the trading library (execution keeps positions the same way);
# re-exported here for the decider.
from trademesh_trading.positions import PositionUpdate as PositionUpdate
from trademesh_trading.positions import apply_fill as apply_fill

ZERO = Decimal(0)
BPS = Decimal(10_000)
MAX_MESSAGE = 500  # OrderDenied.message's limit
_LIMIT_ORDERS = frozenset({OrderType.LIMIT, OrderType.STOP_LIMIT})


def _require_positive(owner: Limits | InstrumentRules, counts: frozenset[str]) -> None:
    """Refuse a set field that is not a positive finite Decimal (an int for `counts`). Zero is
    refused too: a limit of zero is a halt in disguise, and HALTED says it plainly."""
    name = type(owner).__name__
    for spec in fields(owner):
        value = getattr(owner, spec.name)
        if value is None:
            continue
        if spec.name in counts:
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name}.{spec.name} must be an int, not {value!r}")
        elif not isinstance(value, Decimal):
            raise TypeError(f"{name}.{spec.name} must be a Decimal, not {value!r}")
        elif not value.is_finite():
            raise ValueError(f"{name}.{spec.name} must be finite, not {value}")
        if value <= 0:
            raise ValueError(
                f"{name}.{spec.name} must be positive, not {value} (use HALTED to stop trading)"
            )


@dataclass(frozen=True)
class Limits:
    """An account's or an instrument's risk limits; None is no limit. Amounts are in the quote
    currency; max_position is absolute (long or short) and per instrument."""

    max_order_quantity: Decimal | None = None
    max_order_notional: Decimal | None = None
    max_position: Decimal | None = None
    max_gross_exposure: Decimal | None = None  # sum over instruments of |position| x price
    max_open_orders: int | None = None
    daily_loss_limit: Decimal | None = None  # the realised loss of the UTC day that halts growth
    price_collar_bps: Decimal | None = None  # limit/stop price at most this far from the last
    max_orders_per_second: int | None = None
    max_orders_per_minute: int | None = None

    _COUNTS: ClassVar[frozenset[str]] = frozenset(
        {"max_open_orders", "max_orders_per_second", "max_orders_per_minute"}
    )

    def __post_init__(self) -> None:
        _require_positive(self, self._COUNTS)


_T = TypeVar("_T", Decimal, int)


def _stricter(first: _T | None, second: _T | None) -> _T | None:
    if first is None:
        return second
    if second is None:
        return first
    return min(first, second)


def effective(*layers: Limits | None) -> Limits:
    """The limits that apply when several layers set them: the account's ceilings (see
    `ceilings`), the account's own limits, the account's limits for the order's instrument.

    Field by field, the stricter one wins: where several set a limit, the smallest applies; where
    only one does, that one. So a layer can only tighten the others, never loosen them (for every
    limit, a larger value is a looser one).
    """
    out: dict[str, Any] = {}
    for spec in fields(Limits):
        for layer in layers:
            if layer is not None:
                out[spec.name] = _stricter(out.get(spec.name), getattr(layer, spec.name))
    return Limits(**out)


def ceilings(defaults: Limits, admin: Limits | None) -> Limits:
    """An account's ceilings: the platform's default limits, with an admin's limits for the
    account in their place field by field (higher or lower; where the admin set nothing, the
    default). The account's own limits may only be at or under them (`over_ceilings`), and they
    are limits in their own right: `effective(ceilings(...), own, instrument)`."""
    if admin is None:
        return defaults
    return Limits(
        **{
            spec.name: getattr(defaults, spec.name)
            if getattr(admin, spec.name) is None
            else getattr(admin, spec.name)
            for spec in fields(Limits)
        }
    )


def over_ceilings(
    limits: Limits, ceiling: Limits
) -> dict[str, tuple[Decimal | int, Decimal | int]]:
    """The fields of `limits` set above their ceiling: name -> (value, ceiling). A field without
    a ceiling may be set to anything."""
    out: dict[str, tuple[Decimal | int, Decimal | int]] = {}
    for spec in fields(Limits):
        value, top = getattr(limits, spec.name), getattr(ceiling, spec.name)
        if value is not None and top is not None and value > top:
            out[spec.name] = (value, top)
    return out


@dataclass(frozen=True)
class InstrumentRules:
    """An instrument's own bounds: the venue's precision (steps), minimums and maxima; None is
    no rule. An order the venue would reject is denied here, with a reason, instead. Prices and
    notionals are in the quote currency."""

    price_step: Decimal | None = None
    quantity_step: Decimal | None = None
    min_quantity: Decimal | None = None
    min_notional: Decimal | None = None
    max_quantity: Decimal | None = None
    max_price: Decimal | None = None  # of a limit or stop price
    max_notional: Decimal | None = None

    def __post_init__(self) -> None:
        _require_positive(self, frozenset())


def rules_in_force(
    venue: InstrumentRules | None,
    admin: InstrumentRules | None,
    default: InstrumentRules | None = None,
) -> InstrumentRules | None:
    """The rules an order is checked against, from the venue's market info, an admin's override
    of it, and the platform's default bounds (the settings' caps on quantity and price).

    Field by field, the admin's value wins where the admin set one, then the venue's, then the
    default: an admin who raises the minimum notional keeps the venue's price and quantity
    steps, and a venue that states no maximum quantity gets the platform's. The admin's value
    wins even when it is looser than the venue's: an override is a deliberate decision, and the
    venue sync never changes it. None when no layer has rules.
    """
    layers = [layer for layer in (admin, venue, default) if layer is not None]
    if not layers:
        return None
    if len(layers) == 1:
        return layers[0]
    values: dict[str, Decimal | None] = {}
    for spec in fields(InstrumentRules):
        values[spec.name] = next(
            (
                getattr(layer, spec.name)
                for layer in layers
                if getattr(layer, spec.name) is not None
            ),
            None,
        )
    return InstrumentRules(**values)


@dataclass(frozen=True)
class AccountView:
    """What the service knows of an account when an intent arrives. Every field is required, so
    that forgetting one (the global kill switch, say) is an error rather than a default.

    `positions` are filled and signed; `pending` is, per instrument, the unfilled remainder of
    the buy orders and of the sell orders risk approved that are not finished yet (approved but
    not yet placed, and open), and `open_orders` their count; `prices` the last price per
    instrument; `recent_approvals` the times of the account's recent approvals (a minute's worth
    is enough). A missing instrument has no position, nothing pending, no price.
    """

    state: TradingState
    kill_switch: bool
    global_kill_switch: bool
    realised_pnl_today: Decimal  # the UTC day's; negative is a loss
    positions: Mapping[InstrumentId, Decimal]
    pending: Mapping[InstrumentId, tuple[Decimal, Decimal]]  # (buys, sells), both >= 0
    open_orders: int
    prices: Mapping[InstrumentId, Decimal]
    recent_approvals: Sequence[datetime]

    def __post_init__(self) -> None:
        if self.open_orders < 0:
            raise ValueError(f"open_orders must be >= 0, not {self.open_orders}")
        for instrument, (buys, sells) in self.pending.items():
            if buys < 0 or sells < 0:
                raise ValueError(f"pending of {instrument} must be >= 0, not ({buys}, {sells})")
        for instrument, price in self.prices.items():
            if not price > 0:
                raise ValueError(f"the price of {instrument} must be positive, not {price}")
        if any(at.utcoffset() is None for at in self.recent_approvals):
            raise ValueError("recent_approvals must be timezone-aware")

    def position(self, instrument_id: InstrumentId) -> Decimal:
        return self.positions.get(instrument_id, ZERO)

    def pending_of(self, instrument_id: InstrumentId) -> tuple[Decimal, Decimal]:
        return self.pending.get(instrument_id, (ZERO, ZERO))


@dataclass(frozen=True)
class Denial:
    """Why risk refused an order: a reason code for machines, a message for humans (the limit
    and the value that broke it; no secrets)."""

    reason: DenialReason
    message: str

    def __post_init__(self) -> None:
        if not self.message or len(self.message) > MAX_MESSAGE:
            raise ValueError(f"a denial message has 1 to {MAX_MESSAGE} characters")


def _deny(reason: DenialReason, message: str) -> Denial:
    """A Denial, its message cut to fit: a long message must not turn a denial into a crash."""
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 1] + "…"
    return Denial(reason, message)


def _fmt(value: Decimal) -> str:
    """A Decimal as people write it: 1E+2 is 100."""
    return f"{value:f}"


def _is_multiple(value: Decimal, step: Decimal) -> bool:
    """Whether `value` is a whole number of `step`s, exactly (Decimal remainders are exact)."""
    with localcontext() as context:
        context.prec = 100
        try:
            return value % step == 0
        except InvalidOperation:  # a quotient of over 100 digits: not a sane order anyway
            return False


def reference_price(order: SubmitOrder, view: AccountView) -> Decimal | None:
    """The price an order is valued at: its limit price for LIMIT and STOP_LIMIT (the worst it
    can fill at), else the instrument's last price; None when there is none."""
    if order.order_type in _LIMIT_ORDERS:
        return order.limit_price
    return view.prices.get(order.instrument_id)


def worst_case(order: SubmitOrder, view: AccountView) -> Decimal:
    """The signed position if this order and every pending order on its side fill: position +
    pending buys + quantity for a buy, position - pending sells - quantity for a sell."""
    position = view.position(order.instrument_id)
    buys, sells = view.pending_of(order.instrument_id)
    if order.side == "buy":
        return position + buys + order.quantity
    return position - sells - order.quantity


def reduces(order: SubmitOrder, view: AccountView) -> bool:
    """Whether the order reduces its position without flipping it, pending orders on its side
    counted as filled: a sell must leave position - pending sells - quantity >= 0, a buy must
    leave position + pending buys + quantity <= 0. Nothing reduces a flat position."""
    after = worst_case(order, view)
    return after >= 0 if order.side == "sell" else after <= 0


def breaches_daily_loss(view: AccountView, limits: Limits) -> bool:
    """Whether the day's realised loss has reached the daily loss limit (a loss of exactly the
    limit has): the service then switches the account to REDUCING."""
    return daily_loss_reached(view.realised_pnl_today, limits)


def daily_loss_reached(realised_pnl_today: Decimal, limits: Limits) -> bool:
    """breaches_daily_loss on the day's realised PnL alone (what a fill changes)."""
    limit = limits.daily_loss_limit
    return limit is not None and realised_pnl_today <= -limit


def daily_loss_message(realised_pnl_today: Decimal, limits: Limits) -> str:
    """The figures of a daily loss limit reached, for people (a denial, a state change)."""
    limit = limits.daily_loss_limit
    return (
        f"realised PnL today {_fmt(realised_pnl_today)} has reached the daily_loss_limit "
        f"{'none' if limit is None else _fmt(limit)}"
    )


def check_cancel(view: AccountView) -> Denial | None:
    """Always None: a cancel is never denied, not under a kill switch nor when HALTED, because
    cancelling can only reduce risk (a deliberate rule; the function exists to say it)."""
    return None


# ---- the trading state ---------------------------------------------------------------------


@dataclass(frozen=True)
class TradingControls:
    """What an account's trading state comes from: the state set on it (by an admin, or REDUCING
    by its daily loss limit) and its kill switch, which halts it whatever that state is. The
    platform's controls are its global kill switch alone (its state is always ACTIVE)."""

    state: TradingState = TradingState.ACTIVE
    kill_switch: bool = False

    @property
    def trading_state(self) -> TradingState:
        """What the account may do: HALTED while its kill switch is engaged, else its state."""
        return TradingState.HALTED if self.kill_switch else self.state


@dataclass(frozen=True)
class DailyLossReached:
    """The day's realised loss reached the daily loss limit (see `breaches_daily_loss`)."""


@dataclass(frozen=True)
class KillSwitchSet:
    """The account's kill switch engaged or released (the platform's, when `platform`)."""

    engaged: bool
    platform: bool = False


@dataclass(frozen=True)
class StateSet:
    """An admin set the account's state."""

    state: TradingState


StateCause = DailyLossReached | KillSwitchSet | StateSet


@dataclass(frozen=True)
class Transition:
    """What a cause did to an account's controls, and so to its trading state. `changed` says
    whether the trading state changed, and so whether a TradingStateChanged is due; the controls
    may change without it (`controls_changed`): a daily loss or a state set by hand under the
    kill switch changes the state the account returns to when the switch is released."""

    before: TradingControls
    after: TradingControls
    reason: TradingStateReason

    @property
    def old_state(self) -> TradingState:
        return self.before.trading_state

    @property
    def new_state(self) -> TradingState:
        return self.after.trading_state

    @property
    def changed(self) -> bool:
        return self.old_state is not self.new_state

    @property
    def controls_changed(self) -> bool:
        return self.before != self.after

    def event(
        self,
        account_id: AccountId | None,
        at: datetime,
        *,
        by: UserId | None = None,
        message: str | None = None,
    ) -> TradingStateChanged | None:
        """The TradingStateChanged of this transition (None when the trading state did not
        change): of the account, or of the platform when `account_id` is None; `by` the acting
        user, `message` what they gave as reason (cut to fit)."""
        if not self.changed:
            return None
        return TradingStateChanged(
            account_id=account_id,
            old_state=self.old_state,
            new_state=self.new_state,
            reason=self.reason,
            message=None if message is None else _cut(message),
            changed_by=by,
            changed_at=at,
        )


def transition(controls: TradingControls, cause: StateCause) -> Transition:
    """The account's controls after `cause`:

    - the daily loss limit reached: ACTIVE goes REDUCING; REDUCING and HALTED stay (a limit
      never loosens a state, and never lifts a halt);
    - the kill switch engaged or released: the trading state is HALTED while it is engaged, and
      the state set on the account once it is released;
    - an admin setting the state: that state (a halt, a reduce, a resume), which the kill
      switch, if engaged, still overrides until it is released.
    """
    match cause:
        case DailyLossReached():
            reducing = controls.state is TradingState.ACTIVE
            after = replace(controls, state=TradingState.REDUCING) if reducing else controls
            return Transition(controls, after, TradingStateReason.DAILY_LOSS_LIMIT)
        case KillSwitchSet(engaged=engaged, platform=platform):
            reasons = (
                (
                    TradingStateReason.GLOBAL_KILL_SWITCH_ENGAGED,
                    TradingStateReason.GLOBAL_KILL_SWITCH_RELEASED,
                )
                if platform
                else (
                    TradingStateReason.KILL_SWITCH_ENGAGED,
                    TradingStateReason.KILL_SWITCH_RELEASED,
                )
            )
            reason = reasons[0] if engaged else reasons[1]
            return Transition(controls, replace(controls, kill_switch=engaged), reason)
        case StateSet(state=state):
            return Transition(controls, replace(controls, state=state), TradingStateReason.MANUAL)
        case _:
            assert_never(cause)


def _cut(message: str) -> str:
    """A message cut to MAX_MESSAGE characters (TradingStateChanged.message's limit)."""
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 1] + "…"


@dataclass(frozen=True)
class _Case:
    """One order under check, with what the checks after the price check share."""

    order: SubmitOrder
    view: AccountView
    limits: Limits
    rules: InstrumentRules | None
    now: datetime
    last: Decimal | None  # the instrument's last price
    reference: Decimal  # see reference_price
    reduces: bool

    @property
    def notional(self) -> Decimal:
        return self.order.quantity * self.reference


def check(
    order: SubmitOrder,
    view: AccountView,
    limits: Limits,
    rules: InstrumentRules | None,
    now: datetime,
) -> Denial | None:
    """None if the order may go to the venue, else the first check it fails, in this order:

    1. a kill switch, global or the account's: KILL_SWITCH;
    2. the account HALTED: TRADING_HALTED;
    3. no price to value the order at (a MARKET or STOP order without a last price), or no last
       price for a collared LIMIT/STOP_LIMIT: NO_MARKET_PRICE;
    4. the instrument's bounds: the venue's precision (price and quantity steps):
       INSTRUMENT_PRECISION, then its minimums (quantity, notional): INSTRUMENT_MINIMUM, then
       its maxima (quantity, limit and stop price, notional): INSTRUMENT_MAXIMUM;
    5. max_order_quantity; 6. max_order_notional (quantity x reference price);
    7. REDUCING, or a reduce_only order: the order must reduce its position: REDUCE_ONLY;
    8. the daily loss limit reached: only reducing orders pass: DAILY_LOSS_LIMIT;
    9. max_position, worst case; 10. max_gross_exposure, worst case (NO_MARKET_PRICE when an
       exposure cannot be valued);
    11. max_open_orders; 12. the price collar, on the limit and the stop price (PRICE_COLLAR);
    13. the order rates (ORDER_RATE).
    """
    if now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    if view.global_kill_switch or view.kill_switch:
        which = "the global kill switch" if view.global_kill_switch else "the account's kill switch"
        return _deny(DenialReason.KILL_SWITCH, f"{which} is on: no new orders")
    if view.state is TradingState.HALTED:
        return _deny(DenialReason.TRADING_HALTED, "trading is HALTED for the account")
    last = view.prices.get(order.instrument_id)
    reference = reference_price(order, view)
    if reference is None:
        return _deny(
            DenialReason.NO_MARKET_PRICE,
            f"no last price for {order.instrument_id} to value a {order.order_type} order at",
        )
    collar = limits.price_collar_bps
    if last is None and collar is not None and order.order_type in _LIMIT_ORDERS:
        return _deny(
            DenialReason.NO_MARKET_PRICE,
            f"no last price for {order.instrument_id} to check the price_collar_bps "
            f"{_fmt(collar)} against",
        )
    case = _Case(order, view, limits, rules, now, last, reference, reduces(order, view))
    for step in _STEPS:
        if (denial := step(case)) is not None:
            return denial
    return None


def _precision(case: _Case) -> Denial | None:
    """Prices and quantity on the venue's grid (a price_step of 0.01 refuses 100.005)."""
    rules, order = case.rules, case.order
    if rules is None:
        return None
    if rules.price_step is not None:
        for name, price in (("limit price", order.limit_price), ("stop price", order.stop_price)):
            if price is not None and not _is_multiple(price, rules.price_step):
                return _deny(
                    DenialReason.INSTRUMENT_PRECISION,
                    f"{name} {_fmt(price)} is not a multiple of the price_step "
                    f"{_fmt(rules.price_step)}",
                )
    if rules.quantity_step is not None and not _is_multiple(order.quantity, rules.quantity_step):
        return _deny(
            DenialReason.INSTRUMENT_PRECISION,
            f"quantity {_fmt(order.quantity)} is not a multiple of the quantity_step "
            f"{_fmt(rules.quantity_step)}",
        )
    return None


def _minimums(case: _Case) -> Denial | None:
    """The venue's smallest order, in quantity and in notional (at the reference price)."""
    rules, order = case.rules, case.order
    if rules is None:
        return None
    if rules.min_quantity is not None and order.quantity < rules.min_quantity:
        return _deny(
            DenialReason.INSTRUMENT_MINIMUM,
            f"quantity {_fmt(order.quantity)} is below the min_quantity {_fmt(rules.min_quantity)}",
        )
    if rules.min_notional is not None and case.notional < rules.min_notional:
        return _deny(
            DenialReason.INSTRUMENT_MINIMUM,
            f"notional {_fmt(case.notional)} ({_fmt(order.quantity)} at {_fmt(case.reference)}) "
            f"is below the min_notional {_fmt(rules.min_notional)}",
        )
    return None


def _maximums(case: _Case) -> Denial | None:
    """The instrument's largest order: quantity, limit and stop price, notional (at the
    reference price). Where the venue states none, the platform's default bounds apply (see
    `rules_in_force`), so that no order of 10^17 of anything reaches a venue."""
    rules, order = case.rules, case.order
    if rules is None:
        return None
    name = order.instrument_id
    if rules.max_quantity is not None and order.quantity > rules.max_quantity:
        return _deny(
            DenialReason.INSTRUMENT_MAXIMUM,
            f"quantity {_fmt(order.quantity)} exceeds the max_quantity "
            f"{_fmt(rules.max_quantity)} of {name}",
        )
    if rules.max_price is not None:
        for kind, price in (("limit price", order.limit_price), ("stop price", order.stop_price)):
            if price is not None and price > rules.max_price:
                return _deny(
                    DenialReason.INSTRUMENT_MAXIMUM,
                    f"{kind} {_fmt(price)} exceeds the max_price {_fmt(rules.max_price)} of {name}",
                )
    if rules.max_notional is not None and case.notional > rules.max_notional:
        return _deny(
            DenialReason.INSTRUMENT_MAXIMUM,
            f"notional {_fmt(case.notional)} ({_fmt(order.quantity)} at {_fmt(case.reference)}) "
            f"exceeds the max_notional {_fmt(rules.max_notional)} of {name}",
        )
    return None


def _order_quantity(case: _Case) -> Denial | None:
    limit = case.limits.max_order_quantity
    if limit is not None and case.order.quantity > limit:
        return _deny(
            DenialReason.MAX_ORDER_QUANTITY,
            f"quantity {_fmt(case.order.quantity)} exceeds the max_order_quantity {_fmt(limit)}",
        )
    return None


def _order_notional(case: _Case) -> Denial | None:
    limit = case.limits.max_order_notional
    if limit is not None and case.notional > limit:
        return _deny(
            DenialReason.MAX_ORDER_NOTIONAL,
            f"notional {_fmt(case.notional)} ({_fmt(case.order.quantity)} at "
            f"{_fmt(case.reference)}) exceeds the max_order_notional {_fmt(limit)}",
        )
    return None


def _reducing(case: _Case) -> Denial | None:
    """In REDUCING, and for a reduce_only order, only orders that reduce (see `reduces`)."""
    order, view = case.order, case.view
    if case.reduces or not (view.state is TradingState.REDUCING or order.reduce_only):
        return None
    position = view.position(order.instrument_id)
    after = worst_case(order, view)
    why = "the account is REDUCING" if view.state is TradingState.REDUCING else "reduce_only"
    return _deny(
        DenialReason.REDUCE_ONLY,
        f"{why}: {order.side} {_fmt(order.quantity)} would take the position {_fmt(position)} "
        f"of {order.instrument_id} to {_fmt(after)} with pending orders, which does not reduce it",
    )


def _daily_loss(case: _Case) -> Denial | None:
    """An ACTIVE account whose day's loss reached the limit only reduces (the service switches
    it to REDUCING; until then this check says the same)."""
    view, limit = case.view, case.limits.daily_loss_limit
    if view.state is not TradingState.ACTIVE or case.reduces or limit is None:
        return None
    if not breaches_daily_loss(view, case.limits):
        return None
    return _deny(
        DenialReason.DAILY_LOSS_LIMIT,
        f"{daily_loss_message(view.realised_pnl_today, case.limits)}: only orders that reduce a "
        "position are allowed",
    )


def _position(case: _Case) -> Denial | None:
    """The worst-case absolute position if this order and every pending one on its side fill."""
    limit = case.limits.max_position
    if limit is None or case.reduces:
        return None
    after = worst_case(case.order, case.view)
    if abs(after) <= limit:
        return None
    return _deny(
        DenialReason.MAX_POSITION,
        f"{case.order.side} {_fmt(case.order.quantity)} would take the position of "
        f"{case.order.instrument_id} to {_fmt(abs(after))} (with pending orders), over the "
        f"max_position {_fmt(limit)}",
    )


def _gross_exposure(case: _Case) -> Denial | None:
    """The worst-case gross exposure: this instrument's position with this order (as for
    max_position), at the last price or, without one, the order's reference price; every other
    instrument at its own worst case, max(|position + buys|, |position - sells|), at its last
    price. Another instrument without a price cannot be valued: the order is denied
    NO_MARKET_PRICE if that instrument has a position or pending orders (otherwise it counts
    nothing), rather than guessing its exposure."""
    limit = case.limits.max_gross_exposure
    if limit is None or case.reduces:
        return None
    order, view = case.order, case.view
    total = ZERO
    for instrument in sorted({*view.positions, *view.pending, order.instrument_id}):
        if instrument == order.instrument_id:
            quantity = abs(worst_case(order, view))
            price: Decimal | None = case.last if case.last is not None else case.reference
        else:
            position = view.position(instrument)
            buys, sells = view.pending_of(instrument)
            quantity = max(abs(position + buys), abs(position - sells))
            price = view.prices.get(instrument)
        if quantity == 0:
            continue
        if price is None:
            return _deny(
                DenialReason.NO_MARKET_PRICE,
                f"no last price for {instrument} (worst-case position {_fmt(quantity)}) to "
                f"value the gross exposure against the max_gross_exposure {_fmt(limit)}",
            )
        total += quantity * price
    if total <= limit:
        return None
    return _deny(
        DenialReason.MAX_GROSS_EXPOSURE,
        f"{order.side} {_fmt(order.quantity)} {order.instrument_id} would take the gross "
        f"exposure to {_fmt(total)} (with pending orders), over the max_gross_exposure "
        f"{_fmt(limit)}",
    )


def _open_orders(case: _Case) -> Denial | None:
    limit = case.limits.max_open_orders
    if limit is not None and case.view.open_orders + 1 > limit:
        return _deny(
            DenialReason.MAX_OPEN_ORDERS,
            f"{case.view.open_orders} orders are open: one more exceeds the max_open_orders "
            f"{limit}",
        )
    return None


def _collar(case: _Case) -> Denial | None:
    """A limit price (LIMIT, STOP_LIMIT) and a stop price (STOP, STOP_LIMIT) at most
    price_collar_bps away from the last price: a fat finger guard (a stop 10 times the price
    would trigger at once). Compared without dividing, so exactly N bps is exactly N bps."""
    limit, order, last = case.limits.price_collar_bps, case.order, case.last
    if limit is None:
        return None
    if last is None:  # denied NO_MARKET_PRICE before when it matters; a STOP has no price then
        return None
    limit_price = order.limit_price if order.order_type in _LIMIT_ORDERS else None
    for kind, price in (("limit price", limit_price), ("stop price", order.stop_price)):
        if price is None:
            continue
        distance = abs(price - last)
        if distance * BPS <= limit * last:
            continue
        with localcontext() as context:
            context.prec = 100  # a price far beyond the last one still makes a message
            bps = (distance * BPS / last).quantize(Decimal("0.01"), rounding=ROUND_UP)
        return _deny(
            DenialReason.PRICE_COLLAR,
            f"{kind} {_fmt(price)} is {_fmt(bps)} bps from the last price {_fmt(last)}, over the "
            f"price_collar_bps {_fmt(limit)}",
        )
    return None


def _rate(case: _Case) -> Denial | None:
    """Approvals in (now - window, now], this order included, at most the limit."""
    rates = (
        (timedelta(seconds=1), "second", case.limits.max_orders_per_second),
        (timedelta(minutes=1), "minute", case.limits.max_orders_per_minute),
    )
    for window, unit, limit in rates:
        name = f"max_orders_per_{unit}"
        if limit is None:
            continue
        since = case.now - window
        count = 1 + sum(1 for at in case.view.recent_approvals if since < at <= case.now)
        if count > limit:
            return _deny(
                DenialReason.ORDER_RATE,
                f"this order would be approval {count} in the last {unit}, over the {name} {limit}",
            )
    return None


_STEPS = (
    _precision,
    _minimums,
    _maximums,
    _order_quantity,
    _order_notional,
    _reducing,
    _daily_loss,
    _position,
    _gross_exposure,
    _open_orders,
    _collar,
    _rate,
)
