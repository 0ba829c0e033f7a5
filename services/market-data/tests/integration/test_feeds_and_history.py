"""Feeds through the API on the real broker and Postgres: what they publish, what is stored, history."""

from __future__ import annotations

import csv
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from trademesh_events.marketdata import Bar, Tick
from trademesh_events.topics import MD_BARS, MD_TICKS, get_topic
from trademesh_testing.http import app_client
from trademesh_testing.marketdata import add_feed, finished, history
from trademesh_testing.samples import read_all
from trademesh_testing.tokens import bearer
from trademesh_testing.waiting import eventually
from trademesh_trading.timeframes import Timeframe

from trademesh_market_data.app import create_app
from trademesh_market_data.config import Settings
from trademesh_market_data.engine import BarAggregator

ADMIN = bearer(uuid.uuid4(), "admin")  # feeds are an admin's to manage

pytestmark = pytest.mark.integration

GOOG = Path(__file__).parents[2] / "src" / "trademesh_market_data" / "data" / "GOOG.csv"


def goog_rows() -> list[dict[str, Any]]:
    """The fixture as plain values, read independently of the service's replay code."""
    with GOOG.open(newline="") as handle:
        return [
            {
                "open_time": datetime.fromisoformat(row[""]).replace(tzinfo=UTC),
                **{k.lower(): Decimal(row[k]) for k in ("Open", "High", "Low", "Close", "Volume")},
            }
            for row in csv.DictReader(handle)
        ]


def instrument(prefix: str = "test") -> str:
    return f"{prefix}:T{uuid.uuid4().hex[:10].upper()}/USD"


def keyed(records: list[Any], key: str) -> list[Any]:
    return [r for r in records if r.key == key.encode()]


