"""Bots through the API on the real broker, Postgres and market-data: intents for replayed bars,
a restart in the middle of a replay, fills, errors, and the problems for bad input."""

from __future__ import annotations

import csv
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from trademesh_bus import Bus
from trademesh_events.bots import BotStateChanged
from trademesh_events.ids import make_client_order_id
from trademesh_events.marketdata import Bar
from trademesh_events.orders import CancelOrder, OrderFilled, SubmitOrder
from trademesh_events.topics import BOTS_EVENTS, ORDERS_EVENTS, ORDERS_INTENTS, get_topic
from trademesh_observability.metrics import REGISTRY
from trademesh_testing.accounts import book
from trademesh_testing.http import app_client
from trademesh_testing.logs import LogLines
from trademesh_testing.marketdata import start_replay, wait_stored
from trademesh_testing.samples import decoded, read_all
from trademesh_testing.tokens import bearer
from trademesh_testing.waiting import eventually
from trademesh_trading.builtin import SmaCross, SmaCrossConfig
from trademesh_trading.registry import StrategyRegistry
from trademesh_trading.strategy import Context, Strategy, StrategyConfig

from trademesh_strategy.app import create_app
from trademesh_strategy.config import Settings

pytestmark = pytest.mark.integration

SMA = {"fast": 5, "slow": 20, "short": True}


def goog_bars(replay_dir: Path, name: str, instrument: str) -> list[Bar]:
    """The replayed file's bars, read here independently of the replay code."""
    with (replay_dir / name).open(newline="") as handle:
        return [
            Bar(
                instrument_id=instrument,
                timeframe="1d",
                open_time=datetime.fromisoformat(row[""]).replace(tzinfo=UTC),
                close_time=datetime.fromisoformat(row[""]).replace(tzinfo=UTC)
                + (datetime(2000, 1, 2) - datetime(2000, 1, 1)),
                open=Decimal(row["Open"]),
                high=Decimal(row["High"]),
                low=Decimal(row["Low"]),
                close=Decimal(row["Close"]),
                volume=Decimal(row["Volume"]),
            )
            for row in csv.DictReader(handle)
        ]


@dataclass
class _NeverFilled:
    """A Context in which no order ever fills (the tests run no execution service): position
    stays 0 and every order stays open, so target_position trades against the open orders."""

    bars_seen: list[Bar] = field(default_factory=list)
    open_signed: Decimal = Decimal(0)
    orders: list[tuple[datetime, str, Decimal]] = field(default_factory=list)
    recording: bool = False
    instrument_id: str = "x:Y"
    timeframe: str = "1d"
    position: Decimal = Decimal(0)
    cash: Decimal = Decimal(10_000)
    equity: Decimal = Decimal(10_000)

    @property
    def bars(self) -> Sequence[Bar]:
        return self.bars_seen

    @property
    def bar_index(self) -> int:
        return len(self.bars_seen) - 1

    def now(self) -> datetime:
        return self.bars_seen[-1].close_time

    def order_size(self) -> Decimal:
        return Decimal(1)

    def submit_order(self, side: str, quantity: Decimal, **_: Any) -> str:
        if self.recording:
            self.open_signed += quantity if side == "buy" else -quantity
            self.orders.append((self.bars_seen[-1].open_time, side, quantity))
        return "x"

    def cancel_order(self, client_order_id: str) -> None:
        raise AssertionError("not used by sma_cross")

    def target_position(self, quantity: Decimal, *, leg: str = "main") -> str | None:
        delta = quantity - self.position - self.open_signed
        if delta == 0:
            return None
        return self.submit_order("buy" if delta > 0 else "sell", abs(delta))


def expected_orders(
    bars: list[Bar], warm_from: datetime, trading_after: datetime
) -> list[tuple[datetime, str, Decimal]]:
    """SMA cross's orders, computed with the library's strategy on the file's bars: it sees the
    bars from `warm_from` on and its orders count from the first bar after `trading_after`."""
    strategy = SmaCross(SmaCrossConfig(**SMA))
    ctx = _NeverFilled()
    for bar in bars:
        if bar.open_time < warm_from:
            continue
        ctx.recording = bar.open_time > trading_after
        ctx.bars_seen.append(bar)
        strategy.on_bar(ctx, bar)
    return ctx.orders


