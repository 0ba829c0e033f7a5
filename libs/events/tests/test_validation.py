"""Refusals: unknown fields, naive timestamps, malformed ids, inconsistent bars and orders, mutation."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError
from trademesh_events import TOPICS, auth, bots, marketdata, orders, risk
from trademesh_events.base import Event
from trademesh_events.ids import ClientOrderId, InstrumentId, UtcDateTime
from trademesh_events.orders import OrderType

pytestmark = pytest.mark.unit

Kwargs = Callable[..., dict[str, Any]]
ALL_EVENTS = sorted({cls for spec in TOPICS for cls in spec.events}, key=lambda c: c.__name__)
OTHER_ACCOUNT = UUID("0190a1b2-0000-7000-8000-0000000000ff")


def _datetime_fields(cls: type[BaseModel]) -> list[str]:
    return [
        name
        for name, field in cls.model_fields.items()
        if field.annotation is not None and "datetime" in repr(field.annotation)
    ]


# ---- every event ---------------------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL_EVENTS, ids=lambda c: c.__name__)
def test_extra_fields_refused(cls: type[Event], sample_kwargs: Kwargs) -> None:
    with pytest.raises(ValidationError, match=r"extra_forbidden|Extra inputs"):
        cls(**sample_kwargs(cls, surprise="boo"))


@pytest.mark.parametrize("cls", ALL_EVENTS, ids=lambda c: c.__name__)
def test_frozen_events_cannot_be_mutated(
    cls: type[Event], make_sample: Callable[..., Event]
) -> None:
    event = make_sample(cls)
    field = next(name for name in cls.model_fields if name != "type")
    before = getattr(event, field)
    with pytest.raises(ValidationError, match="frozen"):
        setattr(event, field, before)
    with pytest.raises(ValidationError, match="frozen"):
        event.type = "trademesh.other"  # type: ignore[misc]
    assert getattr(event, field) == before
    assert event.type == cls.event_type()
    assert hash(event) == hash(make_sample(cls))


@pytest.mark.parametrize("cls", ALL_EVENTS, ids=lambda c: c.__name__)
def test_type_literal_cannot_be_overridden(cls: type[Event], sample_kwargs: Kwargs) -> None:
    assert cls(**sample_kwargs(cls)).type == cls.event_type()
    with pytest.raises(ValidationError, match="type"):
        cls(**sample_kwargs(cls, type="trademesh.something.else"))


@pytest.mark.parametrize("cls", ALL_EVENTS, ids=lambda c: c.__name__)
def test_every_event_has_a_namespaced_type(cls: type[Event]) -> None:
    assert cls.event_type().startswith("trademesh.")
    assert cls.model_config.get("frozen") is True
    assert cls.model_config.get("extra") == "forbid"


def test_base_event_has_no_event_type() -> None:
    with pytest.raises(TypeError, match="no default"):
        Event.event_type()


@pytest.mark.parametrize(
    ("cls", "field"),
    [(cls, field) for cls in ALL_EVENTS for field in _datetime_fields(cls)],
    ids=lambda v: v if isinstance(v, str) else v.__name__,
)
def test_naive_datetimes_refused(cls: type[Event], field: str, sample_kwargs: Kwargs) -> None:
    naive = datetime(2024, 5, 1, 12, 0)
    with pytest.raises(ValidationError, match="timezone-aware"):
        cls(**sample_kwargs(cls, **{field: naive}))
    with pytest.raises(ValidationError, match="timezone-aware"):
        cls(**sample_kwargs(cls, **{field: "2024-05-01T12:00:00"}))


def test_every_event_has_a_timestamp() -> None:
    for cls in ALL_EVENTS:
        assert _datetime_fields(cls), cls.__name__


def test_aware_non_utc_datetime_kept_as_the_same_instant(make_sample: Callable[..., Event]) -> None:
    ts = datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    tick = make_sample(marketdata.Tick, ts=ts)
    assert tick.ts == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert TypeAdapter(UtcDateTime).validate_python("2024-05-01T12:00:00Z").tzinfo is not None


# ---- identifiers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["binance:BTC/USDT", "replay:GOOG", "a:B", "my_venue-2:X.Y-Z_1", "v" * 32 + ":" + "S" * 64],
)
def test_instrument_id_accepted(value: str) -> None:
    assert TypeAdapter(InstrumentId).validate_python(value) == value


@pytest.mark.parametrize(
    "value",
    [
        "",
        "binance",
        "binance:",
        ":BTC",
        "Binance:BTC",
        "binance:BTC USDT",
        "binance:BTC:USDT",
        "bin ance:BTC",
        "binance::BTC",
        "binance:BTC\n",
        "\nbinance:BTC",
        " binance:BTC",
        "v" * 33 + ":BTC",
        "binance:" + "S" * 65,
        "binance:BTC€",
    ],
)
def test_bad_instrument_id_refused(value: str, sample_kwargs: Kwargs) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(InstrumentId).validate_python(value)
    with pytest.raises(ValidationError, match="instrument_id"):
        marketdata.Tick(**sample_kwargs(marketdata.Tick, instrument_id=value))


@pytest.mark.parametrize("length", [1, 35, 36])
def test_client_order_id_up_to_36_chars_accepted(length: int) -> None:
    value = "a" * length
    assert TypeAdapter(ClientOrderId).validate_python(value) == value


@pytest.mark.parametrize("value", ["", "a" * 37, "a" * 100, "has space", "dot.ted", "é", "a/b"])
def test_bad_client_order_id_refused(value: str, sample_kwargs: Kwargs) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(ClientOrderId).validate_python(value)
    with pytest.raises(ValidationError, match="client_order_id"):
        orders.CancelOrder(**sample_kwargs(orders.CancelOrder, client_order_id=value))


@pytest.mark.parametrize("field", ["account_id", "user_id"])
@pytest.mark.parametrize("value", ["not-a-uuid", "", 42])
def test_uuid_ids_refused_when_malformed(field: str, value: object, sample_kwargs: Kwargs) -> None:
    with pytest.raises(ValidationError, match=field):
        orders.CancelOrder(**sample_kwargs(orders.CancelOrder, **{field: value}))


@pytest.mark.parametrize("field", ["venue_order_id", "trade_id"])
@pytest.mark.parametrize("value", ["", "x" * 129])
def test_venue_and_trade_ids_length_bounded(field: str, value: str, sample_kwargs: Kwargs) -> None:
    with pytest.raises(ValidationError, match=field):
        orders.OrderFilled(**sample_kwargs(orders.OrderFilled, **{field: value}))


# ---- market data ---------------------------------------------------------------------------


def _bar(sample_kwargs: Kwargs, **prices: str) -> marketdata.Bar:
    return marketdata.Bar(
        **sample_kwargs(marketdata.Bar, **{k: Decimal(v) for k, v in prices.items()})
    )


@pytest.mark.parametrize(
    "prices",
    [
        {"open": "10", "high": "10", "low": "10", "close": "10"},  # flat bar
        {"open": "10", "high": "12", "low": "9", "close": "11"},
        {"open": "11", "high": "11", "low": "9", "close": "9"},  # open at high, close at low
    ],
)
def test_consistent_bar_accepted(prices: dict[str, str], sample_kwargs: Kwargs) -> None:
    bar = _bar(sample_kwargs, **prices)
    assert bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high


@pytest.mark.parametrize(
    ("prices", "message"),
    [
        ({"open": "13", "high": "12", "low": "9", "close": "11"}, "high"),  # open above high
        ({"open": "10", "high": "12", "low": "9", "close": "12.5"}, "high"),  # close above high
        ({"open": "10", "high": "8", "low": "9", "close": "8"}, "high"),  # high below low
        ({"open": "8", "high": "12", "low": "9", "close": "11"}, "low"),  # open below low
        ({"open": "10", "high": "12", "low": "9", "close": "8.99"}, "low"),  # close below low
    ],
)
def test_inconsistent_ohlc_refused(
    prices: dict[str, str], message: str, sample_kwargs: Kwargs
) -> None:
    with pytest.raises(ValidationError, match=message):
        _bar(sample_kwargs, **prices)


@pytest.mark.parametrize("offset", [timedelta(0), timedelta(seconds=-1), timedelta(minutes=-5)])
def test_bar_close_time_must_follow_open_time(offset: timedelta, sample_kwargs: Kwargs) -> None:
    kwargs = sample_kwargs(marketdata.Bar)
    with pytest.raises(ValidationError, match="close_time must be after open_time"):
        marketdata.Bar(**kwargs | {"close_time": kwargs["open_time"] + offset})


@pytest.mark.parametrize("timeframe", ["1s", "1m", "15m", "4h", "1d", "1w", "120m"])
def test_timeframe_accepted(timeframe: str, sample_kwargs: Kwargs) -> None:
    assert marketdata.Bar(**sample_kwargs(marketdata.Bar, timeframe=timeframe)).timeframe == (
        timeframe
    )


@pytest.mark.parametrize("timeframe", ["", "0m", "01m", "m", "1", "1M", "1y", "1 m", "-1m"])
def test_bad_timeframe_refused(timeframe: str, sample_kwargs: Kwargs) -> None:
    with pytest.raises(ValidationError, match="timeframe"):
        marketdata.Bar(**sample_kwargs(marketdata.Bar, timeframe=timeframe))


def test_bar_trades_and_volume_bounds(sample_kwargs: Kwargs) -> None:
    assert (
        marketdata.Bar(**sample_kwargs(marketdata.Bar, volume=Decimal("0"), trades=0)).trades == 0
    )
    with pytest.raises(ValidationError, match="trades"):
        marketdata.Bar(**sample_kwargs(marketdata.Bar, trades=-1))
    with pytest.raises(ValidationError, match="volume"):
        marketdata.Bar(**sample_kwargs(marketdata.Bar, volume=Decimal("-1")))


def test_tick_side_is_buy_sell_or_none(sample_kwargs: Kwargs) -> None:
    assert marketdata.Tick(**sample_kwargs(marketdata.Tick, side=None)).side is None
    with pytest.raises(ValidationError, match="side"):
        marketdata.Tick(**sample_kwargs(marketdata.Tick, side="BUY"))


# ---- orders --------------------------------------------------------------------------------

P = Decimal("100.5")
S = Decimal("99")


@pytest.mark.parametrize(
    ("order_type", "limit_price", "stop_price"),
    [
        (OrderType.MARKET, None, None),
        (OrderType.LIMIT, P, None),
        (OrderType.STOP, None, S),
        (OrderType.STOP_LIMIT, P, S),
    ],
)
def test_submit_order_prices_matching_type_accepted(
    order_type: OrderType,
    limit_price: Decimal | None,
    stop_price: Decimal | None,
    sample_kwargs: Kwargs,
) -> None:
    order = orders.SubmitOrder(
        **sample_kwargs(
            orders.SubmitOrder,
            order_type=order_type,
            limit_price=limit_price,
            stop_price=stop_price,
        )
    )
    assert (order.limit_price, order.stop_price) == (limit_price, stop_price)


@pytest.mark.parametrize(
    ("order_type", "limit_price", "stop_price", "message"),
    [
        (OrderType.MARKET, P, None, "MARKET orders take no limit_price"),
        (OrderType.MARKET, None, S, "MARKET orders take no stop_price"),
        (OrderType.LIMIT, None, None, "LIMIT orders need limit_price"),
        (OrderType.LIMIT, P, S, "LIMIT orders take no stop_price"),
        (OrderType.STOP, None, None, "STOP orders need stop_price"),
        (OrderType.STOP, P, S, "STOP orders take no limit_price"),
        (OrderType.STOP_LIMIT, None, S, "STOP_LIMIT orders need limit_price"),
        (OrderType.STOP_LIMIT, P, None, "STOP_LIMIT orders need stop_price"),
    ],
)
def test_submit_order_prices_not_matching_type_refused(
    order_type: OrderType,
    limit_price: Decimal | None,
    stop_price: Decimal | None,
    message: str,
    sample_kwargs: Kwargs,
) -> None:
    with pytest.raises(ValidationError, match=message):
        orders.SubmitOrder(
            **sample_kwargs(
                orders.SubmitOrder,
                order_type=order_type,
                limit_price=limit_price,
                stop_price=stop_price,
            )
        )


def test_bot_orders_need_a_bot_id(sample_kwargs: Kwargs) -> None:
    with pytest.raises(ValidationError, match="bot orders need bot_id"):
        orders.SubmitOrder(**sample_kwargs(orders.SubmitOrder, source="bot", bot_id=None))
    manual = orders.SubmitOrder(**sample_kwargs(orders.SubmitOrder, source="manual", bot_id=None))
    assert manual.bot_id is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("side", "long"),
        ("order_type", "ICEBERG"),
        ("time_in_force", "GTD"),
        ("source", "api"),
        ("quantity", Decimal("0")),
    ],
)
def test_submit_order_enumerations_refused(
    field: str, value: object, sample_kwargs: Kwargs
) -> None:
    with pytest.raises(ValidationError, match=field):
        orders.SubmitOrder(**sample_kwargs(orders.SubmitOrder, **{field: value}))


def test_submit_order_defaults(sample_kwargs: Kwargs) -> None:
    order = orders.SubmitOrder(**sample_kwargs(orders.SubmitOrder))
    assert order.time_in_force is orders.TimeInForce.GTC
    assert order.reduce_only is False


def test_order_approved_account_must_match(
    sample_kwargs: Kwargs, make_sample: Callable[..., Event]
) -> None:
    order = make_sample(orders.SubmitOrder)
    with pytest.raises(ValidationError, match="account_id must match"):
        orders.OrderApproved(**sample_kwargs(orders.OrderApproved, account_id=OTHER_ACCOUNT))
    approved = orders.OrderApproved(**sample_kwargs(orders.OrderApproved, order=order))
    assert approved.account_id == order.account_id


def test_order_approved_refuses_an_invalid_nested_order(sample_kwargs: Kwargs) -> None:
    bad = sample_kwargs(orders.SubmitOrder, limit_price=None) | {"type": "trademesh.order.intent"}
    with pytest.raises(ValidationError, match="limit_price"):
        orders.OrderApproved(**sample_kwargs(orders.OrderApproved, order=bad))


def test_fill_last_qty_cannot_exceed_cum_qty(sample_kwargs: Kwargs) -> None:
    with pytest.raises(ValidationError, match="last_qty cannot exceed cum_qty"):
        orders.OrderFilled(
            **sample_kwargs(orders.OrderFilled, last_qty=Decimal("0.31"), cum_qty=Decimal("0.3"))
        )
    equal = orders.OrderFilled(
        **sample_kwargs(orders.OrderFilled, last_qty=Decimal("0.3"), cum_qty=Decimal("0.3"))
    )
    assert equal.last_qty == equal.cum_qty


def test_an_exchange_accounts_change_carries_its_currency_and_holdings(
    sample_kwargs: Kwargs,
) -> None:
    """An exchange account's figures from its venue round-trip exactly, as decimal strings."""
    venue = {"venue": "binance", "currency": "USDT", "holdings": {"BTC": Decimal("0.00150000")}}
    event = orders.AccountChanged(**sample_kwargs(orders.AccountChanged, **venue))
    wire = event.model_dump(mode="json")
    assert (wire["currency"], wire["holdings"]) == ("USDT", {"BTC": "0.0015"})
    assert orders.AccountChanged.model_validate_json(event.model_dump_json()) == event
    paper = orders.AccountChanged(**sample_kwargs(orders.AccountChanged))
    assert (paper.currency, paper.holdings) == (None, None)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"holdings": {"BTC": Decimal(1)}}, "holdings come with the account's currency"),
        (
            {"currency": "USDT", "holdings": {"USDT": Decimal(1)}},
            "the account's currency is its cash",
        ),
        ({"currency": "USDT", "holdings": {"BTC": Decimal(-1)}}, "holdings.BTC"),
        ({"currency": "USDT", "holdings": {"BTC": 0.5}}, "holdings.BTC"),
        ({"currency": "US DT"}, "currency"),
        ({"currency": "USDT", "holdings": {"": Decimal(1)}}, "holdings"),
    ],
)
def test_an_accounts_venue_figures_are_refused_when_inconsistent(
    changes: dict[str, Any], message: str, sample_kwargs: Kwargs
) -> None:
    with pytest.raises(ValidationError, match=message):
        orders.AccountChanged(**sample_kwargs(orders.AccountChanged, **changes))


