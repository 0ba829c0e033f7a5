"""Fixtures of the live-venue tests: the local Binance and CcxtVenues pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from pydantic import SecretStr
from trademesh_testing.binance import API_KEY, SECRET, FakeBinance

from trademesh_execution.venues import CcxtVenue


@pytest.fixture
async def binance() -> AsyncIterator[FakeBinance]:
    server = FakeBinance()
    await server.start()
    yield server
    await server.stop()
    assert server.unexpected == []


@pytest.fixture
async def make_venue(binance: FakeBinance) -> AsyncIterator[Callable[..., CcxtVenue]]:
    venues: list[CcxtVenue] = []

    def make(*, secret: str = SECRET, timeout_s: float = 5.0, **options: Any) -> CcxtVenue:
        venue = CcxtVenue(
            "binance",
            api_key=SecretStr(API_KEY),
            secret=SecretStr(secret),
            urls={
                "api": {
                    "public": f"{binance.base}/api/v3",
                    "private": f"{binance.base}/api/v3",
                    "sapi": f"{binance.base}/sapi/v1",
                }
            },
            # Spot only, so load_markets asks just /api/v3/exchangeInfo: no futures APIs, and
            # (with credentials) no currencies nor margin pairs from /sapi.
            options={
                "fetchMarkets": {"types": ["spot"]},
                "fetchCurrencies": False,
                "fetchMargins": False,
            },
            config={"rateLimit": 1},  # still rate limited, only faster than Binance's 50 ms
            timeout_s=timeout_s,
            **options,
        )
        venues.append(venue)
        return venue

    yield make
    for venue in venues:
        await venue.close()