async def replay(market: httpx.AsyncClient, bars_per_s: float) -> str:
    instrument, _ = await start_replay(market, file="GOOG_400.csv", bars_per_s=bars_per_s)
    return instrument


def headers(user: uuid.UUID) -> dict[str, str]:
    """The user's access token: a trader's (bots and backtests are created, changed, stopped)."""
    return bearer(user, "trader")


async def start_bot(
    client: httpx.AsyncClient, user: uuid.UUID, instrument: str, **overrides: Any
) -> dict[str, Any]:
    body = {
        "strategy": "sma_cross",
        "params": SMA,
        "instrument_id": instrument,
        "timeframe": "1d",
        "account_id": str(book().open(user)),
        "sizing": {"kind": "quantity", "value": "1"},
    } | overrides
    response = await client.post("/api/v1/bots", json=body, headers=headers(user))
    assert response.status_code == 201, response.text
    assert response.headers["location"] == f"/api/v1/bots/{response.json()['bot_id']}"
    bot: dict[str, Any] = response.json()
    return bot


async def bot_reached(
    client: httpx.AsyncClient, user: uuid.UUID, bot_id: str, last: datetime
) -> dict[str, Any]:
    async def there() -> dict[str, Any] | None:
        bot = (await client.get(f"/api/v1/bots/{bot_id}", headers=headers(user))).json()
        assert bot["state"] == "RUNNING", bot
        return bot if datetime.fromisoformat(bot["last_bar_time"]) == last else None

    found: dict[str, Any] = await eventually(there, timeout=90)
    return found


async def intents_of(settings: Settings, bot_id: str, expect: int) -> list[SubmitOrder]:

    async def published() -> list[SubmitOrder] | None:
        records = await read_all(settings.kafka_bootstrap, ORDERS_INTENTS, expect=1, timeout=2)
        mine = [
            e
            for e in decoded(ORDERS_INTENTS, records)
            if isinstance(e, SubmitOrder) and str(e.bot_id) == bot_id
        ]
        return mine if len(mine) >= expect else None

    found: list[SubmitOrder] = await eventually(published, timeout=30)
    return found


def check_intents(
    intents: list[SubmitOrder], expected: list[tuple[datetime, str, Decimal]], bot: dict[str, Any]
) -> None:
    assert len(expected) >= 5, "the scenario should trade several times"
    assert [(i.side, i.quantity) for i in intents] == [(s, q) for _, s, q in expected]
    bot_id = uuid.UUID(bot["bot_id"])
    assert [i.client_order_id for i in intents] == [
        make_client_order_id(bot_id, t, "main") for t, _, _ in expected
    ]
    assert len({i.client_order_id for i in intents}) == len(intents)  # no duplicate
    assert all(i.account_id == uuid.UUID(bot["account_id"]) for i in intents)
    assert all(i.source == "bot" and i.order_type == "MARKET" for i in intents)


