"""Bots at run time: sessions kept in memory, state kept in Postgres, events through the outbox.

The database is the truth; a session (a strategy instance with its bar window) is a cache of
it. Before a session handles a bar it is checked against the bot's row: when the row's last bar
differs from the session's (the service restarted, another replica handled the instrument, a
transaction rolled back), the session is rebuilt by replaying the bot's bars from market-data's
history API through on_bar with orders suppressed. Client order ids are deterministic (bot, bar
time, leg) and stored with a primary key, so a bar handled twice asks for nothing twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeAlias, assert_never
from uuid import UUID, uuid4

import asyncpg
from pydantic import ValidationError
from trademesh_bus import inbox
from trademesh_bus.outbox import Outbox
from trademesh_db import Database
from trademesh_events.bots import (
    ApprovalDecided,
    ApprovalDecision,
    ApprovalRequested,
    BotState,
    BotStateChanged,
)
from trademesh_events.ids import AccountId, BotId, ClientOrderId, InstrumentId, UserId
from trademesh_events.marketdata import Bar
from trademesh_events.orders import (
    CancelOrder,
    OrderAccepted,
    OrderCanceled,
    OrderDenied,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderStatusUnknown,
    OrderSubmitted,
    SubmitOrder,
)
from trademesh_events.topics import OrderLifecycleEvent
from trademesh_observability import metrics
from trademesh_observability.logging import get_logger
from trademesh_observability.tracing import use_traceparent
from trademesh_trading.backtest import Sizing
from trademesh_trading.registry import StrategyRegistry, UnknownStrategy
from trademesh_trading.timeframes import Timeframe

from trademesh_strategy.approvals import AWAITING_APPROVAL, ApprovalRecord, ApprovalStore
from trademesh_strategy.engine import (
    BotSession,
    CancelRequest,
    OpenOrder,
    OrderRequest,
    Request,
    StrategyFailed,
    intent,
    transition,
)
from trademesh_strategy.history import MarketData, MarketDataUnavailable, NoMarketData
from trademesh_strategy.store import BotRecord, BotStore

# What the bots hear of their orders: orders.events.v1 and orders.denied.v1.
OrderUpdate: TypeAlias = OrderLifecycleEvent | OrderDenied

log = get_logger("trademesh_strategy.runner")

_TICK = timedelta(microseconds=1)


@dataclass
class _Progress:
    """What a batch of bars did to a bot, written at the batch's end (BotStore.bars_seen)."""

    run_id: UUID
    last_bar_time: datetime | None = None
    bars: int = 0
    orders: int = 0


