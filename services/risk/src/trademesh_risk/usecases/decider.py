"""Deciding intents, following fills, and the switches: the risk service's work, on its tables.

An account's trading state changes in the transaction of what changed it (a fill or an intent
past the daily loss limit, a kill switch, an admin's state), as the engine's `transition` says,
and its TradingStateChanged goes into the outbox in that same transaction: published once per
change, and never for what changed nothing.

An intent is decided in the transaction of its delivery (inbox entry, decision row, and the
approval or denial in the outbox commit together). The account's row is locked first, so the
intents of one account are decided one at a time, on every replica; an approved order counts
as pending exposure at once, so two quick intents cannot both pass a limit only one fits.

A batch of intents costs a fixed number of statements, whatever its size: the accounts are
locked (two), their state is read (one), the decisions and the events are written (one each).
In between, the intents are decided in memory, in order, on a running view of each account that
every approval updates (pending exposure, open orders, approval times), as the database would
show it to a re-read: the accounts are locked for the whole transaction and everything that
grows exposure is written under that lock, so nothing else changes what the view holds. (A
cancel or rejection finishing an order elsewhere meanwhile only makes the view stricter than a
re-read, as if it came after the batch.) The limits and rules come from memory (ConfigCache),
checked against the configuration's version read with the state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import assert_never

import asyncpg
from trademesh_bus import Delivery
from trademesh_bus.outbox import Outbox, Outgoing
from trademesh_db import Database
from trademesh_events.ids import AccountId, ClientOrderId, InstrumentId, UserId
from trademesh_events.orders import (
    AccountChanged,
    CancelAllOrders,
    CancelOrder,
    DenialReason,
    OrderApproved,
    OrderCanceled,
    OrderDenied,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    SubmitOrder,
)
from trademesh_events.risk import TradingStateChanged
from trademesh_events.topics import ORDERS_APPROVED, OrderIntent, get_topic
from trademesh_observability import metrics
from trademesh_observability.logging import get_logger
from trademesh_trading import buying_power
from trademesh_trading.buying_power import AccountTerms, Holdings, MarginMode
from trademesh_trading.positions import cash_delta

from trademesh_risk.engine import (
    AccountView,
    DailyLossReached,
    Denial,
    InstrumentRules,
    KillSwitchSet,
    Limits,
    StateSet,
    TradingControls,
    TradingState,
    Transition,
    apply_fill,
    breaches_daily_loss,
    ceilings,
    check,
    daily_loss_message,
    daily_loss_reached,
    effective,
    rules_in_force,
    transition,
)
from trademesh_risk.store import AccountState, Decision, PositionRow, RiskStore
from trademesh_risk.usecases.config_cache import Config, ConfigCache
from trademesh_risk.usecases.prices import PriceBook

log = get_logger("trademesh_risk.decider")

_APPROVED = get_topic(ORDERS_APPROVED)
_RATE_WINDOW = timedelta(seconds=60)  # the longest rate limit's window (engine._rate)
ZERO = Decimal(0)


@dataclass
class _Running:
    """An account while its batch is decided: as read, then changed by each approval."""

    state: TradingState
    kill_switch: bool
    realised_today: Decimal
    positions: dict[InstrumentId, Decimal]
    pending: dict[InstrumentId, tuple[Decimal, Decimal]]
    open_orders: int
    recent_approvals: list[datetime]
    cash: Decimal | None
    terms: AccountTerms
    reserved: Decimal
    currency: str | None
    holdings: Mapping[str, Decimal] | None

    @classmethod
    def of(cls, read: AccountState | None, today: date) -> _Running:
        if read is None:  # not locked by this batch (cannot happen: lock_accounts creates it)
            raise RuntimeError("an account of the batch was not locked")
        return cls(
            state=read.state,
            kill_switch=read.kill_switch,
            realised_today=read.realised_today if read.pnl_day == today else ZERO,
            positions=dict(read.positions),
            pending=dict(read.pending),
            open_orders=read.open_orders,
            recent_approvals=list(read.recent_approvals),
            cash=read.cash,
            terms=read.terms,
            reserved=read.reserved,
            currency=read.currency,
            holdings=read.holdings,
        )

    @property
    def controls(self) -> TradingControls:
        return TradingControls(self.state, self.kill_switch)

    def approved(self, order: SubmitOrder, at: datetime, reserved: Decimal) -> None:
        buys, sells = self.pending.get(order.instrument_id, (ZERO, ZERO))
        if order.side == "buy":
            buys += order.quantity
        else:
            sells += order.quantity
        self.pending[order.instrument_id] = (buys, sells)
        self.open_orders += 1
        self.recent_approvals.append(at)
        self.reserved += reserved


class Decider:
    def __init__(
        self,
        *,
        db: Database,
        store: RiskStore,
        prices: PriceBook,
        outbox: Outbox,
        service: str,
        clock: Callable[[], datetime],
        default_limits: Limits,
        instrument_bounds: InstrumentRules,
    ) -> None:
        self.db = db
        self.store = store
        self.prices = prices
        self.outbox = outbox
        self.service = service
        self.clock = clock
        self.default_limits = default_limits
        self.instrument_bounds = instrument_bounds
        self.config = ConfigCache(store, default_limits, instrument_bounds)
        # Counted from 0 for every known outcome, so that a first denial of a reason, or a first
        # account sent to REDUCING, is an increase that alerts and rate() panels see.
        metrics.RISK_DECISIONS.labels(service=service, decision="approved", reason="")
        for reason in DenialReason:
            metrics.RISK_DECISIONS.labels(service=service, decision="denied", reason=reason.value)
        metrics.RISK_REDUCING.labels(service=service)

    # ---- intents -------------------------------------------------------------------------------

    async def lock_accounts(
        self, conn: asyncpg.Connection, account_ids: Sequence[AccountId]
    ) -> None:
        """Lock these accounts' rows (created when new) for the transaction, in id order: a
        batch takes its locks up front, so two batches never wait for each other in a circle."""
        if account_ids:
            await self.store.lock_accounts(conn, sorted(set(account_ids)), self.clock().date())

    async def on_intent(self, conn: asyncpg.Connection, event: OrderIntent) -> None:
        """Decide one intent (a batch of one): see on_intents."""
        await self.on_intents(conn, [(event, None)])

    async def on_intents(
        self, conn: asyncpg.Connection, received: Sequence[tuple[OrderIntent, Delivery | None]]
    ) -> None:
        """Decide a batch of intents, in order, in the caller's transaction: lock their accounts,
        read their state once, decide each in memory, write the decisions and the events at the
        end (each event under the trace of the delivery it answers). A cancel is forwarded; an
        intent whose client order id was decided before (in an earlier batch or this one) is
        not decided again."""
        orders = [event for event, _ in received if isinstance(event, SubmitOrder)]
        now = self.clock()
        today = now.date()
        decisions: list[Decision] = []
        outgoing: list[Outgoing] = []
        running: dict[AccountId, _Running] = {}
        config: Config | None = None
        decided: set[ClientOrderId] = set()
        global_on = False
        if orders:
            account_ids = sorted({o.account_id for o in orders})
            await self.lock_accounts(conn, account_ids)
            read = await self.store.intents_state(
                conn, account_ids, [o.client_order_id for o in orders], now - _RATE_WINDOW
            )
            global_on, decided = read.global_kill_switch, set(read.decided)
            running = {a: _Running.of(read.accounts.get(a), today) for a in account_ids}
            new_day = [a for a, s in read.accounts.items() if s.pnl_day != today]
            if new_day:
                await self.store.start_day(conn, new_day, today)
            config = await self.config.get(
                conn,
                read.config_version,
                account_ids,
                {o.instrument_id for o in orders},
                {(o.account_id, o.instrument_id) for o in orders},
            )
        for event, delivery in received:
            traceparent = delivery.traceparent if delivery is not None else None
            match event:
                case CancelOrder():
                    # Cancelling only ever lowers risk: forwarded even under a kill switch.
                    outgoing.append(Outgoing(event, topic=_APPROVED, traceparent=traceparent))
                    continue
                case SubmitOrder():
                    pass
                case _:
                    assert_never(event)
            assert config is not None  # read above, as the batch has an order
            if event.client_order_id in decided:
                continue  # the same intent again (a bot re-emitting it): the first decision stands
            decided.add(event.client_order_id)
            with delivery.traced() if delivery is not None else nullcontext():
                decision, denial, changed = await self._decide(
                    conn, event, running[event.account_id], config, global_on
                )
            decisions.append(decision)
            if changed is not None:
                outgoing.append(Outgoing(changed, traceparent=traceparent))
            outgoing.append(
                Outgoing(self._answer(event, decision, denial), traceparent=traceparent)
            )
        await self.store.record_decisions(conn, decisions)
        await self.outbox.add_many(conn, outgoing)

    async def _decide(
        self,
        conn: asyncpg.Connection,
        event: SubmitOrder,
        account: _Running,
        config: Config,
        global_on: bool,
    ) -> tuple[Decision, Denial | None, TradingStateChanged | None]:
        """The decision on one intent, its denial if denied, and the account's trading state
        change if the intent found the account past its daily loss limit."""
        now = self.clock()
        view = AccountView(
            state=account.state,
            kill_switch=account.kill_switch,
            global_kill_switch=global_on,
            realised_pnl_today=account.realised_today,
            positions=account.positions,
            pending=account.pending,
            open_orders=account.open_orders,
            prices=self.prices.of({event.instrument_id, *account.positions, *account.pending}),
            recent_approvals=account.recent_approvals,
        )
        limits = config.limits(event.account_id, event.instrument_id)
        denial = check(event, view, limits, config.rules_of(event.instrument_id), now)
        reserved = ZERO
        if denial is None:
            denial, reserved = _buying_power(event, view, account)
        changed = None
        if breaches_daily_loss(view, limits):
            change = await self._reduce(conn, event.account_id, account.controls)
            account.state = change.after.state
            message = daily_loss_message(view.realised_pnl_today, limits)
            changed = change.event(event.account_id, now, message=message)
        if denial is None:
            account.approved(event, now, reserved)
            metrics.RISK_DECISIONS.labels(
                service=self.service, decision="approved", reason=""
            ).inc()
            log.info("order approved", **_order_fields(event))
        else:
            metrics.RISK_DECISIONS.labels(
                service=self.service, decision="denied", reason=denial.reason.value
            ).inc()
            log.info("order denied", **_order_fields(event), reason=denial.reason.value)
        decision = Decision(
            client_order_id=event.client_order_id,
            account_id=event.account_id,
            instrument_id=event.instrument_id,
            side=event.side,
            quantity=event.quantity,
            approved=denial is None,
            reason=None if denial is None else denial.reason.value,
            at=now,
            reserved=reserved,
        )
        return decision, denial, changed

    @staticmethod
    def _answer(
        event: SubmitOrder, decision: Decision, denial: Denial | None
    ) -> OrderApproved | OrderDenied:
        if denial is None:
            return OrderApproved(account_id=event.account_id, order=event, approved_at=decision.at)
        return OrderDenied(
            account_id=event.account_id,
            user_id=event.user_id,
            client_order_id=event.client_order_id,
            instrument_id=event.instrument_id,
            reason=denial.reason,
            message=denial.message,
            denied_at=decision.at,
            order=event,
        )

    async def limits_in_force(
        self,
        conn: asyncpg.Connection | None,
        account_id: AccountId,
        instrument_id: InstrumentId | None,
    ) -> Limits:
        """The limits an order of the account on the instrument is checked against: its
        ceilings (the defaults, or an admin's limits in their place), its own limits and its
        limits for the instrument (None: the account-wide ones only), the stricter of all."""
        own, per_instrument = await self.store.limits(account_id, instrument_id, conn)
        admin = await self.store.admin_limits(account_id, conn)
        return effective(ceilings(self.default_limits, admin), own, per_instrument)

    async def rules_in_force(
        self, conn: asyncpg.Connection | None, instrument_id: InstrumentId
    ) -> InstrumentRules | None:
        """The instrument's bounds: an admin's override, else the venue's, else the defaults."""
        layers = await self.store.rule_layers(instrument_id, conn)
        venue, admin = layers.get("venue"), layers.get("admin")
        return rules_in_force(
            venue.rules if venue is not None else None,
            admin.rules if admin is not None else None,
            self.instrument_bounds,
        )

    async def _reduce(
        self, conn: asyncpg.Connection, account_id: AccountId, controls: TradingControls
    ) -> Transition:
        """The daily loss limit reached: an ACTIVE account goes REDUCING (stored here; the
        caller publishes the change with the figures). Nothing changes for one that is not."""
        change = transition(controls, DailyLossReached())
        if change.controls_changed:
            await self.store.set_state(
                conn, account_id, change.after.state, "daily realised loss limit reached"
            )
            metrics.RISK_REDUCING.labels(service=self.service).inc()
            log.warning("account reducing: daily loss limit", account_id=str(account_id))
        return change

    async def _publish(
        self,
        conn: asyncpg.Connection,
        change: Transition,
        account_id: AccountId | None,
        *,
        by: UserId | None = None,
        message: str | None = None,
    ) -> None:
        """The change's TradingStateChanged into the outbox, in the caller's transaction (the
        one that stored the change); nothing when the trading state did not change."""
        event = change.event(account_id, self.clock(), by=by, message=message)
        if event is not None:
            await self.outbox.add(conn, event)

    # ---- order events ----------------------------------------------------------------------------

    async def on_fill(self, conn: asyncpg.Connection, event: OrderFilled) -> None:
        """A fill changes the position and the realised PnL (once per trade id), and may send
        the account to REDUCING."""
        today = self.clock().date()
        counted = await self.store.count_fill(
            conn,
            account_id=event.account_id,
            instrument_id=event.instrument_id,
            client_order_id=event.client_order_id,
            trade_id=event.trade_id,
            qty=event.last_qty,
            leaves=event.leaves_qty,
        )
        if not counted.added:
            return
        currency = counted.currency
        if counted.account is None:  # the caller did not lock it (the handler does)
            row = await self.store.lock_account(conn, event.account_id, today)
            controls = TradingControls(row.state, row.kill_switch)
            pnl_day, realised_today, currency = row.pnl_day, row.realised_today, row.currency
        else:
            state, kill_switch, pnl_day, realised_today = counted.account
            controls = TradingControls(state, kill_switch)
        held = counted.held
        position, avg_price, realised = apply_fill(
            held.position,
            held.avg_price,
            event.side,
            event.last_qty,
            event.last_price,
            event.booked_fee,
        )
        realised_today = (realised_today if pnl_day == today else ZERO) + realised
        cash_moved, holdings_moved = _moves(event, currency)
        await self.store.book_fill(
            conn,
            event.account_id,
            PositionRow(event.instrument_id, position, avg_price, held.realised + realised),
            realised_today,
            today,
            cash_moved,
            holdings_moved,
        )
        if controls.state is TradingState.ACTIVE:
            config = await self.config.get(conn, counted.config_version, [event.account_id])
            limits = config.limits(event.account_id, None)
            if daily_loss_reached(realised_today, limits):
                change = await self._reduce(conn, event.account_id, controls)
                message = daily_loss_message(realised_today, limits)
                await self._publish(conn, change, event.account_id, message=message)

    async def on_account(self, conn: asyncpg.Connection, event: AccountChanged) -> None:
        """Execution opened a paper account or changed its terms, or read an exchange account's
        balances from its venue: its cash from now on (the account's later fills move it), its
        buying-power terms, and an exchange account's currency and venue holdings (replaced,
        not added to: a snapshot). The caller holds the lock."""
        terms = AccountTerms(
            MarginMode(event.margin_mode), event.max_leverage, event.allow_short, event.fee_bps
        )
        await self.store.set_buying_power(
            conn,
            event.account_id,
            terms,
            event.cash,
            currency=event.currency,
            holdings=event.holdings,
        )

    async def on_finished(
        self, conn: asyncpg.Connection, event: OrderRejected | OrderCanceled | OrderExpired
    ) -> None:
        """An order that ended without (more) fills stops counting as pending."""
        await self.store.close_order(conn, event.client_order_id)

    # ---- switches and states -----------------------------------------------------------------

    async def set_kill_switch(
        self, account_id: AccountId, engaged: bool, reason: str | None, by: UserId | None = None
    ) -> None:
        """Engaging takes effect on the account's next intent and asks execution to cancel its
        open orders (CancelAllOrders); the account is HALTED until it is released. `by`: the
        user who set it."""
        async with self.db.transaction() as conn:
            row = await self.store.lock_account(conn, account_id, self.clock().date())
            change = transition(TradingControls(row.state, row.kill_switch), KillSwitchSet(engaged))
            await self.store.set_kill_switch(conn, account_id, engaged, reason)
            if engaged:
                await self._cancel_all(conn, account_id, reason or "kill switch engaged")
            await self._publish(conn, change, account_id, by=by, message=reason)
        log.warning(
            "account kill switch", account_id=str(account_id), engaged=engaged, reason=reason
        )

    async def set_global_switch(
        self, engaged: bool, reason: str | None, by: UserId | None = None
    ) -> None:
        """The platform's kill switch: every account HALTED while it is engaged (one
        TradingStateChanged without an account says so, not one per account)."""
        async with self.db.transaction() as conn:
            was = await self.store.set_global_switch(conn, engaged, reason)
            platform = transition(TradingControls(kill_switch=was), KillSwitchSet(engaged, True))
            await self._publish(conn, platform, None, by=by, message=reason)
            if engaged:
                for account_id in await self.store.accounts_with_open_orders(conn):
                    await self._cancel_all(conn, account_id, reason or "global kill switch")
        metrics.RISK_KILL_SWITCH.labels(service=self.service).set(1 if engaged else 0)
        log.warning("global kill switch", engaged=engaged, reason=reason)

    async def set_state(
        self,
        account_id: AccountId,
        state: TradingState,
        reason: str | None,
        by: UserId | None = None,
    ) -> None:
        """An admin (`by`) sets the account's state: under its kill switch, the state it returns
        to when the switch is released."""
        async with self.db.transaction() as conn:
            row = await self.store.lock_account(conn, account_id, self.clock().date())
            change = transition(TradingControls(row.state, row.kill_switch), StateSet(state))
            await self.store.set_state(conn, account_id, state, reason)
            await self._publish(conn, change, account_id, by=by, message=reason)

    async def _cancel_all(
        self, conn: asyncpg.Connection, account_id: AccountId, reason: str
    ) -> None:
        await self.outbox.add(
            conn,
            CancelAllOrders(account_id=account_id, reason=reason[:500], created_at=self.clock()),
        )


def _order_fields(order: SubmitOrder) -> dict[str, str | None]:
    """The ids and terms a decision's log line carries (docs/architecture.md, Observability)."""
    return {
        "client_order_id": order.client_order_id,
        "account_id": str(order.account_id),
        "bot_id": None if order.bot_id is None else str(order.bot_id),
        "source": order.source,
        "instrument_id": order.instrument_id,
        "side": order.side,
        "quantity": str(order.quantity),
    }


def _moves(event: OrderFilled, currency: str | None) -> tuple[Decimal, dict[str, Decimal] | None]:
    """What a fill moves of the account's cash and of its venue holdings. A paper account's
    cash (no currency) moves by the fill's notional and fee in the quote; an exchange account's
    by what the fill moves at the venue in its settlement currency, the rest of it (the base, a
    quote or fee in another currency) moving its holdings (decision 0116)."""
    moves = None
    if currency is not None:
        moves = buying_power.venue_moves(
            event.instrument_id,
            side=event.side,
            quantity=event.last_qty,
            price=event.last_price,
            fee=event.fee,
            fee_currency=event.fee_currency,
        )
    if currency is None or moves is None:
        return cash_delta(event.side, event.last_qty, event.last_price, event.booked_fee), None
    return moves.pop(currency, ZERO), moves


def _buying_power(
    order: SubmitOrder, view: AccountView, account: _Running
) -> tuple[Denial | None, Decimal]:
    """The trading library's buying-power rule on an order the other checks passed: a denial
    (INSUFFICIENT_FUNDS with what it needs and what is available), or what it reserves. An
    account never funded in risk (cash unknown) is not checked and reserves nothing; nor is an
    exchange account's order quoted in another currency than the account's (decision 0116)."""
    if account.cash is None:
        return None, ZERO
    booked = Holdings(
        cash=account.cash,
        positions=view.positions,
        prices=view.prices,
        reserved=account.reserved,
        selling={i: sells for i, (_, sells) in view.pending.items()},
        buying={i: buys for i, (buys, _) in view.pending.items()},
    )
    holdings: Holdings | None = booked
    if account.currency is not None:
        # An exchange account: its venue's cash in its currency, the base held at the venue.
        holdings = buying_power.at_venue(
            booked,
            instrument_id=order.instrument_id,
            currency=account.currency,
            venue_holdings=account.holdings,
        )
    if holdings is None:
        return None, ZERO
    price = buying_power.order_price(
        side=order.side,
        order_type=order.order_type.value,
        limit_price=order.limit_price,
        stop_price=order.stop_price,
        last=view.prices.get(order.instrument_id),
        # The library's collar, not the account's price_collar_bps (a fat-finger bound on limit
        # prices, 10 % by default): the backtester values market orders the same way.
        collar_bps=buying_power.DEFAULT_COLLAR_BPS,
    )
    if price is None:  # check() denied an order without a price already; kept for safety
        return Denial(DenialReason.NO_MARKET_PRICE, "no price to value the order at"), ZERO
    terms, instrument, side = account.terms, order.instrument_id, order.side
    try:
        short = buying_power.check(
            terms,
            holdings,
            instrument_id=instrument,
            side=side,
            quantity=order.quantity,
            price=price,
        )
    except ValueError as error:  # a margin account's position without a price
        return Denial(DenialReason.NO_MARKET_PRICE, str(error)[:500]), ZERO
    if short is not None:
        return Denial(DenialReason.INSUFFICIENT_FUNDS, short.message(order.instrument_id)), ZERO
    return None, buying_power.reservation(
        terms, holdings, instrument_id=instrument, side=side, quantity=order.quantity, price=price
    )
