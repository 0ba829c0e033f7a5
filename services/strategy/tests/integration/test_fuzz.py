"""Schemathesis against strategy's own OpenAPI document, bad input included
(trademesh_testing.fuzzing): whatever shape a request takes, no 5xx, and every error a problem.
The cases call as a trader holding an account, which their bot bodies name."""

from __future__ import annotations

from uuid import uuid4

import httpx
from fastapi import FastAPI
from trademesh_testing.accounts import AccountBook
from trademesh_testing.fuzzing import FUZZING, Target, fuzz_app
from trademesh_testing.tokens import bearer

pytestmark = FUZZING


async def test_fuzzing_its_own_document_meets_no_server_error(
    app: FastAPI, client: httpx.AsyncClient, account_book: AccountBook
) -> None:
    user = uuid4()
    account = account_book.open(user)
    target = Target(
        headers=bearer(user, "trader"), ids={"name": "sma_cross"}, body={"account_id": str(account)}
    )
    run = await fuzz_app(app, target)
    run.assert_clean(served=6)
