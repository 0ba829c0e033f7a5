"""The bot domain alone: states, one bot's strategy session, its orders. No broker, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest
from trademesh_events.bots import BotState
from trademesh_events.ids import make_client_order_id
from trademesh_events.marketdata import Bar
from trademesh_events.orders import CancelOrder, OrderType, SubmitOrder
from trademesh_trading.backtest import Sizing
from trademesh_trading.strategy import Context, Strategy, StrategyConfig

from trademesh_strategy.engine import (
    BotConfig,
    BotSession,
    CancelRequest,
    IllegalTransition,
    OpenOrder,
    OrderRequest,
    StrategyFailed,
    intent,
    transition,
)

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 5, tzinfo=UTC)
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
CONFIG = BotConfig(
    bot_id=uuid4(),
    user_id=uuid4(),
    account_id=uuid4(),
    instrument_id="binance:BTC/USDT",
    timeframe="1d",
    sizing=Sizing(kind="quantity", value=Decimal(2)),
)


def bar(day: int, close: str = "100") -> Bar:
    opens = T0 + timedelta(days=day)
    price = Decimal(close)
    return Bar(
        instrument_id=CONFIG.instrument_id,
        timeframe="1d",
        open_time=opens,
        close_time=opens + timedelta(days=1),
        open=price,
        high=price,
        low=price,
        close=price,
        volume=Decimal(10),
    )


class Scripted(Strategy[StrategyConfig]):
    """Does on each bar what the test put in `script` for that bar's close (a callable)."""

    name = "scripted"
    config_class = StrategyConfig

    def __init__(self, script: dict[Decimal, Any] | None = None) -> None:
        super().__init__(StrategyConfig())
        self.script = script or {}
        self.seen: list[datetime] = []
        self.clock_seen: list[datetime] = []
        self.indices: list[int] = []
        self.events: list[Any] = []

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        self.seen.append(bar.open_time)
        self.clock_seen.append(ctx.now())
        self.indices.append(ctx.bar_index)
        action = self.script.get(bar.close)
        if action is not None:
            action(ctx)

    def on_order_event(self, ctx: Context, event: Any) -> None:
        self.events.append(event)
        ctx.submit_order("sell", Decimal(1), leg="exit")


def session(script: dict[Decimal, Any] | None = None) -> tuple[BotSession, Scripted]:
    strategy = Scripted(script)
    return BotSession(CONFIG, strategy, clock=lambda: NOW, window=3), strategy


@pytest.mark.parametrize(
    ("state", "action", "target"),
    [
        (BotState.RUNNING, "pause", BotState.PAUSED),
        (BotState.PAUSED, "resume", BotState.RUNNING),
        (BotState.RUNNING, "stop", BotState.STOPPED),
        (BotState.PAUSED, "stop", BotState.STOPPED),
        (BotState.ERROR, "stop", BotState.STOPPED),
        (BotState.STOPPED, "start", BotState.RUNNING),
        (BotState.ERROR, "start", BotState.RUNNING),
    ],
)
def test_allowed_transitions(state: BotState, action: str, target: BotState) -> None:
    assert transition(state, action) == target


@pytest.mark.parametrize(
    ("state", "action"),
    [
        (BotState.PAUSED, "pause"),
        (BotState.RUNNING, "resume"),
        (BotState.STOPPED, "stop"),
        (BotState.RUNNING, "start"),
        (BotState.STOPPED, "resume"),
        (BotState.RUNNING, "explode"),
    ],
)
def test_illegal_transitions_are_refused(state: BotState, action: str) -> None:
    with pytest.raises(IllegalTransition):
        transition(state, action)


def test_warm_up_feeds_the_strategy_with_a_simulated_clock_and_drops_its_orders() -> None:
    bot, strategy = session({Decimal(101): lambda ctx: ctx.target_position(Decimal(5))})
    bot.warm([bar(0), bar(1, "101"), bar(2)], position=Decimal(0), cash=Decimal(1000))
    assert strategy.seen == [T0, T0 + timedelta(days=1), T0 + timedelta(days=2)]
    assert strategy.clock_seen == [T0 + timedelta(days=d) for d in (1, 2, 3)]  # bar close times
    assert bot.last_bar_time == T0 + timedelta(days=2)
    # Live, the clock is the service's.
    assert bot.on_bar(bar(3), position=Decimal(0), cash=Decimal(1000), open_orders=()) == []
    assert strategy.clock_seen[-1] == NOW
    assert strategy.indices == [0, 1, 2, 3]  # ctx.bar_index counts warm-up and live bars


def test_orders_get_deterministic_ids_from_bot_bar_time_and_leg() -> None:
    def two_orders(ctx: Context) -> None:
        ctx.submit_order("buy", Decimal(1))
        ctx.submit_order("buy", Decimal(1))
        ctx.submit_order("sell", Decimal(3), kind="limit", limit_price=Decimal(120), leg="tp")

    bot, _ = session({Decimal(100): two_orders})
    requests = bot.on_bar(bar(1), position=Decimal(0), cash=Decimal(0), open_orders=())
    at = T0 + timedelta(days=1)
    assert [r.client_order_id for r in requests if isinstance(r, OrderRequest)] == [
        make_client_order_id(CONFIG.bot_id, at, "main"),
        make_client_order_id(CONFIG.bot_id, at, "main#2"),
        make_client_order_id(CONFIG.bot_id, at, "tp"),
    ]
    # The same bar in a fresh session (a restarted service) asks for the same ids.
    again, _ = session({Decimal(100): two_orders})
    assert again.on_bar(bar(1), position=Decimal(0), cash=Decimal(0), open_orders=()) == requests


