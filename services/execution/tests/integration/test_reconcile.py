"""Reconciliation against the local Binance, on the real Postgres and broker: what happened at the
venue while the service was away is applied, what disagrees is raised (events, rows, the API),
and nothing is applied or raised twice.

Also the exchange account's connectivity test.
"""

from __future__ import annotations

import copy
from datetime import timedelta
from decimal import Decimal as D
from typing import Any
from uuid import UUID

import pytest
from trademesh_events.orders import DiscrepancyDetected, OrderStatus
from trademesh_events.topics import ORDERS_DISCREPANCIES
from trademesh_testing.binance import API_KEY, INSTRUMENT, SECRET, FakeBinance, load
from trademesh_testing.http import app_client
from trademesh_testing.samples import decoded, read_all
from trademesh_testing.tokens import bearer
from trademesh_testing.waiting import eventually

pytestmark = pytest.mark.integration


def _requests(binance: FakeBinance, method: str) -> list[str]:
    """The client ids of the order requests of `method` the venue received."""
    return [
        r.params.get("origClientOrderId") or r.params.get("newClientOrderId", "")
        for r in binance.received
        if r.path == "/api/v3/order" and r.method == method
    ]


async def _resting(live: Any, driver: Any, account: UUID, user: UUID, price: str) -> str:
    """A limit sell of 0.002 sent by the driver and resting (ACCEPTED) at the venue."""
    client_order_id = await live.pending(account, user, side="sell", quantity="0.002", limit=price)
    driver.retry_after = timedelta(0)
    assert await driver.step()
    driver.retry_after = timedelta(hours=1)
    await live.status(client_order_id, OrderStatus.ACCEPTED)
    return client_order_id


async def test_reconciliation_applies_what_happened_away_and_raises_each_disagreement_once(
    live_app: Any, live: Any, binance: FakeBinance, kafka_bootstrap: str
) -> None:
    user = UUID(int=31)
    headers = bearer(user)
    runtime = live_app.state.runtime
    async with app_client(live_app) as client:
        driver = await live.hold()
        driver.missing_grace = timedelta(0)
        account = await live.account(client, user)
        filled = await _resting(live, driver, account, user, "70000.00")
        canceled = await _resting(live, driver, account, user, "70100.00")
        lost = await _resting(live, driver, account, user, "70200.00")
        ended = await _resting(live, driver, account, user, "70300.00")

        # While the service was not looking:
        binance.fill(filled, "0.0005", "70000.00")  # filled, in two trades
        binance.fill(filled, "0.0015", "70000.00")
        binance.orders[canceled].update(status="CANCELED")  # cancelled on the exchange's site
        binance.fill(lost, "0.0005", "70200.00")  # a partial fill, then the venue lost it
        del binance.orders[lost]
        # Our books say this one ended (a cancel recorded that the venue never did).
        await runtime.db.pool.execute(
            "UPDATE orders SET status = 'CANCELED' WHERE client_order_id = $1", ended
        )
        # A manual order on the exchange's site, and a trade of another order not ours.
        manual = copy.deepcopy(binance.orders[filled])
        manual.update(
            clientOrderId="web_7d1c0e5a", orderId=99900001, status="NEW", executedQty="0.00000000"
        )
        binance.orders["web_7d1c0e5a"] = manual
        foreign = load("myTrade.json")
        foreign.update(id=3609990001, orderId=99900002, time=binance.now_ms())
        binance.extra_trades.append(foreign)

        response = await client.post(f"/api/v1/accounts/{account}/reconcile", headers=headers)
        assert response.status_code == 200, response.text
        result = response.json()
        assert result["ok"] is True and result["error"] is None
        assert result["open_at_venue"] == 2  # `ended`, still working there, and the manual one
        assert result["kinds"] == {
            "UNKNOWN_VENUE_ORDER": 1,
            "STATUS_MISMATCH": 1,
            "ORDER_MISSING": 1,
            "UNMATCHED_TRADE": 1,
        }

        # Applied: the fills (the venue's own trades, by their ids) and the ends.
        done = await live.status(filled, OrderStatus.FILLED)
        assert (done.filled, done.avg_price) == (D("0.002"), D("70000.00"))
        await live.status(canceled, OrderStatus.CANCELED)
        expired = await live.status(lost, OrderStatus.EXPIRED)
        assert expired.filled == D("0.0005")  # its trade applied before it was closed
        fills = await runtime.store.fills_of(account, 10)
        venue_trades = [t for t in binance.trades if t["orderId"] != 99900002]
        assert sorted(f["trade_id"] for f in fills) == sorted(
            f"{INSTRUMENT}#{t['id']}" for t in venue_trades
        )
        pnl = (await client.get(f"/api/v1/accounts/{account}/pnl", headers=headers)).json()
        assert [D(p["quantity"]) for p in pnl["positions"]] == [D("-0.0025")]

        # The order ended here but working there was cancelled at the venue; the manual order
        # was left alone.
        assert _requests(binance, "DELETE") == [ended]
        assert binance.orders["web_7d1c0e5a"]["status"] == "NEW"

        listed = (
            await client.get(f"/api/v1/accounts/{account}/discrepancies", headers=headers)
        ).json()["items"]
        by_kind = {d["kind"]: d for d in listed}
        assert set(by_kind) == set(result["kinds"])
        assert by_kind["UNKNOWN_VENUE_ORDER"]["resolution"] is None
        assert "web_7d1c0e5a" in by_kind["UNKNOWN_VENUE_ORDER"]["venue_ref"]
        assert by_kind["ORDER_MISSING"]["client_order_id"] == lost
        assert "EXPIRED" in by_kind["ORDER_MISSING"]["resolution"]
        assert by_kind["STATUS_MISMATCH"]["client_order_id"] == ended
        assert "3609990001" in by_kind["UNMATCHED_TRADE"]["venue_ref"]

        async def raised() -> list[DiscrepancyDetected] | None:
            records = await read_all(kafka_bootstrap, ORDERS_DISCREPANCIES, expect=4)
            mine = [e for e in decoded(ORDERS_DISCREPANCIES, records) if e.account_id == account]
            return mine if len(mine) >= 4 else None

        events = await eventually(raised, timeout=20)
        assert sorted(e.kind.value for e in events) == sorted(result["kinds"])
        assert all(e.user_id == user and e.venue == "binance" for e in events)

        # Again: nothing new to apply, nothing raised twice.
        again = (await client.post(f"/api/v1/accounts/{account}/reconcile", headers=headers)).json()
        assert (again["discrepancies"], again["orders_updated"], again["fills_applied"]) == (
            0,
            0,
            0,
        )
        assert len(await runtime.store.fills_of(account, 10)) == len(fills)
        relisted = (
            await client.get(f"/api/v1/accounts/{account}/discrepancies", headers=headers)
        ).json()["items"]
        assert len(relisted) == 4


