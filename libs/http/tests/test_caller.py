"""The caller of a request: its verified bearer token, over the app (401/403 problems)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import httpx
import pytest
from fastapi import FastAPI
from trademesh_http import TokenVerifier, create_http_app
from trademesh_http.caller import AdminDep, CallerDep, CallerIdDep
from trademesh_testing.tokens import TokenSigner

from .conftest import make_client

pytestmark = pytest.mark.unit

PROBLEM_JSON = "application/problem+json"


@pytest.fixture(scope="module")
def signer() -> TokenSigner:
    return TokenSigner(kid="caller-k1")


def _app(service: str, tokens: TokenVerifier | None) -> FastAPI:
    app = create_http_app(service=service, tokens=tokens)

    @app.get("/me")
    async def me(caller: CallerDep) -> dict[str, Any]:
        return {
            "user_id": str(caller.user_id),
            "role": caller.role,
            "scopes": sorted(caller.scopes),
            "token_id": caller.token_id,
            "forwards": caller.auth_headers()["Authorization"].removeprefix("Bearer "),
            "repr": repr(caller),
        }

    @app.post("/orders")
    async def place(user: CallerIdDep) -> dict[str, str]:
        return {"user_id": str(user)}

    @app.delete("/orders/{order_id}")
    async def cancel(order_id: int, user: CallerIdDep) -> dict[str, str]:
        return {"user_id": str(user)}

    @app.get("/admin/report")
    async def report(admin: AdminDep) -> dict[str, str]:
        return {"admin": str(admin)}

    @app.post("/admin/kill")
    async def kill(admin: AdminDep) -> dict[str, str]:
        return {"admin": str(admin)}

    @app.get("/public")
    async def public() -> dict[str, str]:
        return {"ok": "yes"}

    return app


@pytest.fixture
async def client(service: str, signer: TokenSigner) -> AsyncIterator[httpx.AsyncClient]:
    verifier = TokenVerifier(
        issuer=signer.issuer, audience=signer.audience, jwks=signer.jwks_json()
    )
    async with make_client(_app(service, verifier)) as client:
        yield client


async def test_a_valid_token_names_the_caller(
    client: httpx.AsyncClient, signer: TokenSigner
) -> None:
    user = uuid4()
    token = signer.mint(user, "trader", ["read", "trade"], jti="t-1")
    response = await client.get("/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    body = response.json()
    assert (body["user_id"], body["role"], body["scopes"]) == (
        str(user),
        "trader",
        ["read", "trade"],
    )
    assert body["token_id"] == "t-1"
    assert body["forwards"] == token  # what a service forwards on the caller's behalf
    assert token not in body["repr"]
    assert (await client.post("/orders", headers=signer.bearer(user))).json() == {
        "user_id": str(user)
    }


async def test_no_token_is_a_401_with_www_authenticate(client: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Basic dXNlcjpwdw=="}, {"Authorization": "Bearer"}):
        response = await client.get("/me", headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"] == PROBLEM_JSON
        assert response.headers["www-authenticate"].startswith("Bearer")
    # The old stand-in headers name nobody now.
    stand_in = {"X-User-Id": str(uuid4()), "X-User-Role": "admin"}
    assert (await client.post("/admin/kill", headers=stand_in)).status_code == 401
    assert (await client.get("/public")).status_code == 200


async def test_an_invalid_token_is_a_401_problem_without_the_token(
    client: httpx.AsyncClient, signer: TokenSigner, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bad = [
        signer.mint(uuid4(), lifetime_s=-300),
        signer.mint(uuid4(), aud="elsewhere"),
        TokenSigner(kid=signer.kid).mint(uuid4()),
    ]
    for token in bad:
        response = await client.get("/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
        assert response.headers["content-type"] == PROBLEM_JSON
        assert response.json()["type"] == "/problems/invalid-token"
        assert token.split(".")[1] not in response.text
    logged = caplog.text + " ".join(repr(r.__dict__) for r in caplog.records)
    for token in bad:
        assert all(part not in logged for part in token.split("."))


@pytest.mark.parametrize(
    ("role", "scopes"),
    [
        ("viewer", None),
        ("viewer", "read trade"),
        ("trader", "read"),
        ("admin", "read"),
        ("trader", ""),
    ],
)
async def test_a_caller_who_cannot_trade_reads_but_does_not_write(
    client: httpx.AsyncClient, signer: TokenSigner, role: str, scopes: str | None
) -> None:
    user = uuid4()
    assert (await client.get("/me", headers=signer.bearer(user, role, scopes))).status_code == 200
    for method, path in (("POST", "/orders"), ("DELETE", "/orders/1")):
        response = await client.request(method, path, headers=signer.bearer(user, role, scopes))
        assert response.status_code == 403
        assert response.headers["content-type"] == PROBLEM_JSON
        assert response.json()["type"] == "/problems/forbidden"


async def test_admin_routes_need_the_admin_role(
    client: httpx.AsyncClient, signer: TokenSigner
) -> None:
    admin, trader = uuid4(), uuid4()
    assert (await client.get("/admin/report", headers=signer.bearer(admin, "admin"))).json() == {
        "admin": str(admin)
    }
    assert (
        await client.post("/admin/kill", headers=signer.bearer(admin, "admin"))
    ).status_code == 200
    for headers in (signer.bearer(trader, "trader"), signer.bearer(trader, "viewer")):
        assert (await client.get("/admin/report", headers=headers)).status_code == 403
        assert (await client.post("/admin/kill", headers=headers)).status_code == 403
    read_only_admin = signer.bearer(admin, "admin", "read")
    assert (await client.get("/admin/report", headers=read_only_admin)).status_code == 200
    assert (await client.post("/admin/kill", headers=read_only_admin)).status_code == 403


async def test_an_app_without_a_verifier_refuses_every_caller(
    service: str, signer: TokenSigner
) -> None:
    async with make_client(_app(service, None)) as client:
        for role in ("admin", "trader", "viewer"):
            response = await client.get("/me", headers=signer.bearer(uuid4(), role))
            assert response.status_code == 401
            assert response.headers["content-type"] == PROBLEM_JSON
        assert (await client.post("/orders", headers=signer.bearer(uuid4()))).status_code == 401
        assert (await client.get("/public")).status_code == 200


async def test_the_openapi_document_declares_bearer_auth(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    scheme = schema["components"]["securitySchemes"]["accessToken"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
