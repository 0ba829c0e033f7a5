"""Schemathesis against the notify service's own OpenAPI document, bad input
included (trademesh_testing.fuzzing): whatever shape a request takes, no 5xx, and every error a
problem."""

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
    run = await fuzz_app(app, Target(headers=bearer(uuid4(), "trader")))
    run.assert_clean(served=3)
