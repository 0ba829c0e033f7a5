"""market-data's HTTP API as tests drive it: add a feed, wait for a replay to end, read history.

Shared by market-data's own tests and by the tests of services that read its history (strategy).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from trademesh_events.marketdata import Bar

from trademesh_testing.waiting import eventually


def fresh_instrument(venue: str = "nasdaq") -> str:
    """A fresh instrument id, so that tests sharing the broker and database never meet."""
    return f"{venue}:T{uuid.uuid4().hex[:10].upper()}/USD"


async def add_feed(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    """POST /api/v1/feeds; the created feed (asserts the 201)."""
    response = await client.post("/api/v1/feeds", json=body)
    assert response.status_code == 201, response.text
    feed: dict[str, Any] = response.json()
    return feed


async def start_replay(
    client: httpx.AsyncClient,
    *,
    file: str = "GOOG.csv",
    bars_per_s: float | None = None,
    instrument: str | None = None,
) -> tuple[str, dict[str, Any]]:
    """A replay of a daily OHLCV file of the replay folder on a fresh instrument, played at
    about `bars_per_s` (as fast as possible when None); its instrument and feed."""
    name = instrument or fresh_instrument()
    config: dict[str, Any] = {"kind": "replay", "file": file}
    if bars_per_s is not None:
        config["speed"] = 86400 * bars_per_s  # one day of data per 1/bars_per_s seconds
    feed = await add_feed(client, {"instrument_id": name, "timeframes": ["1d"], "config": config})
    return name, feed


async def finished(
    client: httpx.AsyncClient, feed_id: str, timeout: float = 30.0
) -> dict[str, Any]:
    """The feed once its replay has played to the end (asserts it never fails)."""

    async def state() -> dict[str, Any] | None:
        feed = (await client.get(f"/api/v1/feeds/{feed_id}")).json()
        assert feed["state"] != "failed", feed
        return feed if feed["state"] == "finished" else None

    result: dict[str, Any] = await eventually(state, timeout=timeout)
    return result


async def history(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    """Every page of GET /api/v1/ohlcv (asserts each answer is a 200)."""
    items: list[dict[str, Any]] = []
    while True:
        response = await client.get("/api/v1/ohlcv", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        items += page["items"]
        if page["next_start"] is None:
            return items
        params = {**params, "start": page["next_start"]}


async def stored_bars(client: httpx.AsyncClient, instrument: str, timeframe: str = "1d") -> int:
    """How many `timeframe` bars of `instrument` the history API has (0 on any error)."""
    response = await client.get(
        "/api/v1/ohlcv",
        params={
            "instrument": instrument,
            "timeframe": timeframe,
            "start": "2000-01-01",
            "end": "2100-01-01",
            "limit": 5000,
        },
    )
    return len(response.json()["items"]) if response.status_code == 200 else 0


async def wait_stored(
    client: httpx.AsyncClient, instrument: str, at_least: int, timeout: float = 60.0
) -> None:
    """Until the history API has `at_least` daily bars of `instrument`: a replay that has
    finished publishing may still be writing to the tick store."""

    async def enough() -> bool:
        return await stored_bars(client, instrument) >= at_least

    await eventually(enough, timeout=timeout)


@dataclass(frozen=True)
class Replayed:
    """A replay played to its end and stored: its instrument, and the history API's bars of the
    range that was read back."""

    instrument: str
    bars: list[Bar]


async def replayed(
    client: httpx.AsyncClient, start: str, end: str, *, file: str = "GOOG.csv"
) -> Replayed:
    """A replay of a daily OHLCV file on a fresh instrument, played to the end with every bar
    stored; its daily bars opening in [start, end), as the history API gives them."""
    instrument, feed = await start_replay(client, file=file)
    done = await finished(client, feed["feed_id"])
    await wait_stored(client, instrument, done["published_bars"])
    items = await history(client, instrument=instrument, timeframe="1d", start=start, end=end)
    fields = ("open_time", "close_time", "open", "high", "low", "close", "volume")
    bars = [
        Bar(instrument_id=instrument, timeframe="1d", **{k: item[k] for k in fields})
        for item in items
    ]
    return Replayed(instrument, bars)
