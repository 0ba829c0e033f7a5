"""An exchange account's buying power from the local Binance's balances, on the real Postgres and
broker: opening the account, a reconciliation and a fill each send risk an AccountChanged with
the venue's figures, after the fill's own events; a venue that cannot be read sends nothing and
is counted."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D
from typing import Any
from uuid import UUID

import pytest
from trademesh_events.orders import AccountChanged, OrderFilled, OrderStatus
from trademesh_events.topics import ORDERS_EVENTS
from trademesh_observability.metrics import REGISTRY
from trademesh_testing.binance import FakeBinance
from trademesh_testing.http import app_client
from trademesh_testing.samples import decoded, read_all
from trademesh_testing.tokens import bearer
from trademesh_testing.waiting import eventually

pytestmark = pytest.mark.integration


async def _events(kafka_bootstrap: str, account: UUID) -> list[Any]:
    """The account's events on orders.events.v1, in the order risk reads them."""
    records = await read_all(kafka_bootstrap, ORDERS_EVENTS, expect=1)
    return [e for e in decoded(ORDERS_EVENTS, records) if e.account_id == account]


def _reads(outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "trademesh_execution_balance_refreshes_total",
        {"service": "execution", "venue": "binance", "outcome": outcome},
    )
    return value or 0.0


async def test_reconciliation_and_fills_tell_risk_the_venues_balances(
    make_live_app: Any, live_for: Any, binance: FakeBinance, kafka_bootstrap: str
) -> None:
    app = make_live_app(balance_refresh_s=0.2)
    live = live_for(app)
    user = UUID(int=51)
    binance.set_balance("USDT", "5000")
    binance.set_balance("BTC", "0.25")

    async def changes(count: int) -> list[AccountChanged] | None:
        found = [
            e for e in await _events(kafka_bootstrap, account) if isinstance(e, AccountChanged)
        ]
        return found if len(found) >= count else None

    async with app_client(app) as client:
        driver = await live.hold()
        account = await live.account(client, user)
        shown = (await client.get(f"/api/v1/accounts/{account}", headers=bearer(user))).json()
        assert shown["currency"] == "USDT"

        # Opened: its balances are read at once.
        (opened,) = await eventually(lambda: changes(1), timeout=20)
        assert (opened.venue, opened.currency, opened.cash) == ("binance", "USDT", D(5000))
        assert opened.holdings == {"BTC": D("0.25")}  # ETH and BNB: none held, left out
        # The account's cash is the venue's, as told to risk (not what it was opened with).
        mine = (await client.get(f"/api/v1/accounts/{account}", headers=bearer(user))).json()
        assert D(mine["cash"]) == D(5000)
        assert (opened.margin_mode, opened.fee_bps) == ("cash", D(0))

        # Money left the account on the exchange's site: the next reconciliation tells risk.
        binance.set_balance("USDT", "4000")
        result = (
            await client.post(f"/api/v1/accounts/{account}/reconcile", headers=bearer(user))
        ).json()
        assert result["ok"] is True and result["balances_refreshed"] is True
        reconciled = (await eventually(lambda: changes(2), timeout=20))[1]
        assert (reconciled.cash, reconciled.holdings) == (D(4000), {"BTC": D("0.25")})
        mine = (await client.get(f"/api/v1/accounts/{account}", headers=bearer(user))).json()
        assert D(mine["cash"]) == D(4000)

        # A market buy of 0.0015 fills in two trades: the balances after them follow them.
        bought = await live.pending(account, user)
        driver.retry_after = timedelta(0)
        assert await driver.step()
        await live.status(bought, OrderStatus.FILLED)
        after = (await eventually(lambda: changes(3), timeout=20))[2]
        paid = D("101.25615") + D("0.06750400") + D("0.03375215")  # cost and commissions
        assert (after.cash, after.holdings) == (D(4000) - paid, {"BTC": D("0.2515")})
        events = await _events(kafka_bootstrap, account)
        fills = [n for n, e in enumerate(events) if isinstance(e, OrderFilled)]
        assert len(fills) == 2 and max(fills) < events.index(after)  # risk books them first

        # A venue that cannot be read: counted, nothing sent, risk keeps its figures.
        unavailable = _reads("unavailable")
        binance.outage = True
        failed = (
            await client.post(f"/api/v1/accounts/{account}/reconcile", headers=bearer(user))
        ).json()
        binance.outage = False
        assert failed["ok"] is False and failed["balances_refreshed"] is False
        assert _reads("unavailable") == unavailable + 1
        binance.set_balance("USDT", "-1")  # an answer that fails validation
        malformed = _reads("malformed")
        result = (
            await client.post(f"/api/v1/accounts/{account}/reconcile", headers=bearer(user))
        ).json()
        assert result["ok"] is True and result["balances_refreshed"] is False
        assert _reads("malformed") == malformed + 1
        assert len(await changes(3) or []) == 3


async def test_a_paper_account_takes_no_currency_and_reads_no_venue(
    live_app: Any, binance: FakeBinance
) -> None:
    user = UUID(int=52)
    async with app_client(live_app) as client:
        refused = await client.post(
            "/api/v1/accounts",
            json={"name": "paper", "currency": "USDT"},
            headers=bearer(user),
        )
        assert refused.status_code == 422, refused.text
        assert "no currency" in refused.text
        opened = await client.post("/api/v1/accounts", json={"name": "p"}, headers=bearer(user))
        assert opened.status_code == 201 and opened.json()["currency"] is None
        exchange = await client.post(
            "/api/v1/accounts",
            json={
                "name": "usdc",
                "venue": "binance",
                "api_key": "k" * 16,
                "secret": "s" * 16,
                "currency": "usdc",
            },
            headers=bearer(user),
        )
        assert exchange.status_code == 422, exchange.text  # upper case, as ccxt writes codes
    assert not [r for r in binance.received if r.path == "/api/v3/account"]