async def test_a_bot_emits_the_expected_intents_for_replayed_bars(
    client: httpx.AsyncClient,
    market: httpx.AsyncClient,
    settings: Settings,
    replay_dir: Path,
    log_lines: LogLines,
) -> None:
    instrument = await replay(market, 100)
    await wait_stored(market, instrument, 40)
    user = uuid.uuid4()
    bot = await start_bot(client, user, instrument)
    assert bot["state"] == "RUNNING" and bot["bars_seen"] == 21  # warmed on slow + 1 bars
    bars = goog_bars(replay_dir, "GOOG_400.csv", instrument)
    done = await bot_reached(client, user, bot["bot_id"], bars[-1].open_time)
    expected = expected_orders(
        bars,
        datetime.fromisoformat(bot["warm_from"]),
        datetime.fromisoformat(bot["last_bar_time"]),
    )
    intents = await intents_of(settings, bot["bot_id"], len(expected))
    check_intents(intents, expected, bot)
    assert done["bars_seen"] == 21 + sum(1 for b in bars if b.open_time > _t(bot["last_bar_time"]))

    orders = (
        await client.get(f"/api/v1/bots/{bot['bot_id']}/orders", headers=headers(user))
    ).json()["items"]
    assert [o["client_order_id"] for o in orders] == [i.client_order_id for i in intents]
    assert all(o["open"] and o["status"] == "REQUESTED" for o in orders)
    runs = (await client.get(f"/api/v1/bots/{bot['bot_id']}/runs", headers=headers(user))).json()[
        "items"
    ]
    assert len(runs) == 1 and runs[0]["orders"] == len(expected) and runs[0]["ended_at"] is None

    # The bot's state change went out on bots.events.v1.
    records = await read_all(settings.kafka_bootstrap, BOTS_EVENTS, expect=1)
    states = [
        e.state
        for e in decoded(BOTS_EVENTS, records)
        if isinstance(e, BotStateChanged) and str(e.bot_id) == bot["bot_id"]
    ]
    assert states == ["RUNNING"]
    [started] = log_lines.named("bot state changed", bot_id=bot["bot_id"])
    assert started["state"] == "RUNNING" and started["account_id"] == bot["account_id"]

    # Each intent is logged under the trace of the bar that caused it, which its record carries:
    # one trace per bar, so one per order.
    published = await read_all(settings.kafka_bootstrap, ORDERS_INTENTS, expect=1)
    traces = {
        e.client_order_id: dict(r.headers)["traceparent"].decode().split("-")[1]
        for r in published
        for e in decoded(ORDERS_INTENTS, [r])
        if isinstance(e, SubmitOrder) and str(e.bot_id) == bot["bot_id"]
    }
    lines = log_lines.named("order intent", bot_id=bot["bot_id"])
    assert [line["client_order_id"] for line in lines] == [i.client_order_id for i in intents]
    for line, sent in zip(lines, intents, strict=True):
        assert line["level"] == "info" and line["account_id"] == bot["account_id"]
        assert (line["side"], line["quantity"]) == (sent.side, str(sent.quantity))
        assert line["trace_id"] == traces[sent.client_order_id]
    assert len(set(traces.values())) == len(intents)


