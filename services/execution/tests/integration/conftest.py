"""Fixtures of the live-venue tests: the local Binance, CcxtVenues pointed at it, and the service
driving live orders on it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any
from uuid import UUID

import pytest
from pydantic import SecretStr
from trademesh_testing.binance import API_KEY, INSTRUMENT, SECRET, FakeBinance
from trademesh_testing.tokens import bearer

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

    def make(
        *,
        secret: str = SECRET,
        timeout_s: float = 5.0,
        config: dict[str, Any] | None = None,
        **options: Any,
    ) -> CcxtVenue:
        venue = CcxtVenue(
            "binance",
            api_key=SecretStr(API_KEY),
            secret=SecretStr(secret),
            urls={
                "api": {
                    "public": f"{binance.base}/api/v3",
                    "private": f"{binance.base}/api/v3",
                    "sapi": f"{binance.base}/sapi/v1",
                    # The WebSocket API (the order stream): its spot url is all ccxt uses.
                    "ws": {"ws-api": {"spot": binance.ws_api}},
                }
            },
            # Spot only, so load_markets asks just /api/v3/exchangeInfo: no futures APIs, and
            # (with credentials) no currencies nor margin pairs from /sapi.
            options={
                "fetchMarkets": {"types": ["spot"]},
                "fetchCurrencies": False,
                "fetchMargins": False,
            },
            # still rate limited, only faster than Binance's 50 ms
            config={"rateLimit": 1, **(config or {})},
            timeout_s=timeout_s,
            **options,
        )
        venues.append(venue)
        return venue

    yield make
    for venue in venues:
        await venue.close()


# ---- the service driving live orders on the local Binance --------------------------------------

_API_PATHS = {"public": "api/v3", "private": "api/v3", "sapi": "sapi/v1"}


@pytest.fixture
def make_live_app(settings: Any, binance: FakeBinance) -> Callable[..., Any]:
    """The execution service with a keystore, its live venue pointed at the local Binance (REST
    and its WebSocket API). Its reconciliation runs at start and then hourly: the tests ask for
    the runs they want."""
    from trademesh_keystore import new_master_key

    from trademesh_execution.app import create_app
    from trademesh_execution.credentials import Credentials

    def venue(exchange: str, credentials: Credentials) -> CcxtVenue:
        assert exchange == "binance"
        return CcxtVenue(
            "binance",
            api_key=credentials.api_key,
            secret=credentials.secret,
            urls={
                "api": {
                    **{k: f"{binance.base}/{v}" for k, v in _API_PATHS.items()},
                    "ws": {"ws-api": {"spot": binance.ws_api}},
                }
            },
            options={
                "fetchMarkets": {"types": ["spot"]},
                "fetchCurrencies": False,
                "fetchMargins": False,
            },
            config={"rateLimit": 1},
            timeout_s=1.0,
        )

    keys = SecretStr(json.dumps({"k1": new_master_key().get_secret_value()}))

    def make(**overrides: Any) -> Any:
        configured = settings.model_copy(
            update={
                "keystore_keys": keys,
                "keystore_current_key": "k1",
                "live_poll_interval_s": 0.1,
                "reconcile_interval_s": 3600.0,
                # The tests that follow the order stream turn it on; the others drive the
                # service by polling, one step at a time.
                "live_streams": False,
                **overrides,
            }
        )
        return create_app(configured, venue_factory=venue)

    return make


@pytest.fixture
def live_app(make_live_app: Callable[..., Any]) -> Any:
    return make_live_app()


@dataclass
class Live:
    """What the live-order tests do to the service: open a Binance account through the API,
    store orders PENDING as an approval leaves them, hold the driver so that the test drives
    it, and wait for an order's status."""

    app: Any

    async def account(self, client: Any, user: UUID) -> UUID:
        response = await client.post(
            "/api/v1/accounts",
            json={"name": "live", "venue": "binance", "api_key": API_KEY, "secret": SECRET},
            headers=bearer(user),
        )
        assert response.status_code == 201, response.text
        return UUID(response.json()["account_id"])

    async def pending(
        self,
        account: UUID,
        user: UUID,
        *,
        quantity: str = "0.0015",
        side: str = "buy",
        limit: str | None = None,
    ) -> str:
        """A market order (a limit one with `limit`) stored PENDING, and nothing sent yet."""
        from trademesh_events.orders import OrderType, SubmitOrder

        from trademesh_execution.engine import new_order

        submit = SubmitOrder(
            account_id=account,
            user_id=user,
            client_order_id=f"tm-live-{time.time_ns() % 10**12}",
            instrument_id=INSTRUMENT,
            side=side,  # type: ignore[arg-type]
            order_type=OrderType.MARKET if limit is None else OrderType.LIMIT,
            quantity=D(quantity),
            limit_price=None if limit is None else D(limit),
            source="manual",
            created_at=datetime.now(UTC),
        )
        runtime = self.app.state.runtime
        async with runtime.db.transaction() as conn:
            assert await runtime.store.insert_pending(conn, new_order(submit), "binance")
        return submit.client_order_id

    async def hold(self) -> Any:
        """Stop the service's own driving rounds (the test drives them): nothing is due for an
        hour, and the loop is let into its long pause."""
        live = self.app.state.runtime.live
        live.retry_after = timedelta(hours=1)
        live.open_poll = timedelta(hours=1)
        live.poll_interval = 3600.0
        await asyncio.sleep(0.3)
        return live

    async def status(self, client_order_id: str, wanted: Any) -> Any:
        from trademesh_testing.waiting import eventually

        async def reached() -> Any:
            found = await self.app.state.runtime.store.order(client_order_id)
            return found[0] if found and found[0].status is wanted else None

        return await eventually(reached, timeout=20)


@pytest.fixture
def live(live_app: Any) -> Live:
    return Live(live_app)


@pytest.fixture
def live_for() -> Callable[[Any], Live]:
    """`live_for(app)`: the helpers on an app of `make_live_app`'s."""
    return Live


_ORDERS = 0


def venue_order(
    order_type: Any = None,
    *,
    side: str = "sell",
    quantity: str = "0.002",
    limit: str | None = "70000.00",
    stop: str | None = None,
    tif: Any = None,
) -> Any:
    """A PENDING order of BTC/USDT as the venue is given it: a limit sell of 0.002 at 70000
    unless told otherwise, with a client order id of its own."""
    from trademesh_events.ids import AccountId, UserId
    from trademesh_events.orders import OrderStatus, OrderType, TimeInForce

    from trademesh_execution.engine import OrderView

    global _ORDERS
    _ORDERS += 1
    return OrderView(
        client_order_id=f"tm-{int(time.time())}-{_ORDERS}",
        account_id=AccountId(UUID(int=1)),
        user_id=UserId(UUID(int=2)),
        instrument_id=INSTRUMENT,
        side=side,  # type: ignore[arg-type]
        order_type=order_type or OrderType.LIMIT,
        quantity=D(quantity),
        limit_price=None if limit is None else D(limit),
        stop_price=None if stop is None else D(stop),
        status=OrderStatus.PENDING,
        created_at=datetime(2024, 6, 1, tzinfo=UTC),
        time_in_force=tif or TimeInForce.GTC,
    )


@pytest.fixture
def order() -> Callable[..., Any]:
    """`order(type, side=, quantity=, limit=, stop=, tif=)`: see `venue_order`."""
    return venue_order
