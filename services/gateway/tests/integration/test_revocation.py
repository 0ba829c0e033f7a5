"""Revocation takes effect at once, and API key scopes cover key management: through the gateway
with the real services behind it, and through a second gateway replica that hears of a
revocation only from auth's event on the bus (as every replica in production does)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from trademesh_testing.http import app_client

from trademesh_gateway.app import create_app

pytestmark = pytest.mark.integration

#: How soon every replica must refuse what auth revoked.
AT_ONCE_S = 1.0
PASSWORD = "correct horse battery staple"  # pragma: allowlist secret
NEW_PASSWORD = "a brand new passphrase"  # pragma: allowlist secret


@asynccontextmanager
async def replica(platform: Any) -> AsyncIterator[httpx.AsyncClient]:
    """Another gateway in front of the same services: it shares no state with the first."""
    apps: dict[str, FastAPI] = platform.apps
    transports = {service: httpx.ASGITransport(app=app) for service, app in apps.items()}
    second = create_app(
        platform.settings.model_copy(update={"consumer_group": f"replica-{uuid.uuid4().hex[:8]}"}),
        transports=transports,  # type: ignore[arg-type]
    )
    async with app_client(second) as client:
        yield client


async def _key(gateway: httpx.AsyncClient, headers: dict[str, str], *scopes: str) -> dict[str, Any]:
    made = await gateway.post(
        "/api/v1/api-keys", json={"name": "k", "scopes": list(scopes)}, headers=headers
    )
    assert made.status_code == 201, made.text
    body: dict[str, Any] = made.json()
    return body


async def _refused_within(
    client: httpx.AsyncClient, headers: dict[str, str], since: float
) -> float:
    """Seconds from `since` until `client` answers 401 to a read with `headers` (polling every
    20 ms); fails the test when that takes longer than AT_ONCE_S."""
    while True:
        status = (await client.get("/api/v1/accounts", headers=headers)).status_code
        elapsed = time.monotonic() - since
        if status == 401:
            return elapsed
        assert status == 200, status
        assert elapsed < AT_ONCE_S, f"still accepted {elapsed:.2f} s after the revocation"
        await asyncio.sleep(0.02)


async def _admin(platform: Any) -> dict[str, str]:
    email = f"admin-{uuid.uuid4().hex[:8]}@example.com"
    await platform.apps["auth"].state.runtime.users.register(
        email, PASSWORD, role="admin", active=True
    )
    login = await platform.gateway.post(
        "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
    )
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


async def test_a_revoked_api_key_is_refused_at_once_by_every_gateway(platform: Any) -> None:
    gateway = platform.gateway
    _user, headers = await platform.register()
    key = await _key(gateway, headers, "read", "trade")
    with_key = {"X-API-Key": key["api_key"]}
    async with replica(platform) as other:
        # Both gateways have exchanged the key and cache its access token.
        for client in (gateway, other):
            assert (await client.get("/api/v1/accounts", headers=with_key)).status_code == 200
        revoked = await gateway.delete(f"/api/v1/api-keys/{key['key_id']}", headers=headers)
        assert revoked.status_code == 204
        since = time.monotonic()
        # The gateway that passed the revocation on refuses the key with its very next request.
        assert (await gateway.get("/api/v1/accounts", headers=with_key)).status_code == 401
        opened = await gateway.post(
            "/api/v1/accounts", json={"name": "x", "cash": "1"}, headers=with_key
        )
        assert opened.status_code == 401
        # The other replica hears it from auth's event.
        elapsed = await _refused_within(other, with_key, since)
        print(f"the other replica refused the key after {elapsed * 1000:.0f} ms")
        # And neither accepts the key's access token itself, at any service behind them.
        token = await other.post("/api/v1/auth/token", json={"api_key": key["api_key"]})
        assert token.status_code == 401


async def test_a_disabled_users_keys_and_sessions_are_refused_at_once(platform: Any) -> None:
    gateway = platform.gateway
    admin = await _admin(platform)
    user, session = await platform.register()
    key = await _key(gateway, session, "read")
    with_key = {"X-API-Key": key["api_key"]}
    async with replica(platform) as other:
        for client in (gateway, other):
            for headers in (with_key, session):
                assert (await client.get("/api/v1/accounts", headers=headers)).status_code == 200
        disabled = await gateway.post(f"/api/v1/users/{user}/disable", headers=admin)
        assert disabled.status_code == 200, disabled.text
        since = time.monotonic()
        for client in (gateway, other):
            for headers in (with_key, session):
                elapsed = await _refused_within(client, headers, since)
                print(f"refused after {elapsed * 1000:.0f} ms")
        # The services behind refuse the session's token too, not only the gateways.
        execution = httpx.ASGITransport(app=platform.apps["execution"])
        async with httpx.AsyncClient(transport=execution, base_url="http://execution") as direct:
            await _refused_within(direct, session, since)


async def test_a_role_change_ends_sessions_but_a_key_goes_on_with_the_new_role(
    platform: Any,
) -> None:
    gateway = platform.gateway
    admin = await _admin(platform)
    user, session = await platform.register()
    key = await _key(gateway, session, "read", "trade")
    with_key = {"X-API-Key": key["api_key"]}
    opened = await gateway.post(
        "/api/v1/accounts", json={"name": "x", "cash": "1"}, headers=with_key
    )
    assert opened.status_code == 201, opened.text
    demoted = await gateway.put(
        f"/api/v1/users/{user}/role", json={"role": "viewer"}, headers=admin
    )
    assert demoted.status_code == 200, demoted.text
    # The trader's session is over at once ...
    await _refused_within(gateway, session, time.monotonic())
    # ... while the key still reads, now as a viewer's key: it trades no more.
    got = await gateway.get("/api/v1/accounts", headers=with_key)
    assert got.status_code == 200, got.text
    refused = await gateway.post(
        "/api/v1/accounts", json={"name": "y", "cash": "1"}, headers=with_key
    )
    assert refused.status_code == 403


async def test_a_key_can_neither_mint_nor_revoke_keys(platform: Any) -> None:
    gateway = platform.gateway
    _user, session = await platform.register()
    read_key = await _key(gateway, session, "read")
    trade_key = await _key(gateway, session, "read", "trade")
    for leaked in (read_key, trade_key):
        with_key = {"X-API-Key": leaked["api_key"]}
        for scopes in (["read"], ["read", "trade"]):
            minted = await gateway.post(
                "/api/v1/api-keys", json={"name": "heir", "scopes": scopes}, headers=with_key
            )
            assert minted.status_code == 403, minted.text
            assert 'scope="account"' in minted.headers["WWW-Authenticate"]
        for victim in (read_key, trade_key):
            revoke = await gateway.delete(f"/api/v1/api-keys/{victim['key_id']}", headers=with_key)
            assert revoke.status_code == 403
        password = await gateway.post(
            "/api/v1/auth/password",
            json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
            headers=with_key,
        )
        assert password.status_code == 403
        # Reading is what a read key is for: its own keys too.
        assert (await gateway.get("/api/v1/api-keys", headers=with_key)).status_code == 200
    # A read key changes nothing anywhere else either.
    read_only = {"X-API-Key": read_key["api_key"]}
    for method, path, body in (
        ("POST", "/api/v1/accounts", {"name": "x", "cash": "1"}),
        ("POST", "/api/v1/bots", {}),
        ("POST", "/api/v1/orders", {}),
        ("POST", "/api/v1/backtests", {}),
    ):
        answer = await gateway.request(method, path, json=body, headers=read_only)
        assert answer.status_code == 403, (path, answer.text)
    # Keys are the password session's to make and revoke.
    revoked = await gateway.delete(f"/api/v1/api-keys/{read_key['key_id']}", headers=session)
    assert revoked.status_code == 204


async def test_a_password_change_ends_every_session_at_once(platform: Any) -> None:
    gateway = platform.gateway
    _user, session = await platform.register()
    me = (await gateway.get("/api/v1/auth/me", headers=session)).json()
    changed = await gateway.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=session,
    )
    assert changed.status_code == 204, changed.text
    assert (await gateway.get("/api/v1/auth/me", headers=session)).status_code == 401
    login = await gateway.post(
        "/api/v1/auth/login", json={"email": me["email"], "password": NEW_PASSWORD}
    )
    assert login.status_code == 200