@pytest.mark.parametrize(
    ("field", "value"),
    [("fee_currency", ""), ("fee_currency", "X" * 17), ("liquidity", "both"), ("side", "hold")],
)
def test_fill_fields_refused(field: str, value: object, sample_kwargs: Kwargs) -> None:
    with pytest.raises(ValidationError, match=field):
        orders.OrderFilled(**sample_kwargs(orders.OrderFilled, **{field: value}))


@pytest.mark.parametrize(
    ("cls", "field", "limit"),
    [
        (orders.CancelAllOrders, "reason", 500),
        (orders.OrderDenied, "message", 500),
        (orders.OrderRejected, "reason", 500),
        (bots.BotStateChanged, "reason", 1000),
        (risk.TradingStateChanged, "message", 500),
    ],
)
def test_reasons_are_length_bounded(
    cls: type[Event], field: str, limit: int, sample_kwargs: Kwargs
) -> None:
    assert len(getattr(cls(**sample_kwargs(cls, **{field: "x" * limit})), field)) == limit
    with pytest.raises(ValidationError, match=field):
        cls(**sample_kwargs(cls, **{field: "x" * (limit + 1)}))


def test_denial_reason_must_be_a_known_code(sample_kwargs: Kwargs) -> None:
    with pytest.raises(ValidationError, match="reason"):
        orders.OrderDenied(**sample_kwargs(orders.OrderDenied, reason="BECAUSE"))


