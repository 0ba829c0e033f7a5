"""Lists on the real Postgres: the shared page shape (limit, cursor, the cap), and money written
the same way by create, get and list."""

from __future__ import annotations

from uuid import uuid4

import pytest
from trademesh_http.pagination import MAX_LIMIT
from trademesh_testing.http import app_client
from trademesh_testing.tokens import bearer

from trademesh_execution.app import create_app
from trademesh_execution.config import Settings

pytestmark = pytest.mark.integration

CASH = ["5E+4", "50000.00", "1234.5", "0.00000001", "99999"]
PLAIN = ["50000", "50000", "1234.5", "0.00000001", "99999"]


async def test_accounts_page_by_cursor_and_write_cash_alike_on_create_get_and_list(
    settings: Settings,
) -> None:
    headers = bearer(uuid4())
    async with app_client(create_app(settings)) as client:
        created = []
        for n, cash in enumerate(CASH):
            made = await client.post(
                "/api/v1/accounts", json={"name": f"paged {n}", "cash": cash}, headers=headers
            )
            assert made.status_code == 201, made.text
            created.append(made.json())
        assert [a["cash"] for a in created] == PLAIN
        for account in created:
            got = await client.get(f"/api/v1/accounts/{account['account_id']}", headers=headers)
            assert got.json()["cash"] == account["cash"]

        pages, cursor = [], None
        while True:
            params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
            page = (await client.get("/api/v1/accounts", params=params, headers=headers)).json()
            pages.append([a["name"] for a in page["items"]])
            for listed in page["items"]:
                assert listed["cash"] == PLAIN[int(listed["name"].split()[-1])]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert pages == [["paged 0", "paged 1"], ["paged 2", "paged 3"], ["paged 4"]]

        everything = await client.get("/api/v1/accounts", headers=headers)
        assert len(everything.json()["items"]) == 5 and everything.json()["next_cursor"] is None
        # another user's cursor position shows nothing of this one's
        stranger = await client.get("/api/v1/accounts", headers=bearer(uuid4()))
        assert stranger.json() == {"items": [], "next_cursor": None}


@pytest.mark.parametrize(
    "path", ["/api/v1/accounts", "/api/v1/orders", "/api/v1/accounts/{account}/fills"]
)
async def test_a_page_over_the_cap_or_a_forged_cursor_is_a_problem(
    settings: Settings, path: str
) -> None:
    headers = bearer(uuid4())
    async with app_client(create_app(settings)) as client:
        made = await client.post("/api/v1/accounts", json={"name": "capped"}, headers=headers)
        url = path.format(account=made.json()["account_id"])
        over = await client.get(url, params={"limit": MAX_LIMIT + 1}, headers=headers)
        assert over.status_code == 422
        assert over.headers["content-type"] == "application/problem+json"
        at_cap = await client.get(url, params={"limit": MAX_LIMIT}, headers=headers)
        assert at_cap.status_code == 200 and at_cap.json()["next_cursor"] is None
        forged = await client.get(url, params={"cursor": "bm90IGpzb24"}, headers=headers)
        assert forged.status_code == 400
        assert forged.json()["title"] == "Invalid cursor"
