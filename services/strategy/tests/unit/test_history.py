"""The market-data client forwards a caller's access token when asked on their behalf."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from trademesh_strategy.history import MarketData

pytestmark = pytest.mark.unit


async def test_bars_forward_the_callers_authorization_only_when_given() -> None:
    seen: list[str | None] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Authorization"))
        return httpx.Response(200, json={"items": [], "next_start": None})

    market = MarketData("http://market-data", transport=httpx.MockTransport(answer))
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    try:
        await market.bars("test:A/USD", "1h", start, end, headers={"Authorization": "Bearer t"})
        await market.bars("test:A/USD", "1h", start, end)
    finally:
        await market.close()
    assert seen == ["Bearer t", None]
