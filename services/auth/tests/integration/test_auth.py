"""Auth on the real Postgres and broker: registration, login, tokens every service can verify,
refresh rotation and reuse detection, logout, password changes, API keys, throttling with its
end, administration, key rotation with overlap, and the events, with no secret anywhere."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx
import jwt
import pytest
from fastapi import FastAPI
from trademesh_events.topics import AUTH_EVENTS
from trademesh_http import ProblemError
from trademesh_http.tokens import TokenVerifier
from trademesh_testing.http import app_client
from trademesh_testing.samples import decoded, read_all
from trademesh_testing.waiting import eventually

from trademesh_auth.config import Settings

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery staple"


def _email(tag: str) -> str:
    return f"{tag}-{uuid4().hex[:10]}@example.com"


async def _register(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> UUID:
    response = await client.post(
        "/api/v1/auth/register", json={"email": email, "password": password}
    )
    assert response.status_code == 201, response.text
    return UUID(response.json()["user_id"])


async def _login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> dict[str, Any]:
    response = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _admin(app: FastAPI, client: httpx.AsyncClient) -> dict[str, str]:
    email = _email("admin")
    await app.state.runtime.users.register(email, PASSWORD, role="admin", active=True)
    return _bearer((await _login(client, email))["access_token"])


async def test_register_login_and_a_token_any_service_verifies(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    email = _email("alice")
    user = await _register(client, email)
    tokens = await _login(client, email.upper())  # e-mail addresses are case-insensitive
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == settings.access_ttl_s

    header = jwt.get_unverified_header(tokens["access_token"])
    assert (header["alg"], header["typ"]) == ("EdDSA", "at+jwt") and header["kid"]
    # Another service verifies it with nothing but the JWKS.
    jwks = (await client.get("/.well-known/jwks.json")).json()
    assert [k["kid"] for k in jwks["keys"]] == [header["kid"]]
    assert all("d" not in k for k in jwks["keys"])  # public keys only
    verifier = TokenVerifier(
        issuer=settings.auth_issuer, audience=settings.auth_audience, jwks=jwks
    )
    claims = await verifier.verify(tokens["access_token"])
    assert (claims.user_id, claims.role, set(claims.scopes)) == (
        user,
        "trader",
        {"read", "trade", "account"},
    )
    assert (claims.key_id, claims.session_version) == (None, 1)
    payload = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert {"iss", "aud", "sub", "exp", "nbf", "iat", "jti", "role", "scope"} <= set(payload)
    assert payload["exp"] - payload["iat"] == settings.access_ttl_s <= 900

    me = await client.get("/api/v1/auth/me", headers=_bearer(tokens["access_token"]))
    assert me.json()["email"] == email and me.json()["user_id"] == str(user)

    # No mass assignment: a role in the body is refused, never taken.
    sneaky = await client.post(
        "/api/v1/auth/register",
        json={"email": _email("mallory"), "password": PASSWORD, "role": "admin"},
    )
    assert sneaky.status_code == 422
    # Registered once only; a weak or common password is refused.
    again = await client.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
    assert again.status_code == 409
    for weak in ("short", "password1", "x" * 129, "{email}"):
        address = _email("weak")
        refused = await client.post(
            "/api/v1/auth/register",
            json={"email": address, "password": weak.format(email=address)},
        )
        assert refused.status_code == 422, weak


async def test_refresh_rotates_and_a_reused_token_revokes_its_family(
    client: httpx.AsyncClient,
) -> None:
    email = _email("bob")
    await _register(client, email)
    first = await _login(client, email)
    second = (
        await client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    ).json()
    assert second["refresh_token"] != first["refresh_token"]
    third = (
        await client.post("/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
    ).json()
    # The first token again: stolen. Its whole family goes, the latest token included.
    reused = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert reused.status_code == 401 and reused.json()["title"] == "Refresh token reused"
    latest = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": third["refresh_token"]}
    )
    assert latest.status_code == 401
    # Another login (another family) is untouched by that, and logout ends it.
    other = await _login(client, email)
    assert (
        await client.post("/api/v1/auth/logout", json={"refresh_token": other["refresh_token"]})
    ).status_code == 204
    assert (
        await client.post("/api/v1/auth/refresh", json={"refresh_token": other["refresh_token"]})
    ).status_code == 401


async def test_throttling_grows_and_ends_and_never_locks_the_owner_out(
    make_app: Any,
) -> None:
    app = make_app(throttle_user_ip_threshold=2, throttle_user_threshold=4, throttle_user_cap_s=2)
    users = app.state.runtime.users
    async with app_client(app) as client:
        email = _email("carol")
        await _register(client, email)
        bad = {"email": email, "password": "not the password at all"}
        statuses = [
            (await client.post("/api/v1/auth/login", json=bad)).status_code for _ in range(4)
        ]
        assert statuses[:2] == [401, 401] and statuses[-1] == 429
        throttled = await client.post("/api/v1/auth/login", json=bad)
        assert throttled.status_code == 429
        assert int(throttled.headers["Retry-After"]) >= 1
        # Even the right password waits: the attempt is not even checked.
        assert (
            await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        ).status_code == 429

        # The owner, from another address, is slowed by the per-user count only, capped at
        # 2 s here: never locked out.
        async def owner_gets_in() -> str | None:
            try:
                tokens = await users.login(email, PASSWORD, "198.51.100.7")
            except ProblemError as problem:
                if problem.status != 429:  # slowed down, never anything else
                    raise
                return None
            return tokens.access_token

        assert await eventually(owner_gets_in, timeout=10)
        # The attacker's address stays throttled for this user: its own count is not cleared.
        assert (await client.post("/api/v1/auth/login", json=bad)).status_code == 429


async def test_api_keys_are_shown_once_scoped_expiring_and_revocable(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    email = _email("dave")
    await _register(client, email)
    token = (await _login(client, email))["access_token"]
    made = await client.post(
        "/api/v1/api-keys",
        json={"name": "read bot", "scopes": ["read"], "expires_in_days": 30},
        headers=_bearer(token),
    )
    assert made.status_code == 201, made.text
    key = made.json()["api_key"]
    listed = (await client.get("/api/v1/api-keys", headers=_bearer(token))).json()
    assert [k["key_id"] for k in listed] == [made.json()["key_id"]]
    assert key not in str(listed) and "api_key" not in listed[0]

    exchanged = await client.post("/api/v1/auth/token", json={"api_key": key})
    assert exchanged.status_code == 200
    scoped = jwt.decode(exchanged.json()["access_token"], options={"verify_signature": False})
    assert (scoped["scope"], scoped["key_id"]) == ("read", made.json()["key_id"])
    # A key's token manages no key, not even one of its own scope, and changes no password:
    # a leaked key cannot leave a successor behind.
    key_bearer = _bearer(exchanged.json()["access_token"])
    for scopes in (["trade"], ["read"]):
        minted = await client.post(
            "/api/v1/api-keys", json={"name": "x", "scopes": scopes}, headers=key_bearer
        )
        assert minted.status_code == 403, scopes
        assert 'scope="account"' in minted.headers["www-authenticate"]
    assert (
        await client.delete(f"/api/v1/api-keys/{made.json()['key_id']}", headers=key_bearer)
    ).status_code == 403
    assert (
        await client.post(
            "/api/v1/auth/password",
            json={"current_password": PASSWORD, "new_password": PASSWORD[::-1]},
            headers=key_bearer,
        )
    ).status_code == 403
    assert (await client.get("/api/v1/api-keys", headers=key_bearer)).status_code == 200  # a read

    assert (
        await client.delete(f"/api/v1/api-keys/{made.json()['key_id']}", headers=_bearer(token))
    ).status_code == 204
    assert (await client.post("/api/v1/auth/token", json={"api_key": key})).status_code == 401
    # The token it was exchanged for is refused at once too, not when it expires.
    assert (await client.get("/api/v1/api-keys", headers=key_bearer)).status_code == 401
    for forged in ("tmk_nothing", key[:-2] + "xx", "x" * 60):
        assert (
            await client.post("/api/v1/auth/token", json={"api_key": forged})
        ).status_code == 401

    # An expired key does not work.
    me = (await client.get("/api/v1/auth/me", headers=_bearer(token))).json()
    expired, whole = await app.state.runtime.users.create_key(
        UUID(me["user_id"]), "short", ["read"], timedelta(days=1), ("read", "account")
    )
    await app.state.runtime.db.pool.execute(
        "UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE key_id = $1",
        expired.key_id,
    )
    assert (await client.post("/api/v1/auth/token", json={"api_key": whole})).status_code == 401


async def test_admins_approve_change_roles_and_disable(make_app: Any) -> None:
    app = make_app(registration="approval")
    async with app_client(app) as client:
        admin = await _admin(app, client)
        email = _email("erin")
        user = await _register(client, email)
        pending = await client.post(
            "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
        )
        assert pending.status_code == 403 and "approval" in pending.json()["detail"]
        assert (await client.post(f"/api/v1/users/{user}/approve", headers=admin)).json()[
            "status"
        ] == "active"
        tokens = await _login(client, email)
        mine = _bearer(tokens["access_token"])
        # A trader cannot administer.
        assert (await client.get("/api/v1/users", headers=mine)).status_code == 403
        assert (
            await client.put(f"/api/v1/users/{user}/role", json={"role": "admin"}, headers=mine)
        ).status_code == 403

        viewer = await client.put(
            f"/api/v1/users/{user}/role", json={"role": "viewer"}, headers=admin
        )
        assert viewer.json()["role"] == "viewer"
        # The role change ended the user's sessions; a new login carries the new role.
        assert (
            await client.post(
                "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
            )
        ).status_code == 401
        # ... and its access tokens are refused at once, not when they expire.
        assert (await client.get("/api/v1/auth/me", headers=mine)).status_code == 401
        as_viewer = await _login(client, email)
        claims = jwt.decode(as_viewer["access_token"], options={"verify_signature": False})
        assert (claims["role"], claims["scope"]) == ("viewer", "read account")
        assert claims["session_version"] == 2
        # A viewer still manages their own account (a read key), not a trading key.
        viewer_auth = _bearer(as_viewer["access_token"])
        assert (
            await client.post(
                "/api/v1/api-keys", json={"name": "r", "scopes": ["read"]}, headers=viewer_auth
            )
        ).status_code == 201
        assert (
            await client.post(
                "/api/v1/api-keys", json={"name": "t", "scopes": ["trade"]}, headers=viewer_auth
            )
        ).status_code == 403

        assert (await client.post(f"/api/v1/users/{user}/disable", headers=admin)).json()[
            "status"
        ] == "disabled"
        assert (
            await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        ).status_code == 403
        assert (
            await client.post(
                "/api/v1/auth/refresh", json={"refresh_token": as_viewer["refresh_token"]}
            )
        ).status_code == 401
        assert (await client.get("/api/v1/auth/me", headers=viewer_auth)).status_code == 401
        # Enabled again, the user logs in anew: the old tokens stay refused.
        assert (await client.post(f"/api/v1/users/{user}/enable", headers=admin)).status_code == 200
        again = _bearer((await _login(client, email))["access_token"])
        assert (await client.get("/api/v1/auth/me", headers=again)).status_code == 200
        assert (await client.get("/api/v1/auth/me", headers=viewer_auth)).status_code == 401


async def test_signing_keys_rotate_with_overlap(client: httpx.AsyncClient, app: FastAPI) -> None:
    admin = await _admin(app, client)
    before = (await client.get("/.well-known/jwks.json")).json()["keys"]
    rotated = await client.post("/api/v1/auth/signing-keys/rotate", headers=admin)
    assert rotated.status_code == 200
    after = (await client.get("/.well-known/jwks.json")).json()["keys"]
    # The old key still verifies the tokens it signed; new tokens use the new one.
    assert {k["kid"] for k in before} < {k["kid"] for k in after}
    assert rotated.json()["kid"] in {k["kid"] for k in after}
    email = _email("frank")
    await _register(client, email)
    token = (await _login(client, email))["access_token"]
    assert jwt.get_unverified_header(token)["kid"] == rotated.json()["kid"]
    assert (await client.get("/api/v1/auth/me", headers=admin)).status_code == 200  # old kid
    assert (await client.get("/api/v1/auth/me", headers=_bearer(token))).status_code == 200


async def test_events_and_logs_carry_no_secret(
    client: httpx.AsyncClient, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    email = _email("grace")
    user = await _register(client, email)
    tokens = await _login(client, email)
    await client.post("/api/v1/auth/login", json={"email": email, "password": "wrong wrong wrong"})
    await client.post(
        "/api/v1/auth/login", json={"email": _email("nobody"), "password": "whatever it is"}
    )
    made = await client.post(
        "/api/v1/api-keys",
        json={"name": "k", "scopes": ["read", "trade"]},
        headers=_bearer(tokens["access_token"]),
    )
    key = made.json()["api_key"]

    async def mine() -> list[Any] | None:
        records = await read_all(settings.kafka_bootstrap, AUTH_EVENTS, expect=1, timeout=1)
        found = [e for e in decoded(AUTH_EVENTS, records) if e.user_id == user]
        return found if len(found) >= 4 else None

    found = await eventually(mine, timeout=20)
    types = [e.type.rsplit(".", 1)[-1] for e in found]
    assert types[:4] == ["user_registered", "user_logged_in", "login_failed", "api_key_created"]
    secrets = [PASSWORD, tokens["access_token"], tokens["refresh_token"], key, email]
    records = await read_all(settings.kafka_bootstrap, AUTH_EVENTS, expect=1, timeout=1)
    raw = b"".join(r.value for r in records).decode()
    text = caplog.text + raw
    for secret in secrets:
        assert secret not in text
    assert email.split("@")[0] not in raw  # the e-mail address is masked in every event
