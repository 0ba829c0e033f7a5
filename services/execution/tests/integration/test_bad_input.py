"""Characters Postgres cannot store (NUL, an unpaired UTF-16 surrogate) in execution's requests,
in a body or in a path, are the client's error: a 422 problem that does not echo the value,
never a 500."""

from __future__ import annotations

import json
from uuid import uuid4

import httpx
import pytest
from trademesh_testing.tokens import bearer

pytestmark = pytest.mark.integration

NUL = "nul\x00here"
SURROGATE = "lone\ud800here"


def _assert_refused(response: httpx.Response, value: str) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert value not in response.text and json.dumps(value) not in response.text


@pytest.mark.parametrize("value", [NUL, SURROGATE], ids=["nul", "surrogate"])
async def test_an_account_named_with_a_character_postgres_refuses_is_a_422_problem(
    client: httpx.AsyncClient, value: str
) -> None:
    headers = bearer(uuid4())
    response = await client.post(
        "/api/v1/accounts",
        content=json.dumps({"name": value, "cash": "1000"}).encode(),
        headers={**headers, "Content-Type": "application/json"},
    )
    _assert_refused(response, value)
    assert (await client.get("/api/v1/accounts", headers=headers)).json()["items"] == []


async def test_an_order_id_with_a_nul_in_the_path_is_a_422_problem(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/v1/orders/tm-1%00x", headers=bearer(uuid4()))
    _assert_refused(response, "tm-1\x00x")