def test_a_bar_not_after_the_last_one_asks_for_nothing() -> None:
    bot, strategy = session({Decimal(100): lambda ctx: ctx.submit_order("buy", Decimal(1))})
    assert len(bot.on_bar(bar(2), position=Decimal(0), cash=Decimal(0), open_orders=())) == 1
    for old in (bar(2), bar(1)):
        assert bot.on_bar(old, position=Decimal(0), cash=Decimal(0), open_orders=()) == []
    assert strategy.seen == [T0 + timedelta(days=2)]


def test_target_position_counts_orders_on_their_way() -> None:
    bot, _ = session({Decimal(100): lambda ctx: ctx.target_position(Decimal(5))})
    coming = [OpenOrder("tm-1", "main", "buy", Decimal(3)), OpenOrder("tm-2", "other", "sell", 9)]
    (request,) = bot.on_bar(bar(1), position=Decimal(1), cash=Decimal(0), open_orders=coming)
    assert isinstance(request, OrderRequest)
    assert (request.side, request.quantity) == ("buy", Decimal(1))  # 5 - 1 held - 3 coming
    done = [OpenOrder("tm-1", "main", "buy", Decimal(4))]
    assert bot.on_bar(bar(2), position=Decimal(1), cash=Decimal(0), open_orders=done) == []
    (flip,) = bot.on_bar(bar(3, "100"), position=Decimal(8), cash=Decimal(0), open_orders=())
    assert isinstance(flip, OrderRequest)
    assert (flip.side, flip.quantity) == ("sell", Decimal(3))


def test_order_size_follows_the_bots_sizing_and_equity() -> None:
    sizes: list[Decimal] = []
    bot, _ = session({Decimal(50): lambda ctx: sizes.append(ctx.order_size())})
    bot.on_bar(bar(1, "50"), position=Decimal(0), cash=Decimal(0), open_orders=())
    assert sizes == [Decimal(2)]  # fixed quantity 2
    pct = BotConfig(**{**CONFIG.__dict__, "sizing": Sizing(kind="equity_pct", value=Decimal(50))})
    other = BotSession(
        pct, Scripted({Decimal(50): lambda ctx: sizes.append(ctx.order_size())}), clock=lambda: NOW
    )
    other.on_bar(bar(1, "50"), position=Decimal(10), cash=Decimal(500), open_orders=())
    assert sizes[-1] == Decimal(10)  # 50% of (500 + 10 * 50) / 50


def test_cancel_only_names_open_orders() -> None:
    def cancel(ctx: Context) -> None:
        ctx.cancel_order("tm-open")
        ctx.cancel_order("tm-unknown")

    bot, _ = session({Decimal(100): cancel})
    requests = bot.on_bar(
        bar(1),
        position=Decimal(0),
        cash=Decimal(0),
        open_orders=[OpenOrder("tm-open", "main", "buy", Decimal(1))],
    )
    assert requests == [CancelRequest("tm-open")]


@pytest.mark.parametrize(
    "bad",
    [
        lambda ctx: ctx.submit_order("buy", Decimal(0)),
        lambda ctx: ctx.submit_order("buy", Decimal(1), kind="limit"),
        lambda ctx: ctx.submit_order("buy", Decimal(1), stop_price=Decimal(1)),
        lambda ctx: ctx.submit_order("hold", Decimal(1)),
        lambda ctx: 1 / 0,
    ],
)
def test_a_strategy_error_is_reported_with_its_cause(bad: Any) -> None:
    bot, _ = session({Decimal(100): bad})
    with pytest.raises(StrategyFailed) as failed:
        bot.on_bar(bar(1), position=Decimal(0), cash=Decimal(0), open_orders=())
    assert failed.value.detail.startswith("on_bar: ")
    assert len(failed.value.detail) <= 1000


def test_orders_from_an_order_event_take_ids_from_the_event() -> None:
    bot, strategy = session()
    bot.warm([bar(1)], position=Decimal(0), cash=Decimal(0))

    class Filled:
        client_order_id = "tm-abc"

    requests = bot.on_order_event(Filled(), position=Decimal(1), cash=Decimal(0), open_orders=())
    assert [r.client_order_id for r in requests if isinstance(r, OrderRequest)] == [
        make_client_order_id(CONFIG.bot_id, T0 + timedelta(days=1), "exit@tm-abc")
    ]
    assert len(strategy.events) == 1


def test_intents_carry_the_bot_account_and_order() -> None:
    request = OrderRequest(
        "tm-1", T0, "main", "sell", Decimal("0.5"), "stop_limit", Decimal(90), Decimal(91)
    )
    event = intent(CONFIG, request, NOW)
    assert isinstance(event, SubmitOrder)
    assert (event.account_id, event.user_id, event.bot_id) == (
        CONFIG.account_id,
        CONFIG.user_id,
        CONFIG.bot_id,
    )
    assert (event.order_type, event.limit_price, event.stop_price) == (
        OrderType.STOP_LIMIT,
        Decimal(90),
        Decimal(91),
    )
    assert (event.source, event.created_at, event.quantity) == ("bot", NOW, Decimal("0.5"))
    cancel = intent(CONFIG, CancelRequest("tm-1"), NOW)
    assert isinstance(cancel, CancelOrder) and cancel.client_order_id == "tm-1"