def _t(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def test_a_restart_mid_replay_gives_no_duplicate_and_no_missing_intent(
    app: FastAPI,
    settings: Settings,
    market: httpx.AsyncClient,
    market_data_app: FastAPI,
    replay_dir: Path,
) -> None:
    instrument = await replay(market, 40)
    await wait_stored(market, instrument, 40)
    bars = goog_bars(replay_dir, "GOOG_400.csv", instrument)
    user = uuid.uuid4()
    async with app_client(app) as first:
        bot = await start_bot(first, user, instrument)

        async def halfway() -> dict[str, Any] | None:
            got = (await first.get(f"/api/v1/bots/{bot['bot_id']}", headers=headers(user))).json()
            return got if got["bars_seen"] >= 100 else None

        at_stop = await eventually(halfway, timeout=60)
    # The service stopped with the bot mid-way through the file; the replay goes on while it
    # is down, and a new process (new memory, same schema and consumer groups) takes over.
    assert _t(at_stop["last_bar_time"]) < bars[-1].open_time
    rebuilt = {"service": settings.service_name, "reason": "restart"}
    before = REGISTRY.get_sample_value("trademesh_strategy_bot_warmups_total", rebuilt) or 0.0
    second_app = create_app(
        settings,
        market_transport=httpx.ASGITransport(app=market_data_app),
        execution_transport=book().transport,
    )
    async with app_client(second_app) as second:
        await bot_reached(second, user, bot["bot_id"], bars[-1].open_time)
        expected = expected_orders(bars, _t(bot["warm_from"]), _t(bot["last_bar_time"]))
        intents = await intents_of(settings, bot["bot_id"], len(expected))
        check_intents(intents, expected, bot)
    # The new process rebuilt the bot's strategy from the history API (exactly once).
    after = REGISTRY.get_sample_value("trademesh_strategy_bot_warmups_total", rebuilt)
    assert after == before + 1


async def test_fills_update_the_bots_position_and_cash_once(
    app: FastAPI, client: httpx.AsyncClient, market: httpx.AsyncClient, settings: Settings
) -> None:
    instrument = await replay(market, 400)
    await wait_stored(market, instrument, 400)
    user = uuid.uuid4()
    bot = await start_bot(client, user, instrument, capital="5000")
    # The replay has ended, so no bar will make the strategy trade: store and emit an order
    # of the bot through the runtime's own path, then play execution's part with its fills.
    order = await _force_order(app.state.runtime, bot)
    fill = OrderFilled(
        account_id=uuid.UUID(bot["account_id"]),
        user_id=user,
        client_order_id=order,
        instrument_id=instrument,
        ts=datetime.now(UTC),
        trade_id="t-1",
        side="buy",
        last_qty=Decimal(1),
        last_price=Decimal("250.5"),
        cum_qty=Decimal(1),
        leaves_qty=Decimal(0),
        fee=Decimal("0.25"),
        fee_currency="USD",
        liquidity="taker",
    )
    producer = Bus(settings, "test-execution", telemetry=False)
    await producer.start()
    try:
        envelope = await producer.publish(fill)
        spec = get_topic(ORDERS_EVENTS)
        # The same event again, as a redelivery: applied once.
        await producer.publish_raw(
            spec.name, spec.encode(fill), spec.key_of(fill), envelope.to_headers()
        )
        # The same fill under a new event id (a venue reporting it twice): applied once.
        await producer.publish(fill)
    finally:
        await producer.stop()

    async def filled() -> dict[str, Any] | None:
        got = (await client.get(f"/api/v1/bots/{bot['bot_id']}", headers=headers(user))).json()
        return got if Decimal(got["position"]) != 0 else None

    got = await eventually(filled)
    assert (Decimal(got["position"]), Decimal(got["cash"])) == (Decimal(1), Decimal("4749.25"))
    orders = (
        await client.get(f"/api/v1/bots/{bot['bot_id']}/orders", headers=headers(user))
    ).json()["items"]
    assert [(o["status"], o["open"], Decimal(o["filled"])) for o in orders] == [
        ("FILLED", False, Decimal(1))
    ]
    runs = (await client.get(f"/api/v1/bots/{bot['bot_id']}/runs", headers=headers(user))).json()[
        "items"
    ]
    assert runs[0]["fills"] == 1


async def _force_order(runtime: Any, bot: dict[str, Any]) -> str:
    """An order of the bot, stored and emitted exactly as the runtime does for a strategy."""
    from trademesh_strategy.engine import OrderRequest

    record = await runtime.bots.get(uuid.UUID(bot["bot_id"]))
    request = OrderRequest(
        make_client_order_id(record.bot_id, record.last_bar_time, "manual-test"),
        record.last_bar_time,
        "manual-test",
        "buy",
        Decimal(1),
        "market",
        None,
        None,
    )
    async with runtime.db.transaction() as conn:
        run_id = await runtime.bots.current_run(conn, record.bot_id)
        assert await runtime.runtime._emit(conn, record, run_id, [request]) == 1
    return request.client_order_id


class _Boom(Strategy[StrategyConfig]):
    """Raises on its third live bar."""

    name = "boom"
    config_class = StrategyConfig

    def __init__(self, config: StrategyConfig) -> None:
        super().__init__(config)
        self.seen = 0

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        self.seen += 1
        if self.seen == 4:  # the warm-up bar, then three live ones
            raise ZeroDivisionError("boom on purpose")


async def test_a_failing_strategy_puts_only_its_bot_in_error(
    settings: Settings, market: httpx.AsyncClient, market_data_app: FastAPI
) -> None:
    registry = StrategyRegistry(load_entry_points=False)
    registry.register(_Boom)
    app = create_app(
        settings,
        market_transport=httpx.ASGITransport(app=market_data_app),
        execution_transport=book().transport,
        registry=registry,
    )
    instrument = await replay(market, 50)
    await wait_stored(market, instrument, 25)
    user = uuid.uuid4()
    async with app_client(app) as client:
        failing = await start_bot(client, user, instrument, strategy="boom", params={})
        healthy = await start_bot(client, user, instrument)

        async def failed() -> dict[str, Any] | None:
            got = (
                await client.get(f"/api/v1/bots/{failing['bot_id']}", headers=headers(user))
            ).json()
            return got if got["state"] == "ERROR" else None

        error = await eventually(failed, timeout=30)
        assert "ZeroDivisionError: boom on purpose" in error["error"]
        assert "on_bar" in error["error"]
        # The other bot on the same bars keeps going to the end of the replay.
        later = await eventually(
            lambda: _bars_seen_at_least(client, user, healthy["bot_id"], 100), timeout=60
        )
        assert later["state"] == "RUNNING"
        runs = (
            await client.get(f"/api/v1/bots/{failing['bot_id']}/runs", headers=headers(user))
        ).json()["items"]
        assert runs[0]["end_state"] == "ERROR" and "boom on purpose" in runs[0]["reason"]
        # A failed bot can be started again (a new run); stop ends it.
        restarted = await client.post(
            f"/api/v1/bots/{failing['bot_id']}/start", headers=headers(user)
        )
        assert restarted.status_code == 200 and restarted.json()["state"] == "RUNNING"
        stopped = await client.post(f"/api/v1/bots/{failing['bot_id']}/stop", headers=headers(user))
        assert stopped.json()["state"] == "STOPPED"
        runs = (
            await client.get(f"/api/v1/bots/{failing['bot_id']}/runs", headers=headers(user))
        ).json()["items"]
        assert [r["end_state"] for r in runs] == ["ERROR", "STOPPED"]


async def _bars_seen_at_least(
    client: httpx.AsyncClient, user: uuid.UUID, bot_id: str, count: int
) -> dict[str, Any] | None:
    got: dict[str, Any] = (await client.get(f"/api/v1/bots/{bot_id}", headers=headers(user))).json()
    return got if got["bars_seen"] >= count else None


async def test_pause_resume_stop_and_ownership(
    client: httpx.AsyncClient, market: httpx.AsyncClient, settings: Settings
) -> None:
    instrument = await replay(market, 400)
    await wait_stored(market, instrument, 400)
    user, other = uuid.uuid4(), uuid.uuid4()
    bot = await start_bot(client, user, instrument)
    path = f"/api/v1/bots/{bot['bot_id']}"

    # Another user sees no such bot, cannot act on it, and does not list it.
    for method, url in (("GET", path), ("POST", f"{path}/stop"), ("GET", f"{path}/runs")):
        response = await client.request(method, url, headers=headers(other))
        assert response.status_code == 404, (url, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    assert (await client.get("/api/v1/bots", headers=headers(other))).json()["items"] == []
    assert (await client.get(path)).status_code == 401  # no caller at all

    paused = await client.post(f"{path}/pause", headers=headers(user))
    assert paused.json()["state"] == "PAUSED"
    again = await client.post(f"{path}/pause", headers=headers(user))
    assert again.status_code == 409
    assert "cannot pause a bot that is PAUSED" in again.json()["detail"]
    resumed = await client.post(f"{path}/resume", headers=headers(user))
    assert resumed.json()["state"] == "RUNNING"
    stopped = await client.post(f"{path}/stop", headers=headers(user))
    assert stopped.json()["state"] == "STOPPED"
    runs = (await client.get(f"{path}/runs", headers=headers(user))).json()["items"]
    assert [r["end_state"] for r in runs] == ["STOPPED"]

    # The caller's bots, paged.
    second = await start_bot(client, user, instrument)
    first_page = (
        await client.get("/api/v1/bots", params={"limit": 1}, headers=headers(user))
    ).json()
    assert [b["bot_id"] for b in first_page["items"]] == [bot["bot_id"]]
    rest = (
        await client.get(
            "/api/v1/bots",
            params={"limit": 1, "cursor": first_page["next_cursor"]},
            headers=headers(user),
        )
    ).json()
    assert [b["bot_id"] for b in rest["items"]] == [second["bot_id"]]
    assert rest["next_cursor"] is None

    async def state_changes() -> list[str] | None:
        # The outbox relay publishes after the commit: the last change may still be on its way.
        records = await read_all(settings.kafka_bootstrap, BOTS_EVENTS, expect=1)
        states = [
            e.state
            for e in decoded(BOTS_EVENTS, records)
            if isinstance(e, BotStateChanged) and str(e.bot_id) == bot["bot_id"]
        ]
        return states if len(states) >= 4 else None

    assert await eventually(state_changes) == ["RUNNING", "PAUSED", "RUNNING", "STOPPED"]
    cancels = [
        e
        for e in decoded(
            ORDERS_INTENTS, await read_all(settings.kafka_bootstrap, ORDERS_INTENTS, expect=1)
        )
        if isinstance(e, CancelOrder) and e.account_id == uuid.UUID(bot["account_id"])
    ]
    assert cancels == []  # the bot had no open order to cancel


@pytest.mark.parametrize(
    ("body", "status", "title"),
    [
        ({"strategy": "nope"}, 422, "Unknown strategy"),
        ({"params": {"fast": 30, "slow": 20}}, 422, "Invalid parameters"),
        ({"params": {"fast": "x"}}, 422, "Invalid parameters"),
        ({"instrument_id": "nasdaq:NODATA/USD"}, 422, "No market data"),
        ({"timeframe": "7x"}, 422, None),
        ({"account_id": str(uuid.uuid4())}, 404, "Unknown account"),  # not the caller's
        ({"user_id": str(uuid.uuid4())}, 422, None),  # no mass assignment of the owner
        ({"state": "STOPPED"}, 422, None),
        ({"name": "nul\x00here"}, 422, None),  # Postgres cannot store a NUL character
    ],
)
async def test_bad_bots_are_problems_and_nothing_is_created(
    client: httpx.AsyncClient,
    market: httpx.AsyncClient,
    body: dict[str, Any],
    status: int,
    title: str | None,
) -> None:
    instrument = await replay(market, 1000)
    await wait_stored(market, instrument, 30)
    user = uuid.uuid4()
    request = {
        "strategy": "sma_cross",
        "params": SMA,
        "instrument_id": instrument,
        "timeframe": "1d",
        "account_id": str(book().open(user)),
    } | body
    response = await client.post("/api/v1/bots", json=request, headers=headers(user))
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    if title is not None:
        assert response.json()["title"] == title
    if title == "Invalid parameters":
        errors = response.json()["errors"]
        assert errors and all("input" not in e for e in errors)  # where and why, no values
    assert (await client.get("/api/v1/bots", headers=headers(user))).json()["items"] == []


async def test_strategies_are_listed_with_their_parameter_schemas(
    client: httpx.AsyncClient,
) -> None:
    listed = (await client.get("/api/v1/strategies")).json()["items"]
    names = [s["name"] for s in listed]
    assert {"rsi_cross", "sma_cross", "bollinger_reversion", "donchian_breakout"} <= set(names)
    sma = next(s for s in listed if s["name"] == "sma_cross")
    assert sma["parameters"]["properties"]["fast"]["type"] == "integer"
    assert "crosses *above*" in sma["description"]
    assert sma["summary"] == "Moving-average crossover, long only unless `short`."
    one = await client.get("/api/v1/strategies/rsi_cross")
    assert one.json()["parameters"]["properties"]["period"]["default"] == 14
    # the same parameters one by one: type, default, bounds
    period = next(p for p in one.json()["parameter_list"] if p["name"] == "period")
    assert period | {"description": ""} == {
        "name": "period", "type": "integer", "required": False, "default": 14, "minimum": 2,
        "maximum": 500, "exclusive_minimum": None, "exclusive_maximum": None, "choices": None,
        "description": "",
    }  # fmt: skip
    missing = await client.get("/api/v1/strategies/nope")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


class _EveryBar(Strategy[StrategyConfig]):
    """Buys one on every bar: each bar it sees live shows as one intent."""

    name = "every_bar"
    config_class = StrategyConfig

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        ctx.submit_order("buy", Decimal(1))


async def test_bars_a_bot_missed_are_caught_up_from_history(
    settings: Settings, market: httpx.AsyncClient, market_data_app: FastAPI, replay_dir: Path
) -> None:
    registry = StrategyRegistry(load_entry_points=False)
    registry.register(_EveryBar)
    app = create_app(
        settings,
        market_transport=httpx.ASGITransport(app=market_data_app),
        execution_transport=book().transport,
        registry=registry,
    )
    instrument = await replay(market, 1000)
    await wait_stored(market, instrument, 400)
    bars = goog_bars(replay_dir, "GOOG_400.csv", instrument)
    user = uuid.uuid4()
    async with app_client(app) as client:
        bot = await start_bot(client, user, instrument, strategy="every_bar", params={})
        assert _t(bot["last_bar_time"]) == bars[-1].open_time
        # As if the last three bars of the file had passed the bot by (consumed in the moment
        # between its warm-up and its first commit): its row says it stopped at bars[-4].
        runtime = app.state.runtime
        async with runtime.db.transaction() as conn:
            await conn.execute(
                "UPDATE bots SET warm_from = $2, last_bar_time = $3, bars_seen = 2 "
                "WHERE bot_id = $1",
                uuid.UUID(bot["bot_id"]),
                bars[-5].open_time,
                bars[-4].open_time,
            )
        producer = Bus(settings, "test-market-data", telemetry=False)
        await producer.start()
        try:
            after = bars[-1].open_time + (bars[-1].close_time - bars[-1].open_time) * 3
            await producer.publish(
                bars[-1].model_copy(
                    update={"open_time": after, "close_time": after + timedelta(days=1)}
                )
            )
        finally:
            await producer.stop()
        done = await bot_reached(client, user, bot["bot_id"], after)
        assert done["bars_seen"] == 2 + 3 + 1
        intents = await intents_of(settings, bot["bot_id"], 4)
        expected_times = [b.open_time for b in bars[-3:]] + [after]
        assert [i.client_order_id for i in intents] == [
            make_client_order_id(uuid.UUID(bot["bot_id"]), t, "main") for t in expected_times
        ]


class _ExitOnStop(_EveryBar):
    """Buys one on every bar, and sells one when stopped."""

    name = "exit_on_stop"

    def on_stop(self, ctx: Context) -> None:
        ctx.submit_order("sell", Decimal(1), leg="exit")


async def test_stop_cancels_working_orders_and_keeps_what_on_stop_asks(
    settings: Settings, market: httpx.AsyncClient, market_data_app: FastAPI, replay_dir: Path
) -> None:
    registry = StrategyRegistry(load_entry_points=False)
    registry.register(_ExitOnStop)
    app = create_app(
        settings,
        market_transport=httpx.ASGITransport(app=market_data_app),
        execution_transport=book().transport,
        registry=registry,
    )
    instrument = await replay(market, 1000)
    await wait_stored(market, instrument, 400)
    last = goog_bars(replay_dir, "GOOG_400.csv", instrument)[-1]
    user = uuid.uuid4()
    async with app_client(app) as client:
        bot = await start_bot(client, user, instrument, strategy="exit_on_stop", params={})
        producer = Bus(settings, "test-market-data", telemetry=False)
        await producer.start()
        try:
            nxt = last.open_time + timedelta(days=1)
            await producer.publish(
                last.model_copy(update={"open_time": nxt, "close_time": nxt + timedelta(days=1)})
            )
        finally:
            await producer.stop()
        await bot_reached(client, user, bot["bot_id"], nxt)
        (working,) = await intents_of(settings, bot["bot_id"], 1)
        stopped = await client.post(f"/api/v1/bots/{bot['bot_id']}/stop", headers=headers(user))
        assert stopped.json()["state"] == "STOPPED"
        orders = (
            await client.get(f"/api/v1/bots/{bot['bot_id']}/orders", headers=headers(user))
        ).json()["items"]
        assert [(o["leg"], o["side"]) for o in orders] == [("main", "buy"), ("exit", "sell")]
        exit_id = orders[1]["client_order_id"]

        async def published() -> list[Any] | None:
            records = await read_all(settings.kafka_bootstrap, ORDERS_INTENTS, expect=1, timeout=2)
            mine = [
                e
                for e in decoded(ORDERS_INTENTS, records)
                if e.account_id == uuid.UUID(bot["account_id"])
            ]
            return mine if len(mine) >= 3 else None

        events = await eventually(published)
        assert [(type(e).__name__, e.client_order_id) for e in events] == [
            ("SubmitOrder", working.client_order_id),
            ("SubmitOrder", exit_id),
            ("CancelOrder", working.client_order_id),
        ]
