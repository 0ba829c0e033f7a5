"""Characters Postgres cannot store (NUL, an unpaired UTF-16 surrogate) in auth's requests are
the client's error: a 422 problem that does not echo the value, never a 500."""

from __future__ import annotations

import json
from typing import Any
from uuid import uuid4

import httpx
import pytest

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery staple"  # pragma: allowlist secret
NUL = "nul\x00here"
#: A lone high surrogate as JSON writes it: json.dumps keeps it as the escape \ud800.
SURROGATE = "lone\ud800here"


def _json(document: object, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """The request arguments of a JSON body as any client may send it (json.dumps escapes NUL
    and a lone surrogate; httpx's own encoder cannot encode the latter)."""
    return {
        "content": json.dumps(document).encode(),
        "headers": {**(headers or {}), "Content-Type": "application/json"},
    }


def _assert_refused(response: httpx.Response, value: str) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert value not in response.text and json.dumps(value) not in response.text


async def _token(client: httpx.AsyncClient) -> dict[str, str]:
    email = f"bad-{uuid4().hex[:10]}@example.com"
    made = await client.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
    assert made.status_code == 201, made.text
    login = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


@pytest.mark.parametrize("value", [NUL, SURROGATE], ids=["nul", "surrogate"])
async def test_register_with_a_character_postgres_refuses_is_a_422_problem(
    client: httpx.AsyncClient, value: str
) -> None:
    for body in (
        {"email": f"{value}{uuid4().hex[:6]}@example.com", "password": PASSWORD},
        {"email": f"ok-{uuid4().hex[:10]}@example.com", "password": PASSWORD + value},
    ):
        _assert_refused(await client.post("/api/v1/auth/register", **_json(body)), value)


@pytest.mark.parametrize("value", [NUL, SURROGATE], ids=["nul", "surrogate"])
async def test_login_with_a_character_postgres_refuses_is_a_422_problem(
    client: httpx.AsyncClient, value: str
) -> None:
    body = {"email": f"{value}@example.com", "password": PASSWORD}
    _assert_refused(await client.post("/api/v1/auth/login", **_json(body)), value)


@pytest.mark.parametrize("value", [NUL, SURROGATE], ids=["nul", "surrogate"])
async def test_an_api_key_named_with_a_character_postgres_refuses_is_a_422_problem(
    client: httpx.AsyncClient, value: str
) -> None:
    headers = await _token(client)
    body = {"name": value, "scopes": ["read"]}
    response = await client.post("/api/v1/api-keys", **_json(body, headers))
    _assert_refused(response, value)
    listed = await client.get("/api/v1/api-keys", headers=headers)
    assert listed.json() == []
