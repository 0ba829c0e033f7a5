"""Schemathesis against auth's own OpenAPI document, bad input included
(trademesh_testing.fuzzing): whatever shape a request takes, no 5xx, and every error a problem.
The cases call as an admin signed in for real (auth trusts its own tokens only), naming one of
their API keys and another user in paths."""

from __future__ import annotations

from uuid import uuid4

import httpx
from fastapi import FastAPI
from trademesh_testing.fuzzing import FUZZING, Target, fuzz_app

pytestmark = FUZZING

PASSWORD = "correct horse battery staple"  # pragma: allowlist secret


async def test_fuzzing_its_own_document_meets_no_server_error(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    users = app.state.runtime.users
    email = f"fuzz-admin-{uuid4().hex[:10]}@example.com"
    await users.register(email, PASSWORD, role="admin", active=True)
    other = await users.register(f"fuzz-{uuid4().hex[:10]}@example.com", PASSWORD)
    login = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    key = await client.post(
        "/api/v1/api-keys", json={"name": "fuzzed", "scopes": ["read"]}, headers=headers
    )
    assert key.status_code == 201, key.text
    target = Target(
        headers=headers, ids={"key_id": key.json()["key_id"], "user_id": str(other.user_id)}
    )
    run = await fuzz_app(app, target)
    run.assert_clean(served=8)
