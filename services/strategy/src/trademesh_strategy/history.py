"""market-data's history API, as the strategy service uses it: bars to warm bots and to backtest.

Services never read another service's schema (docs/architecture.md): the strategy service asks
market-data over HTTP. A connection failure, a timeout or a 5xx is MarketDataUnavailable, a
TransientError, so a bar handler that needs history is retried instead of dead-lettered.

Who calls: market-data's history endpoints (/ohlcv, /prices/last) need no caller today (market
data is nobody's own resource). A request made while serving a user (a backtest's range check)
still forwards that user's access token (`headers=caller.auth_headers()`), so it keeps working
once market-data verifies callers; the bot runner's calls (on bar events, with no user request
behind them) carry none, and would then need a service token from auth, which is not built
(docs/decisions/0035-market-data-access.md). The headers are never logged.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import httpx
from trademesh_bus.errors import TransientError
from trademesh_events.ids import InstrumentId
from trademesh_events.marketdata import Bar
from trademesh_trading.timeframes import Timeframe


class MarketDataUnavailable(TransientError):
    """market-data did not answer, or answered with a server error."""


class NoMarketData(LookupError):
    """The instrument is unknown to market-data, or has no bar of that timeframe in the range."""


class MarketData:
    """A client of market-data's /api/v1 history endpoints."""

    def __init__(
        self,
        base_url: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 10.0,
        page: int = 5000,
    ) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/api/v1", transport=transport, timeout=timeout
        )
        self._page = page

    async def close(self) -> None:
        await self._client.aclose()

    async def _get(
        self, path: str, params: dict[str, Any], headers: Mapping[str, str] | None = None
    ) -> httpx.Response:
        try:
            response = await self._client.get(path, params=params, headers=headers)
        except httpx.HTTPError as exc:
            raise MarketDataUnavailable(f"market-data: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 500:
            raise MarketDataUnavailable(f"market-data answered {response.status_code}")
        return response

    async def bars(
        self,
        instrument: InstrumentId,
        timeframe: str,
        start: datetime,
        end: datetime,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> list[Bar]:
        """Every final bar opening in [start, end), oldest first (all pages). `headers`: the
        caller's Authorization when asked on a user's behalf."""
        found: list[Bar] = []
        params: dict[str, Any] = {
            "instrument": instrument,
            "timeframe": timeframe,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "limit": self._page,
        }
        while True:
            response = await self._get("/ohlcv", params, headers)
            if response.status_code == 404:
                raise NoMarketData(f"market-data has no instrument {instrument!r}")
            if response.status_code != 200:
                raise NoMarketData(_detail(response))
            page = response.json()
            found += [_bar(item, instrument, timeframe) for item in page["items"]]
            if page.get("next_start") is None:
                return found
            params = {**params, "start": page["next_start"]}

    async def last_bars(
        self, instrument: InstrumentId, timeframe: str, count: int, until: datetime | None = None
    ) -> list[Bar]:
        """Up to `count` of the latest stored bars (opening before `until` when given), oldest
        first. Raises NoMarketData when the instrument has no data at all."""
        tf = Timeframe.parse(timeframe)
        if until is None:
            response = await self._get("/prices/last", {"instrument": instrument})
            if response.status_code != 200:
                raise NoMarketData(_detail(response))
            until = tf.floor(datetime.fromisoformat(response.json()["ts"])) + tf.delta
        wanted = max(count, 1)
        # Walk back in growing windows: markets close (weekends, nights), so N bars of a
        # timeframe span more than N intervals; stop after a year of empty history per bar.
        span = tf.delta * (wanted * 2 + 5)
        while True:
            got = await self.bars(instrument, timeframe, until - span, until)
            if len(got) >= wanted or span > tf.delta * wanted * 512:
                return got[-wanted:] if count > 0 else []
            span *= 4


def _bar(item: dict[str, Any], instrument: InstrumentId, timeframe: str) -> Bar:
    return Bar(
        instrument_id=instrument,
        timeframe=timeframe,
        open_time=item["open_time"],
        close_time=item["close_time"],
        open=item["open"],
        high=item["high"],
        low=item["low"],
        close=item["close"],
        volume=item["volume"],
        trades=item.get("trades", 0),
        final=True,
    )


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"market-data answered {response.status_code}"
    return str(body.get("detail") or body.get("title") or response.status_code)