async def test_replay_of_the_fixture_publishes_and_stores_exactly_the_files_bars(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    name = instrument("nasdaq")
    feed = await add_feed(
        client, {"instrument_id": name, "timeframes": ["1d"], "config": {"kind": "replay"}}
    )
    assert feed["state"] in ("starting", "running")
    done = await finished(client, feed["feed_id"])
    rows = goog_rows()
    assert (done["published_bars"], done["rejected"]) == (len(rows), 0)
    assert done["enabled"] is False  # played once: a restart of the service does not replay it

    records = keyed(await read_all(settings.kafka_bootstrap, MD_BARS, expect=len(rows)), name)
    spec = get_topic(MD_BARS)
    bars: list[Bar] = [spec.decode(r.value) for r in records]
    assert [(b.open_time, b.open, b.high, b.low, b.close, b.volume) for b in bars] == [
        (r["open_time"], r["open"], r["high"], r["low"], r["close"], r["volume"]) for r in rows
    ]
    assert all(b.final and b.timeframe == "1d" for b in bars)
    # Each bar starts an order path, and a trace, of its own: not the request's that started
    # the feed, which every bot order of the replay would otherwise share.
    traces = [dict(r.headers)["traceparent"].decode().split("-")[1] for r in records]
    assert len(set(traces)) == len(traces)

    async def stored() -> list[dict[str, Any]] | None:
        got = await history(
            client,
            instrument=name,
            timeframe="1d",
            start="2004-01-01",
            end="2014-01-01",
            limit=1000,
        )
        return got if len(got) == len(rows) else None

    daily = await eventually(stored)
    assert [(d["open_time"][:10], Decimal(d["close"])) for d in daily] == [
        (r["open_time"].date().isoformat(), r["close"]) for r in rows
    ]
    # Weeks, resampled by Postgres from the stored daily bars, against the same sums in Python.
    weekly = await history(
        client, instrument=name, timeframe="1w", start="2004-01-01", end="2014-01-01"
    )
    week = Timeframe.parse("1w")
    expected: dict[datetime, dict[str, Any]] = {}
    for r in rows:
        w = expected.setdefault(week.floor(r["open_time"]), {**r, "volume": Decimal(0)})
        w["high"], w["low"] = max(w["high"], r["high"]), min(w["low"], r["low"])
        w["close"], w["volume"] = r["close"], w["volume"] + r["volume"]
    assert [
        (
            datetime.fromisoformat(w["open_time"]),
            *(Decimal(w[k]) for k in ("open", "high", "low", "close", "volume")),
        )
        for w in weekly
    ] == [(t, w["open"], w["high"], w["low"], w["close"], w["volume"]) for t, w in expected.items()]

    # A range starting mid-week returns the weeks opening in it, each one whole.
    mid = await history(
        client, instrument=name, timeframe="1w", start="2013-01-02", end="2013-01-15"
    )
    assert [w["open_time"][:10] for w in mid] == ["2013-01-07", "2013-01-14"]
    assert mid[0] == weekly[[w["open_time"] for w in weekly].index(mid[0]["open_time"])]

    last = (await client.get("/api/v1/prices/last", params={"instrument": name})).json()
    assert Decimal(last["price"]) == rows[-1]["close"]


async def test_synthetic_ticks_are_published_aggregated_stored_and_resampled(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    name = instrument()
    start = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    config = {"kind": "synthetic", "seed": 42, "rate": 50, "count": 4000, "realtime": False}
    feed = await add_feed(
        client,
        {
            "instrument_id": name,
            "timeframes": ["5s", "1m"],
            "config": {**config, "start": start.isoformat()},
        },
    )
    done = await finished(client, feed["feed_id"])
    assert done["published_ticks"] == 4000

    tick_records = keyed(await read_all(settings.kafka_bootstrap, MD_TICKS, expect=4000), name)
    ticks: list[Tick] = [get_topic(MD_TICKS).decode(r.value) for r in tick_records]
    assert len(ticks) == 4000 and ticks[0].ts == start
    assert ticks[-1].ts == start + timedelta(seconds=3999 / 50)

    # The bars the service published are the ones the aggregator makes of those ticks.
    reference = BarAggregator(name, [Timeframe.parse("5s"), Timeframe.parse("1m")])
    expected = [b for t in ticks for b in reference.add(t).bars] + reference.close_all()
    bar_records = keyed(
        await read_all(settings.kafka_bootstrap, MD_BARS, expect=len(expected)), name
    )
    assert [get_topic(MD_BARS).decode(r.value) for r in bar_records] == expected

    end = start + timedelta(hours=1)

    async def all_stored() -> list[dict[str, Any]] | None:
        # from the start of the 7 s interval holding the first tick (bars open in the range)
        first = Timeframe.parse("7s").floor(start)
        got = await history(client, instrument=name, timeframe="7s", start=first, end=end)
        return got if sum(int(b["trades"]) for b in got) == 4000 else None

    # 7s divides neither 5s nor 1m: Postgres resamples the stored ticks.
    from_ticks = await eventually(all_stored)
    seven = BarAggregator(name, [Timeframe.parse("7s")])
    expected_seven = [b for t in ticks for b in seven.add(t).bars] + seven.close_all()
    assert [
        (
            b["open_time"],
            Decimal(b["open"]),
            Decimal(b["high"]),
            Decimal(b["low"]),
            Decimal(b["close"]),
            Decimal(b["volume"]),
        )
        for b in from_ticks
    ] == [
        (b.open_time.isoformat().replace("+00:00", "Z"), b.open, b.high, b.low, b.close, b.volume)
        for b in expected_seven
    ]
    # 15s is built from the stored 5s bars.
    fifteen = await history(client, instrument=name, timeframe="15s", start=start, end=end)
    assert sum(int(b["trades"]) for b in fifteen) == 4000
    assert len(fifteen) == 4000 // 50 // 15 + 1


async def test_bad_requests_are_problems(client: httpx.AsyncClient) -> None:
    unknown = await client.get(
        "/api/v1/ohlcv",
        params={
            "instrument": "nowhere:X/Y",
            "timeframe": "1d",
            "start": "2024-01-01",
            "end": "2024-02-01",
        },
    )
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"
    name = instrument()
    await add_feed(
        client,
        {"instrument_id": name, "config": {"kind": "synthetic", "count": 10, "realtime": False}},
    )
    for params, title in [
        ({"timeframe": "1d", "start": "2024-02-01", "end": "2024-01-01"}, "Invalid range"),
        ({"timeframe": "3y", "start": "2024-01-01", "end": "2024-02-01"}, "Invalid timeframe"),
        (
            {"timeframe": "1d", "start": "2024-01-01", "end": "2024-02-01", "limit": 10**6},
            "Page too large",
        ),
        (
            {"timeframe": "1d", "start": "yesterday", "end": "2024-02-01"},
            "Request validation failed",
        ),
    ]:
        response = await client.get("/api/v1/ohlcv", params={"instrument": name, **params})
        assert (response.status_code, response.json()["title"]) == (422, title), response.text
    missing_file = await client.post(
        "/api/v1/feeds",
        json={"instrument_id": name, "config": {"kind": "replay", "file": "nothing.csv"}},
    )
    assert (missing_file.status_code, missing_file.json()["title"]) == (422, "Unknown replay file")
    assert (await client.get(f"/api/v1/feeds/{uuid.uuid4()}")).status_code == 404


async def test_feeds_stop_restart_and_delete(client: httpx.AsyncClient) -> None:
    name = instrument()
    feed = await add_feed(
        client,
        {"instrument_id": name, "config": {"kind": "synthetic", "rate": 20, "realtime": True}},
    )
    feed_id = feed["feed_id"]

    async def publishing() -> bool:
        return bool((await client.get(f"/api/v1/feeds/{feed_id}")).json()["published_ticks"] > 5)

    await eventually(publishing)
    stopped = (await client.post(f"/api/v1/feeds/{feed_id}/stop")).json()
    assert (stopped["state"], stopped["enabled"]) == ("stopped", False)
    listed = (await client.get("/api/v1/feeds", params={"limit": 1})).json()
    assert [f["feed_id"] for f in listed["items"]] == [feed_id]
    assert listed["next_cursor"] is None
    instruments = (await client.get("/api/v1/instruments")).json()
    assert name in instruments["items"]
    restarted = (await client.post(f"/api/v1/feeds/{feed_id}/start")).json()
    assert restarted["enabled"] and restarted["state"] in ("starting", "running")
    assert (await client.delete(f"/api/v1/feeds/{feed_id}")).status_code == 204
    assert (await client.get(f"/api/v1/feeds/{feed_id}")).status_code == 404


KNOWN_TRADES = """timestamp,price,size,side,id
2026-01-05T09:30:01Z,100,1,buy,1
2026-01-05T09:30:20Z,105,2,buy,2
2026-01-05T09:30:19.500Z,99,0.5,sell,3
2026-01-05T09:30:59Z,101,1,sell,4
2026-01-05T09:32:05Z,110,3,buy,5
2026-01-05T09:32:30Z,-1,1,buy,6
2026-01-05T09:33:05Z,111,1,sell,7
2026-01-05T09:10:00Z,90,1,sell,8
"""


async def test_a_known_trade_sequence_gives_known_bars(settings: Settings, tmp_path: Path) -> None:
    """Through the whole service: minute 0 has four ticks (one out of order, within the
    tolerance), minute 1 none (a gap), minute 2 one tick and a negative price (refused), minute 3
    one tick; the last row is 20 minutes too old (refused as out of order)."""
    (tmp_path / "known.csv").write_text(KNOWN_TRADES)
    app = create_app(settings.model_copy(update={"replay_dir": tmp_path}))
    name = instrument()
    async with app_client(app, headers=ADMIN) as client:
        feed = await add_feed(
            client,
            {
                "instrument_id": name,
                "timeframes": ["1m"],
                "config": {"kind": "replay", "file": "known.csv", "data": "trades"},
            },
        )
        done = await finished(client, feed["feed_id"])
        assert (done["published_ticks"], done["published_bars"], done["rejected"]) == (6, 3, 2)
        records = keyed(await read_all(settings.kafka_bootstrap, MD_BARS, expect=3), name)
        bars = [get_topic(MD_BARS).decode(r.value) for r in records]
        t0 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
        assert [
            (b.open_time, b.open, b.high, b.low, b.close, b.volume, b.trades) for b in bars
        ] == [
            (t0, Decimal(100), Decimal(105), Decimal(99), Decimal(101), Decimal("4.5"), 4),
            (t0 + timedelta(minutes=2), *[Decimal(110)] * 4, Decimal(3), 1),
            (t0 + timedelta(minutes=3), *[Decimal(111)] * 4, Decimal(1), 1),
        ]
        metrics = (await client.get("/metrics")).text
        feed_label = f'feed="{feed["feed_id"]}"'
        for line in (
            f'trademesh_md_ticks_in_total{{{feed_label},service="market-data"}} 7.0',
            f'trademesh_md_ticks_out_total{{{feed_label},service="market-data"}} 6.0',
            f'trademesh_md_rejected_total{{{feed_label},reason="bad_row",service="market-data"}} 1.0',
            f'trademesh_md_rejected_total{{{feed_label},reason="out_of_order",service="market-data"}} 1.0',
        ):
            assert line in metrics, line


async def test_in_progress_bars_are_published_when_asked_and_never_stored(
    settings: Settings, tmp_path: Path
) -> None:
    (tmp_path / "known.csv").write_text(KNOWN_TRADES)
    app = create_app(settings.model_copy(update={"replay_dir": tmp_path}))
    name = instrument()
    async with app_client(app, headers=ADMIN) as client:
        feed = await add_feed(
            client,
            {
                "instrument_id": name,
                "timeframes": ["1m"],
                "partial_every_s": 30,
                "config": {"kind": "replay", "file": "known.csv", "data": "trades"},
            },
        )
        assert feed["partial_every_s"] == 30
        await finished(client, feed["feed_id"])
        records = keyed(await read_all(settings.kafka_bootstrap, MD_BARS, expect=3), name)
        bars = [get_topic(MD_BARS).decode(r.value) for r in records]
        progress = [(b.open_time.minute, b.close) for b in bars if not b.final]
        # minute 30: at its first tick and 30 s later; minutes 32 and 33: at their first tick
        assert progress == [
            (30, Decimal(100)),
            (30, Decimal(101)),
            (32, Decimal(110)),
            (33, Decimal(111)),
        ]
        assert len([b for b in bars if b.final]) == 3

        async def stored() -> list[dict[str, Any]] | None:
            got = await history(
                client, instrument=name, timeframe="1m", start="2026-01-05", end="2026-01-06"
            )
            return got if len(got) == 3 else None

        assert [int(b["trades"]) for b in await eventually(stored)] == [4, 1, 1]


async def test_with_two_replicas_a_feed_runs_once_and_the_other_takes_over(
    settings: Settings,
) -> None:
    """Two processes of the service on one schema: the feed's advisory lock lets one play it;
    when that one stops, the other takes the feed over."""
    first, second = create_app(settings), create_app(settings)
    name = instrument()
    async with app_client(first, headers=ADMIN) as one:
        feed = await add_feed(
            one,
            {"instrument_id": name, "config": {"kind": "synthetic", "rate": 20, "realtime": True}},
        )
        feed_id = feed["feed_id"]

        async def running(client: httpx.AsyncClient, state: str) -> bool:
            return bool((await client.get(f"/api/v1/feeds/{feed_id}")).json()["state"] == state)

        await eventually(lambda: running(one, "running"))
        async with app_client(
            second, headers=ADMIN
        ) as two:  # starts the enabled feed too, and waits
            await eventually(lambda: running(two, "standby"))
            assert (await two.get(f"/api/v1/feeds/{feed_id}")).json()["published_ticks"] == 0
            await first.state.runtime.feeds.stop_all()  # replica one goes away
            await eventually(lambda: running(two, "running"), timeout=20)

            async def publishing() -> bool:
                body = (await two.get(f"/api/v1/feeds/{feed_id}")).json()
                return bool(body["published_ticks"] > 0)

            await eventually(publishing)


async def test_feeds_are_an_admins_and_history_is_open(client: httpx.AsyncClient) -> None:
    """market-data checks the caller of its feed routes itself (not only the gateway): an admin's
    verified token, else 401 (no or a bad token) or 403 (a trader, a viewer). History stays
    readable without a caller: strategy warms bots from it with none."""
    feed = await add_feed(
        client,
        {
            "instrument_id": f"nasdaq:T{uuid.uuid4().hex[:10].upper()}/USD",
            "timeframes": ["1d"],
            "config": {"kind": "replay", "file": "GOOG.csv"},
            "enabled": False,
        },
    )
    calls = [
        ("GET", "/api/v1/feeds"),
        ("POST", "/api/v1/feeds"),
        ("GET", f"/api/v1/feeds/{feed['feed_id']}"),
        ("POST", f"/api/v1/feeds/{feed['feed_id']}/start"),
        ("POST", f"/api/v1/feeds/{feed['feed_id']}/stop"),
        ("DELETE", f"/api/v1/feeds/{feed['feed_id']}"),
    ]
    for method, path in calls:
        for headers, status in (
            ({"Authorization": ""}, 401),
            ({"Authorization": "Bearer not-a-token"}, 401),
            (bearer(uuid.uuid4(), "trader"), 403),
            (bearer(uuid.uuid4(), "viewer"), 403),
        ):
            response = await client.request(method, path, json={}, headers=headers)
            assert response.status_code == status, (method, path, response.text)
            assert response.headers["content-type"] == "application/problem+json"
    assert (await client.get(f"/api/v1/feeds/{feed['feed_id']}")).json()["enabled"] is False
    open_client = {"Authorization": ""}
    for path in ("/api/v1/instruments", "/api/v1/about"):
        assert (await client.get(path, headers=open_client)).status_code == 200, path
