"""The service following live orders on the venue's order stream (the local Binance's WebSocket
API), on the real Postgres and broker: fills arrive without polling, each trade once, and a
dropped stream is reconnected and the account reconciled."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D
from typing import Any
from uuid import UUID

import pytest
from trademesh_events.orders import OrderStatus
from trademesh_testing.binance import INSTRUMENT, FakeBinance
from trademesh_testing.http import app_client
from trademesh_testing.tokens import bearer
from trademesh_testing.waiting import eventually

pytestmark = pytest.mark.integration


def _lookups(binance: FakeBinance) -> int:
    return sum(1 for r in binance.received if r.path == "/api/v3/order" and r.method == "GET")


async def test_fills_come_on_the_order_stream_and_a_dropped_stream_reconnects_and_reconciles(
    make_live_app: Any, live_for: Any, binance: FakeBinance
) -> None:
    app = make_live_app(live_streams=True)
    live = live_for(app)
    runtime = app.state.runtime
    user = UUID(int=41)
    async with app_client(app) as client:
        driver = await live.hold()
        account = await live.account(client, user)

        async def streaming() -> bool:
            return account in runtime.live.streamed and any(
                s.subscriptions for s in binance.streams
            )

        await eventually(streaming, timeout=20)

        async def reconciled_at() -> Any:
            return await runtime.db.pool.fetchval(
                "SELECT reconciled_at FROM accounts WHERE account_id = $1", account
            )

        connected = await eventually(reconciled_at, timeout=20)  # reconciled as it connected

        resting = await live.pending(account, user, side="sell", quantity="0.002", limit="70000")
        driver.retry_after = timedelta(0)
        assert await driver.step()
        await live.status(resting, OrderStatus.ACCEPTED)
        looked_up = _lookups(binance)

        binance.fill(resting, "0.0005", "70000.00")
        partial = await live.status(resting, OrderStatus.PARTIALLY_FILLED)
        binance.fill(resting, "0.0015", "70000.00")
        done = await live.status(resting, OrderStatus.FILLED)
        assert (partial.filled, done.filled) == (D("0.0005"), D("0.002"))
        assert _lookups(binance) == looked_up  # the stream brought them, not a poll
        fills = await runtime.store.fills_of(account, 10)
        assert sorted((f["trade_id"], f["fee"], f["liquidity"]) for f in fills) == sorted(
            (f"{INSTRUMENT}#{t['id']}", D(t["commission"]), "maker") for t in binance.trades
        )

        # The stream drops; an order fills before it is back: reconnected, the account is
        # reconciled, and the fill is there once (whichever brought it).
        other = await live.pending(account, user, side="sell", quantity="0.002", limit="70100")
        assert await driver.step()
        await live.status(other, OrderStatus.ACCEPTED)
        await binance.drop_streams()
        binance.fill(other, "0.002", "70100.00")
        await live.status(other, OrderStatus.FILLED)

        async def reconnected_and_reconciled() -> bool:
            at = await reconciled_at()
            return at > connected and await streaming()

        await eventually(reconnected_and_reconciled, timeout=30)
        fills = await runtime.store.fills_of(account, 10)
        assert len(fills) == len(binance.trades) == 3
        assert len({f["trade_id"] for f in fills}) == 3
        pnl = (await client.get(f"/api/v1/accounts/{account}/pnl", headers=bearer(user))).json()
        assert [D(p["quantity"]) for p in pnl["positions"]] == [D("-0.004")]