async def test_a_restart_reconciles_and_so_does_a_venue_coming_back(
    live_app: Any, live: Any, binance: FakeBinance
) -> None:
    user = UUID(int=32)
    runtime = live_app.state.runtime
    async with app_client(live_app) as client:
        driver = await live.hold()
        account = await live.account(client, user)
        resting = await _resting(live, driver, account, user, "70000.00")

    # The service is down; the order fills at the venue.
    binance.fill(resting, "0.002", "70000.00")

    async def reconciled_at() -> Any:
        return await runtime.db.pool.fetchval(
            "SELECT reconciled_at FROM accounts WHERE account_id = $1", account
        )

    async with app_client(live_app):  # a restart: reconciliation at start finds the fill
        await live.status(resting, OrderStatus.FILLED)  # the driver is held: it was the start
        first = await eventually(reconciled_at, timeout=20)

        # The venue goes away; the driver meets it away, then back: the account is reconciled.
        other = await live.pending(account, user, side="sell", quantity="0.002", limit="70500.00")
        binance.outage = True
        driver.retry_after = timedelta(0)
        assert await driver.step()
        assert account in driver.unreachable
        assert (await runtime.store.order(other))[0].status is OrderStatus.PENDING
        binance.outage = False
        assert await driver.step()  # sent now; the venue answered again
        assert account not in driver.unreachable

        async def again() -> Any:
            at = await reconciled_at()
            return at if at > first else None

        await eventually(again, timeout=20)


async def test_the_connectivity_test_makes_a_signed_call_and_says_what_failed(
    live_app: Any, live: Any, binance: FakeBinance
) -> None:
    user = UUID(int=33)
    headers = bearer(user)
    async with app_client(live_app) as client:
        await live.hold()
        account = await live.account(client, user)
        ok = (await client.post(f"/api/v1/accounts/{account}/test", headers=headers)).json()
        assert ok["ok"] is True and ok["open_orders"] == 0 and ok["error"] is None
        assert [r.signed for r in binance.received if r.path == "/api/v3/openOrders"] == [True]

        binance.outage = True
        away = (await client.post(f"/api/v1/accounts/{account}/test", headers=headers)).json()
        assert (away["ok"], away["error"]) == (False, "unavailable")
        binance.outage = False

        wrong = await client.post(
            "/api/v1/accounts",
            json={
                "name": "typo",
                "venue": "binance",
                "api_key": API_KEY,
                "secret": "not-the-right-secret-0",
            },
            headers=headers,
        )
        refused = await client.post(
            f"/api/v1/accounts/{wrong.json()['account_id']}/test", headers=headers
        )
        assert (refused.json()["ok"], refused.json()["error"]) == (False, "rejected")
        assert "Signature" in refused.json()["message"]
        for text in (ok, away, refused.text):
            assert SECRET not in str(text) and "not-the-right-secret-0" not in str(text)
            assert API_KEY not in str(text)

        paper = await client.post("/api/v1/accounts", json={"name": "p"}, headers=headers)
        tested = await client.post(
            f"/api/v1/accounts/{paper.json()['account_id']}/test", headers=headers
        )
        assert tested.json()["ok"] is True
        nothing = await client.post(
            f"/api/v1/accounts/{paper.json()['account_id']}/reconcile", headers=headers
        )
        assert nothing.status_code == 409

        # Another user's account does not exist for the caller.
        stranger = bearer(UUID(int=34))
        assert (
            await client.post(f"/api/v1/accounts/{account}/test", headers=stranger)
        ).status_code == 404
        assert (
            await client.get(f"/api/v1/accounts/{account}/discrepancies", headers=stranger)
        ).status_code == 404