class BotRuntime:
    """Creates bots, moves them between states, and hands them bars and order events."""

    def __init__(
        self,
        *,
        db: Database,
        store: BotStore,
        registry: StrategyRegistry,
        market: MarketData,
        outbox: Outbox,
        service: str,
        clock: Callable[[], datetime],
        window: int = 500,
        rebuild_max_bars: int = 100_000,
        approvals: ApprovalStore | None = None,
    ) -> None:
        self.db = db
        self.store = store
        self.approvals = approvals or ApprovalStore(db)
        self.registry = registry
        self.market = market
        self.outbox = outbox
        self.service = service
        self.clock = clock
        self.window = window
        self.rebuild_max_bars = rebuild_max_bars
        self.sessions: dict[BotId, BotSession] = {}
        # Counted from 0 for every strategy a bot can run, so that a first failure is an
        # increase that the dashboard's rate() sees.
        for strategy in registry.names():
            metrics.STRATEGY_BOT_ERRORS.labels(service=service, strategy=strategy)

    # ---- creating and controlling bots ------------------------------------------------------

    async def create(
        self,
        *,
        user_id: UserId,
        account_id: AccountId,
        name: str,
        strategy: str,
        params: dict[str, Any],
        instrument_id: InstrumentId,
        timeframe: str,
        venue: str,
        sizing: Sizing,
        capital: Decimal,
        approval: str = "none",
        approval_expiry_s: int = 60,
    ) -> BotRecord:
        """Validate everything, warm the strategy on the latest stored bars, then store the bot
        RUNNING with its first run and its event in one transaction. Raises UnknownStrategy,
        InvalidParameters, NoMarketData or StrategyFailed before anything is stored."""
        instance = self.registry.create(strategy, params)
        now = self.clock()
        record = BotRecord(
            bot_id=BotId(uuid4()),
            user_id=user_id,
            account_id=account_id,
            name=name,
            strategy=strategy,
            params=instance.config.model_dump(mode="json"),
            instrument_id=instrument_id,
            timeframe=timeframe,
            venue=venue,
            sizing=sizing,
            capital=capital,
            state=BotState.RUNNING,
            error=None,
            warm_from=None,
            last_bar_time=None,
            bars_seen=0,
            position=Decimal(0),
            cash=capital,
            created_at=now,
            updated_at=now,
            approval=approval,
            approval_expiry_s=approval_expiry_s,
        )
        session = BotSession(record.config, instance, clock=self.clock, window=self.window)
        warm = await self.market.last_bars(instrument_id, timeframe, max(instance.warmup(), 1))
        if not warm:
            raise NoMarketData(f"no {timeframe} bars of {instrument_id} are stored yet")
        session.warm(warm, position=record.position, cash=record.cash)
        metrics.STRATEGY_WARMUPS.labels(service=self.service, reason="start").inc()
        record = replace(
            record,
            warm_from=warm[0].open_time,
            last_bar_time=warm[-1].open_time,
            bars_seen=len(warm),
        )
        async with self.db.transaction() as conn:
            await self.store.insert_bot(conn, record)
            await self.store.open_run(conn, record.bot_id, uuid4())
            await self._state_event(conn, record, BotState.RUNNING, None)
        self.sessions[record.bot_id] = session
        return record

    async def act(self, bot_id: BotId, user_id: UserId, action: str) -> BotRecord | None:
        """Pause, resume, stop or (re)start a bot of `user_id`; None when it has no such bot.
        Raises IllegalTransition when the bot's state does not allow the action."""
        async with self.db.transaction() as conn:
            bot = await self.store.get(bot_id, conn=conn, lock=True)
            if bot is None or bot.user_id != user_id:
                return None
            target = transition(bot.state, action)
            if action == "pause":
                await self.store.set_state(conn, bot_id, target)
                self.sessions.pop(bot_id, None)
            elif action == "resume":
                await self._catch_up(conn, bot)
                await self.store.set_state(conn, bot_id, target)
            elif action == "stop":
                await self._stop(conn, bot)
            else:  # start again after STOPPED or ERROR: a new run, a fresh strategy
                await self._restart(conn, bot)
            await self._state_event(conn, bot, target, None)
            updated = await self.store.get(bot_id, conn=conn)
        assert updated is not None
        return updated

    async def _stop(self, conn: asyncpg.Connection, bot: BotRecord) -> None:
        """on_stop runs (its orders go out, e.g. to flatten), then the bot's open orders are
        cancelled; the position stays, as it is the account's. A stop always succeeds: when the
        strategy cannot be rebuilt or raises, on_stop is skipped and logged."""
        open_before = await self.store.open_orders(conn, bot.bot_id)
        requests: list[Request] = []
        events: list[Any] = []
        if bot.state in (BotState.RUNNING, BotState.PAUSED):
            try:
                session = await self._session(bot, reason="stop")
                requests = session.on_stop(
                    position=bot.position, cash=bot.cash, open_orders=open_before
                )
                events = self._events(bot, requests)
            except StrategyFailed as failure:
                requests = []
                log.warning("on_stop failed", bot_id=str(bot.bot_id), error=failure.detail)
            except (NoMarketData, MarketDataUnavailable) as exc:
                # Stopping must work even when market-data is away: on_stop is skipped then.
                log.warning("on_stop skipped", bot_id=str(bot.bot_id), error=str(exc))
        if requests:
            run_id = await self.store.current_run(conn, bot.bot_id)
            await self._emit(conn, bot, run_id, requests, events)
        # The orders that were working when the user stopped the bot are cancelled; the ones
        # on_stop just asked for (to flatten, say) are not.
        cancelled = {r.client_order_id for r in requests if isinstance(r, CancelRequest)}
        for order in open_before:
            if order.client_order_id not in cancelled:
                await self._emit_one(conn, bot, CancelRequest(order.client_order_id))
        await self.store.set_state(conn, bot.bot_id, BotState.STOPPED)
        await self.store.close_run(conn, bot.bot_id, BotState.STOPPED, "stopped by the user")
        self.sessions.pop(bot.bot_id, None)

    async def _restart(self, conn: asyncpg.Connection, bot: BotRecord) -> None:
        instance = self.registry.create(bot.strategy, bot.params)
        session = BotSession(bot.config, instance, clock=self.clock, window=self.window)
        warm = await self.market.last_bars(
            bot.instrument_id, bot.timeframe, max(instance.warmup(), 1)
        )
        if not warm:
            raise NoMarketData(f"no {bot.timeframe} bars of {bot.instrument_id} are stored")
        session.warm(warm, position=bot.position, cash=bot.cash)
        metrics.STRATEGY_WARMUPS.labels(service=self.service, reason="start").inc()
        await conn.execute(
            "UPDATE bots SET warm_from = $2, last_bar_time = $3, bars_seen = $4 WHERE bot_id = $1",
            bot.bot_id,
            warm[0].open_time,
            warm[-1].open_time,
            len(warm),
        )
        await self.store.close_run(conn, bot.bot_id, bot.state, bot.error)
        await self.store.open_run(conn, bot.bot_id, uuid4())
        await self.store.set_state(conn, bot.bot_id, BotState.RUNNING)
        self.sessions[bot.bot_id] = session

    async def _catch_up(self, conn: asyncpg.Connection, bot: BotRecord) -> None:
        """Resuming: the bars stored while the bot was paused go through the strategy with
        orders suppressed, so it resumes with current indicators and trades from the next bar."""
        session = await self._session(bot, reason="resume")
        tf = Timeframe.parse(bot.timeframe)
        start = (bot.last_bar_time + _TICK) if bot.last_bar_time else bot.created_at
        missed = await self.market.bars(
            bot.instrument_id, bot.timeframe, start, tf.floor(self.clock()) + tf.delta
        )
        if missed:
            session.warm(missed, position=bot.position, cash=bot.cash)
            await self.store.set_history(
                conn,
                bot.bot_id,
                warm_from=None,
                last_bar_time=missed[-1].open_time,
                bars=len(missed),
            )

    async def resume_all(self) -> None:
        """At start: build the sessions of the running bots, so that the first bar does not wait
        for it. Failures are logged: the first bar of a bot builds its session again anyway."""
        for bot in await self.store.all_running():
            if bot.bot_id in self.sessions:
                continue
            try:
                self.sessions.setdefault(bot.bot_id, await self._build(bot, reason="restart"))
            except (StrategyFailed, NoMarketData, MarketDataUnavailable) as exc:
                log.warning("bot not rebuilt at start", bot_id=str(bot.bot_id), error=str(exc))

    # ---- sessions -----------------------------------------------------------------------------

    async def _session(self, bot: BotRecord, *, reason: str) -> BotSession:
        session = self.sessions.get(bot.bot_id)
        if session is not None and session.last_bar_time == bot.last_bar_time:
            return session
        session = await self._build(bot, reason=reason)
        self.sessions[bot.bot_id] = session
        return session

    async def _build(self, bot: BotRecord, *, reason: str) -> BotSession:
        """A session whose strategy has seen exactly the bars the bot's row says it has seen."""
        try:
            instance = self.registry.create(bot.strategy, bot.params)
        except UnknownStrategy as exc:  # its plug-in was uninstalled
            raise StrategyFailed("create", exc) from exc
        session = BotSession(bot.config, instance, clock=self.clock, window=self.window)
        if bot.last_bar_time is None:
            return session
        until = bot.last_bar_time + _TICK
        if bot.bars_seen > self.rebuild_max_bars or bot.warm_from is None:
            bars = await self.market.last_bars(
                bot.instrument_id, bot.timeframe, min(bot.bars_seen, self.rebuild_max_bars), until
            )
        else:
            bars = await self.market.bars(bot.instrument_id, bot.timeframe, bot.warm_from, until)
        if len(bars) != bot.bars_seen:
            log.warning(
                "history differs from what the bot saw",
                bot_id=str(bot.bot_id),
                seen=bot.bars_seen,
                replayed=len(bars),
            )
        session.warm(bars, position=bot.position, cash=bot.cash)
        session.last_bar_time = bot.last_bar_time
        metrics.STRATEGY_WARMUPS.labels(service=self.service, reason=reason).inc()
        return session

    # ---- bars ---------------------------------------------------------------------------------

    async def on_bars(self, bars: list[tuple[Bar, UUID, str, str | None]], consumer: str) -> None:
        """Hand a batch of bars (bar, event id, topic, traceparent) to the running bots of their
        instruments and timeframes, in order, in one transaction with their inbox entries: a
        redelivered bar changes nothing. What a bar makes a bot do (its intents, their log
        lines) goes under that bar's trace, so a bot order's trace holds that order's path.

        Bars that concern no running bot (most of them, on a busy feed) cost one shared query
        and no transaction. For the others, the bots, their open orders and their runs are read
        once for the batch and their progress written once at its end (one statement each);
        between the batch's bars a bot's progress and open orders are carried in memory."""
        final = [x for x in bars if x[0].final]
        if not final:
            return
        running = await self.store.running_pairs(
            sorted({(x[0].instrument_id, x[0].timeframe) for x in final})
        )
        final = [x for x in final if (x[0].instrument_id, x[0].timeframe) in running]
        if not final:
            return
        async with self.db.transaction() as conn:
            fresh = await inbox.claim_many(conn, consumer, [(e, t) for _, e, t, _ in final])
            todo: list[tuple[Bar, str | None]] = []
            for bar, event_id, topic, traceparent in final:
                if event_id not in fresh:
                    metrics.BUS_REDELIVERIES_SKIPPED.labels(service=self.service, topic=topic).inc()
                    continue
                fresh.discard(event_id)
                todo.append((bar, traceparent))
            if todo:
                await self._bars(conn, todo)

    async def _bars(self, conn: asyncpg.Connection, bars: list[tuple[Bar, str | None]]) -> None:
        pairs = sorted({(bar.instrument_id, bar.timeframe) for bar, _ in bars})
        bots = await self.store.running_for_pairs(conn, pairs)
        opened = await self.store.open_orders_of(conn, [bot.bot_id for bot in bots])
        by_pair: dict[tuple[InstrumentId, str], list[BotRecord]] = {}
        for bot in bots:
            by_pair.setdefault((bot.instrument_id, bot.timeframe), []).append(bot)
        current = {bot.bot_id: bot for bot in bots}
        progress: dict[BotId, _Progress] = {}
        failed: set[BotId] = set()
        # Bots of an instrument ask the same gap of the history API once per bar.
        for bar, traceparent in bars:
            asked: dict[datetime, list[Bar]] = {}
            with use_traceparent(traceparent):
                for bot in by_pair.get((bar.instrument_id, bar.timeframe), []):
                    if bot.bot_id in failed:
                        continue
                    state = current[bot.bot_id]
                    if state.last_bar_time is not None and bar.open_time <= state.last_bar_time:
                        continue  # seen already (warm-up, or a replay played again)
                    for each in [*await self._missed(state, bar, asked), bar]:
                        run_id = state.run_id or await self.store.current_run(conn, state.bot_id)
                        emitted = await self._one_bar(conn, state, each, opened[state.bot_id])
                        if emitted is None:  # the bot failed: it is ERROR now
                            failed.add(state.bot_id)
                            break
                        state = replace(
                            state,
                            run_id=run_id,
                            last_bar_time=each.open_time,
                            bars_seen=state.bars_seen + 1,
                        )
                        seen = progress.setdefault(state.bot_id, _Progress(run_id))
                        seen.last_bar_time = each.open_time
                        seen.bars += 1
                        seen.orders += emitted
                    current[state.bot_id] = state
        if progress:
            await self.store.bars_seen(
                conn,
                [
                    (bot_id, p.run_id, p.last_bar_time, p.bars, p.orders)
                    for bot_id, p in progress.items()
                    if p.last_bar_time is not None
                ],
            )

    async def _missed(
        self, bot: BotRecord, bar: Bar, asked: dict[datetime, list[Bar]]
    ) -> list[Bar]:
        """Bars between the bot's last one and `bar` that it never got (one was consumed in the
        moment between its warm-up and its first commit, say): asked from the history API when
        there is room for one, and handled as if live, so that no intent is missing. Markets
        close, so most such gaps are empty; they cost one history query each, shared by the
        bots of the bar's instrument that have the same gap (`asked`, by gap start)."""
        if bot.last_bar_time is None or bar.open_time <= bot.last_bar_time + (
            bar.close_time - bar.open_time
        ):
            return []
        if bot.last_bar_time in asked:
            return asked[bot.last_bar_time]
        try:
            found = await self.market.bars(
                bot.instrument_id, bot.timeframe, bot.last_bar_time + _TICK, bar.open_time
            )
        except NoMarketData:
            return []
        asked[bot.last_bar_time] = found
        if found:
            log.warning("bars caught up from history", bot_id=str(bot.bot_id), bars=len(found))
        return found

    async def _one_bar(
        self, conn: asyncpg.Connection, bot: BotRecord, bar: Bar, open_orders: list[OpenOrder]
    ) -> int | None:
        """The bot's strategy on one bar: its orders stored and asked for (and added to
        `open_orders`); how many intents it emitted, or None when the bot failed."""
        asked = await self._ask(
            conn,
            bot,
            lambda session, orders: session.on_bar(
                bar, position=bot.position, cash=bot.cash, open_orders=orders
            ),
            open_orders,
        )
        if asked is None:
            return None
        requests, events = asked
        run_id = bot.run_id or await self.store.current_run(conn, bot.bot_id)
        emitted = await self._emit(conn, bot, run_id, requests, events, open_orders)
        metrics.STRATEGY_BARS.labels(service=self.service, strategy=bot.strategy).inc()
        return emitted

    async def _ask(
        self,
        conn: asyncpg.Connection,
        bot: BotRecord,
        call: Callable[[BotSession, list[OpenOrder]], list[Request]],
        open_orders: list[OpenOrder] | None = None,
    ) -> tuple[list[Request], list[Any]] | None:
        """Run one of the strategy's callbacks on the bot's session (rebuilt when stale) and
        return its requests with their intents; None when the bot failed, and is now ERROR.
        `open_orders`: the bot's open orders when the caller holds them (else they are read)."""
        try:
            session = await self._session(bot, reason="restart")
            if open_orders is None:
                open_orders = await self.store.open_orders(conn, bot.bot_id)
            requests = call(session, list(open_orders))
            return requests, self._events(bot, requests)
        except StrategyFailed as failure:
            await self._fail(conn, bot, failure.detail)
        except NoMarketData as exc:  # its history is gone: its state cannot be rebuilt
            await self._fail(conn, bot, f"cannot rebuild the strategy's state: {exc}")
        return None

    def _events(self, bot: BotRecord, requests: list[Request]) -> list[Any]:
        try:
            session = self.sessions.get(bot.bot_id)
            decided_at = session.last_bar_close if session is not None else None
            return [intent(bot.config, request, self.clock(), decided_at) for request in requests]
        except ValidationError as exc:  # e.g. a quantity with more digits than an order takes
            raise StrategyFailed("order", exc) from exc

    async def _emit(
        self,
        conn: asyncpg.Connection,
        bot: BotRecord,
        run_id: UUID,
        requests: list[Request],
        events: list[Any] | None = None,
        open_orders: list[OpenOrder] | None = None,
    ) -> int:
        """Store the orders and write their intents to the outbox; an order whose client id is
        stored already (the same bar and leg handled before) is not asked for again. A new
        order joins `open_orders`, when given."""
        events = events if events is not None else self._events(bot, requests)
        emitted = 0
        for request, event in zip(requests, events, strict=True):
            if isinstance(request, OrderRequest):
                if not await self.store.add_order(conn, bot.bot_id, run_id, request):
                    continue
                if open_orders is not None:
                    open_orders.append(
                        OpenOrder(
                            request.client_order_id, request.leg, request.side, request.quantity
                        )
                    )
                if bot.approval == "required":
                    await self._request_approval(conn, bot, event)
                    emitted += 1
                    continue
            elif await self._withdrawn(conn, bot, request.client_order_id):
                continue
            await self.outbox.add(conn, event)
            _log_intent(bot, event)
            kind = "cancel" if isinstance(request, CancelRequest) else request.kind
            metrics.STRATEGY_INTENTS.labels(
                service=self.service, strategy=bot.strategy, kind=kind
            ).inc()
            emitted += 1
        return emitted

    async def _emit_one(self, conn: asyncpg.Connection, bot: BotRecord, request: Request) -> None:
        if isinstance(request, CancelRequest) and await self._withdrawn(
            conn, bot, request.client_order_id
        ):
            return
        event = intent(bot.config, request, self.clock())
        await self.outbox.add(conn, event)
        _log_intent(bot, event)

    # ---- approval mode ------------------------------------------------------------------------

    async def _request_approval(
        self, conn: asyncpg.Connection, bot: BotRecord, event: SubmitOrder | CancelOrder
    ) -> None:
        """An approval-mode bot's order waits for its owner: stored as a pending approval, its
        intent kept there (not on orders.intents.v1), and ApprovalRequested sent, all in the
        caller's transaction. The order stays open, so the strategy does not ask for it again."""
        assert isinstance(event, SubmitOrder)
        now = self.clock()
        approval_id = uuid4()
        expires_at = now + timedelta(seconds=bot.approval_expiry_s)
        await self.store.set_order_status(conn, event.client_order_id, AWAITING_APPROVAL)
        await self.approvals.add(conn, approval_id, event, now, expires_at)
        await self.outbox.add(
            conn,
            ApprovalRequested(
                approval_id=approval_id,
                bot_id=bot.bot_id,
                user_id=bot.user_id,
                account_id=bot.account_id,
                client_order_id=event.client_order_id,
                instrument_id=event.instrument_id,
                side=event.side,
                order_type=event.order_type,
                quantity=event.quantity,
                limit_price=event.limit_price,
                stop_price=event.stop_price,
                requested_at=now,
                expires_at=expires_at,
            ),
        )
        log.info(
            "approval requested",
            approval_id=str(approval_id),
            bot_id=str(bot.bot_id),
            client_order_id=event.client_order_id,
            expires_at=expires_at.isoformat(),
        )

    async def _withdrawn(
        self, conn: asyncpg.Connection, bot: BotRecord, client_order_id: ClientOrderId
    ) -> bool:
        """The bot cancels an order still waiting for approval (the strategy changed its mind,
        or the bot stops): the approval expires undecided, the order is closed, and no cancel
        goes to risk, which never saw the order. False: no pending approval of that order."""
        withdrawn = await self.approvals.withdraw(conn, client_order_id, self.clock())
        if withdrawn is None:
            return False
        await self.store.set_order_status(
            conn, client_order_id, "CANCELED", "cancelled by the bot before its approval"
        )
        await self.outbox.add(conn, decided_event(withdrawn))
        log.info(
            "approval withdrawn",
            approval_id=str(withdrawn.approval_id),
            bot_id=str(bot.bot_id),
            client_order_id=client_order_id,
        )
        return True

    async def tell(self, conn: asyncpg.Connection, bot_id: BotId, event: OrderUpdate) -> None:
        """An order event that no venue sent (an approval rejected or expired), applied to the
        bot's order and told to its strategy as if it had come on orders.events.v1; in the
        caller's transaction."""
        bot = await self.store.get(bot_id, conn=conn, lock=True)
        assert bot is not None
        await self._tell(conn, bot, event)

    async def _fail(self, conn: asyncpg.Connection, bot: BotRecord, detail: str) -> None:
        """This bot, and only it, goes to ERROR with the strategy's exception recorded."""
        log.error("bot failed", bot_id=str(bot.bot_id), strategy=bot.strategy, error=detail)
        self.sessions.pop(bot.bot_id, None)
        await self.store.set_state(conn, bot.bot_id, BotState.ERROR, detail)
        await self.store.close_run(conn, bot.bot_id, BotState.ERROR, detail)
        await self._state_event(conn, bot, BotState.ERROR, detail)
        metrics.STRATEGY_BOT_ERRORS.labels(service=self.service, strategy=bot.strategy).inc()

    async def _state_event(
        self, conn: asyncpg.Connection, bot: BotRecord, state: BotState, reason: str | None
    ) -> None:
        await self.outbox.add(
            conn,
            BotStateChanged(
                bot_id=bot.bot_id, user_id=bot.user_id, state=state, reason=reason, ts=self.clock()
            ),
        )
        log.info(
            "bot state changed",
            bot_id=str(bot.bot_id),
            account_id=str(bot.account_id),
            strategy=bot.strategy,
            state=state.value,
            reason=reason,
        )

    # ---- order events -------------------------------------------------------------------------

    async def on_order_event(
        self, event: OrderUpdate, event_id: UUID, topic: str, consumer: str
    ) -> None:
        """Apply a lifecycle event (or a denial) of a bot's order to the order, the bot's
        position and cash, and tell its strategy; events of other orders are ignored."""
        if await self.store.order_owner(event.client_order_id) is None:
            return
        async with self.db.transaction() as conn:
            if not await inbox.claim(conn, consumer, event_id, topic):
                metrics.BUS_REDELIVERIES_SKIPPED.labels(service=self.service, topic=topic).inc()
                return
            bot_id = await self.store.order_owner(event.client_order_id, conn)
            assert bot_id is not None
            bot = await self.store.get(bot_id, conn=conn, lock=True)
            assert bot is not None
            await self._tell(conn, bot, event)

    async def _tell(self, conn: asyncpg.Connection, bot: BotRecord, event: OrderUpdate) -> None:
        """Apply the event to the (locked) bot's order, then call its strategy's
        on_order_event when the bot runs; the orders it asks for go out like a bar's."""
        changed = await self._apply_order_event(conn, bot, event)
        if not changed or bot.state != BotState.RUNNING:
            return
        fresh = await self.store.get(bot.bot_id, conn=conn)
        assert fresh is not None
        current = fresh
        asked = await self._ask(
            conn,
            current,
            lambda session, open_orders: session.on_order_event(
                event, position=current.position, cash=current.cash, open_orders=open_orders
            ),
        )
        if asked is None:
            return
        requests, events = asked
        if requests:
            run_id = await self.store.current_run(conn, current.bot_id)
            emitted = await self._emit(conn, current, run_id, requests, events)
            await self.store.count_run(conn, run_id, orders=emitted)

    async def _apply_order_event(
        self, conn: asyncpg.Connection, bot: BotRecord, event: OrderUpdate
    ) -> bool:
        cid = event.client_order_id
        match event:
            case OrderFilled():
                return await self._fill(conn, bot, event)
            case OrderDenied():
                await self.store.set_order_status(
                    conn, cid, "DENIED", f"{event.reason.value}: {event.message}"
                )
            case OrderRejected():
                await self.store.set_order_status(conn, cid, "REJECTED", event.reason)
            case OrderCanceled():
                await self.store.set_order_status(conn, cid, "CANCELED", event.reason)
            case OrderExpired():
                await self.store.set_order_status(conn, cid, "EXPIRED")
            case OrderStatusUnknown():
                await self.store.set_order_status(conn, cid, "UNKNOWN", event.reason)
            case OrderSubmitted() | OrderAccepted():
                status = "SUBMITTED" if isinstance(event, OrderSubmitted) else "ACCEPTED"
                # Only forward: a late "accepted" must not undo a partial fill.
                await conn.execute(
                    "UPDATE bot_orders SET status = $2, updated_at = now() "
                    "WHERE client_order_id = $1 "
                    "AND status IN ('REQUESTED', 'SUBMITTED', 'UNKNOWN')",
                    cid,
                    status,
                )
            case _:
                assert_never(event)
        return True

    async def _fill(self, conn: asyncpg.Connection, bot: BotRecord, event: OrderFilled) -> bool:
        """The fill in the bot's books, once per trade id (False: seen before)."""
        cid = event.client_order_id
        added = await self.store.add_fill(
            conn,
            bot_id=bot.bot_id,
            client_order_id=cid,
            trade_id=event.trade_id,
            side=event.side,
            quantity=event.last_qty,
            price=event.last_price,
            fee=event.booked_fee,
            ts=event.ts,
            leaves=event.leaves_qty,
        )
        if added:
            run = await conn.fetchval(
                "SELECT run_id FROM bot_orders WHERE client_order_id = $1", cid
            )
            await self.store.count_run(conn, run, fills=1)
        return added


def _log_intent(bot: BotRecord, event: SubmitOrder | CancelOrder) -> None:
    """The line of an intent the bot asked for, in the current trace (its bar's)."""
    ids = {
        "client_order_id": event.client_order_id,
        "bot_id": str(bot.bot_id),
        "account_id": str(bot.account_id),
    }
    if isinstance(event, CancelOrder):
        log.info("cancel intent", **ids)
        return
    log.info(
        "order intent",
        **ids,
        instrument_id=event.instrument_id,
        side=event.side,
        order_type=event.order_type.value,
        quantity=str(event.quantity),
        limit_price=None if event.limit_price is None else str(event.limit_price),
    )


def decided_event(record: ApprovalRecord) -> ApprovalDecided:
    """ApprovalDecided of a decided approval row (its decision is its status)."""
    assert record.decided_at is not None
    return ApprovalDecided(
        approval_id=record.approval_id,
        bot_id=record.bot_id,
        user_id=record.user_id,
        client_order_id=record.client_order_id,
        decision=ApprovalDecision(record.status),
        decided_by=record.decided_by,
        channel=record.channel,
        decided_at=record.decided_at,
    )