def test_bot_state_must_be_known(sample_kwargs: Kwargs) -> None:
    with pytest.raises(ValidationError, match="state"):
        bots.BotStateChanged(**sample_kwargs(bots.BotStateChanged, state="DANCING"))


@pytest.mark.parametrize("key_id", ["abc", "k" * 65, "has space", "key.1"])
def test_api_key_id_format(key_id: str, sample_kwargs: Kwargs) -> None:
    with pytest.raises(ValidationError, match="key_id"):
        auth.ApiKeyRevoked(**sample_kwargs(auth.ApiKeyRevoked, key_id=key_id))


def test_api_key_scopes_restricted(sample_kwargs: Kwargs) -> None:
    with pytest.raises(ValidationError, match="scopes"):
        auth.ApiKeyCreated(**sample_kwargs(auth.ApiKeyCreated, scopes=("read", "admin")))


# ---- trading state -------------------------------------------------------------------------

S, Why = risk.TradingState, risk.TradingStateReason


def test_a_trading_state_change_changes_the_state(sample_kwargs: Kwargs) -> None:
    with pytest.raises(ValidationError, match="different from the old one"):
        risk.TradingStateChanged(
            **sample_kwargs(risk.TradingStateChanged, old_state=S.HALTED, new_state=S.HALTED)
        )


