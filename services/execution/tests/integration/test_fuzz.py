"""Schemathesis against execution's own OpenAPI document, bad input included
(trademesh_testing.fuzzing): whatever shape a request takes, no 5xx, and every error a problem.
The cases call as an admin holding a paper account, which they name in paths."""

from __future__ import annotations

from uuid import uuid4

import httpx
from fastapi import FastAPI
from trademesh_testing.fuzzing import FUZZING, Target, fuzz_app
from trademesh_testing.tokens import bearer

pytestmark = FUZZING


async def test_fuzzing_its_own_document_meets_no_server_error(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    headers = bearer(uuid4(), "admin")
    made = await client.post(
        "/api/v1/accounts", json={"name": "fuzzed", "cash": "10000"}, headers=headers
    )
    assert made.status_code == 201, made.text
    target = Target(
        headers=headers,
        ids={"account_id": made.json()["account_id"]},
        # deleting the account would leave the other cases nothing to reach
        spare=frozenset({"DELETE /api/v1/accounts/{account_id}"}),
    )
    run = await fuzz_app(app, target)
    run.assert_clean(served=8)