def test_the_platforms_trading_state_is_the_global_kill_switchs(sample_kwargs: Kwargs) -> None:
    platform = {"account_id": None, "old_state": S.ACTIVE, "new_state": S.HALTED}
    made = risk.TradingStateChanged(
        **sample_kwargs(risk.TradingStateChanged, **platform, reason=Why.GLOBAL_KILL_SWITCH_ENGAGED)
    )
    assert made.account_id is None
    # A platform change for an account's reason, an account's for the platform's: refused.
    with pytest.raises(ValidationError, match="global kill switch"):
        risk.TradingStateChanged(
            **sample_kwargs(risk.TradingStateChanged, **platform, reason=Why.KILL_SWITCH_ENGAGED)
        )
    with pytest.raises(ValidationError, match="global kill switch"):
        risk.TradingStateChanged(
            **sample_kwargs(risk.TradingStateChanged, reason=Why.GLOBAL_KILL_SWITCH_RELEASED)
        )
    with pytest.raises(ValidationError, match="ACTIVE or HALTED"):
        risk.TradingStateChanged(
            **sample_kwargs(
                risk.TradingStateChanged,
                **(platform | {"new_state": S.REDUCING}),
                reason=Why.GLOBAL_KILL_SWITCH_ENGAGED,
            )
        )


@pytest.mark.parametrize(("field", "value"), [("new_state", "PAUSED"), ("reason", "BECAUSE")])
def test_trading_states_and_reasons_must_be_known(
    field: str, value: str, sample_kwargs: Kwargs
) -> None:
    with pytest.raises(ValidationError, match=field):
        risk.TradingStateChanged(**sample_kwargs(risk.TradingStateChanged, **{field: value}))
