"""The client's address across a real forwarding hop: clients on addresses of their own, the
gateway served by uvicorn, auth served by uvicorn behind it, as deployed (auth trusts the
gateway's network, not loopback). One client's failed logins throttle that client only, and a
client that writes its own X-Forwarded-For cannot put its failures on someone else."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from trademesh_http.server import server
from trademesh_keystore import new_master_key

from trademesh_gateway.app import create_app
from trademesh_gateway.config import Settings

pytestmark = pytest.mark.integration

# Linux routes all of 127.0.0.0/8 to the loopback interface: a socket may bind any of them.
MALLORY = "127.0.0.2"
BOB = "127.0.0.3"
GATEWAY_OUT = "127.0.0.5"  # the gateway's source address towards auth: its "pod network" below
GATEWAY_NETWORK = "127.0.0.4/30"  # what auth trusts (in a cluster: the pod CIDR)
INGRESS = "127.0.0.10"  # what the gateway trusts (in a cluster: the ingress controller)
PASSWORD = "correct horse battery staple"  # pragma: allowlist secret
WRONG = "not the password at all"  # pragma: allowlist secret


@asynccontextmanager
async def _serving(app: FastAPI) -> AsyncIterator[str]:
    """`app` behind the server every service runs (trademesh_http.server: lifespan and all), on
    a free loopback port; its URL."""
    running = server(app, "127.0.0.1", 0)
    task = asyncio.create_task(running.serve())
    try:
        async with asyncio.timeout(90):
            while not running.started:
                assert not task.done(), "the server stopped before it started"
                await asyncio.sleep(0.05)
        port = running.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        running.should_exit = True
        await task


def _client(url: str, source: str, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
    """A client whose connections come from `source`."""
    transport = httpx.AsyncHTTPTransport(local_address=source)
    return httpx.AsyncClient(base_url=url, transport=transport, headers=headers, timeout=30)


async def _login(http: httpx.AsyncClient, email: str, password: str) -> int:
    answer = await http.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert answer.status_code in (200, 401, 429), answer.text
    return answer.status_code


@pytest.fixture
async def platform(
    service_settings: Callable[..., Any],
    platform_topics: list[str],
    database_url: str,
    schemas_dropper: Callable[[str, list[str]], Any],
) -> AsyncIterator[str]:
    """auth and the gateway, each served by uvicorn; the gateway's URL."""
    from trademesh_auth.app import create_app as auth_app
    from trademesh_auth.config import Settings as AuthSettings

    schema = f"ca_{uuid.uuid4().hex[:10]}"
    auth_settings = service_settings(
        AuthSettings,
        http_port=0,
        consumer_group=f"test-{uuid.uuid4().hex[:10]}",
        database_schema=schema,
        registration="open",
        keystore_keys=SecretStr(json.dumps({"t1": new_master_key().get_secret_value()})),
        keystore_current_key="t1",
        trusted_proxies=GATEWAY_NETWORK,
        throttle_ip_threshold=2,  # a third failure from one address waits
    )
    # A clock that stands still: a throttled address stays throttled however slow the machine.
    now = datetime.now(UTC)
    try:
        async with AsyncExitStack() as stack:
            auth_url = await stack.enter_async_context(
                _serving(auth_app(auth_settings, clock=lambda: now))
            )
            settings = service_settings(
                Settings,
                http_port=0,
                metrics_port=0,
                consumer_group=f"test-{uuid.uuid4().hex[:10]}",
                auth_url=auth_url,
                auth_jwks=None,
                auth_jwks_url=f"{auth_url}/.well-known/jwks.json",
                trusted_proxies=f"{INGRESS}/32",
            )
            # The gateway's calls to auth leave from its own address, as from a pod.
            to_auth = httpx.AsyncHTTPTransport(local_address=GATEWAY_OUT)
            gateway = create_app(settings, transports={"auth": to_auth})
            yield await stack.enter_async_context(_serving(gateway))
    finally:
        await schemas_dropper(database_url, [schema])


async def test_one_clients_failed_logins_throttle_that_client_only(platform: str) -> None:
    bob_email = f"bob-{uuid.uuid4().hex[:8]}@example.com"
    async with (
        _client(platform, MALLORY) as mallory,
        _client(platform, BOB) as bob,
        _client(platform, INGRESS) as ingress,
    ):
        made = await bob.post(
            "/api/v1/auth/register", json={"email": bob_email, "password": PASSWORD}
        )
        assert made.status_code == 201, made.text

        # Mallory guesses until her address is throttled, naming Bob's address as her own.
        forged = {"X-Forwarded-For": BOB}
        statuses = []
        for _ in range(3):
            guess = {"email": f"x{uuid.uuid4().hex[:8]}@example.com", "password": WRONG}
            answer = await mallory.post("/api/v1/auth/login", json=guess, headers=forged)
            statuses.append(answer.status_code)
        assert statuses == [401, 401, 429]

        # Bob, on his own address, is not slowed by any of it.
        assert await _login(bob, bob_email, PASSWORD) == 200
        # Her failures stayed hers: without the header she is still throttled, even with
        # Bob's right password.
        assert await _login(mallory, bob_email, PASSWORD) == 429

        # The gateway believes its ingress, and auth believes the gateway: a request the
        # ingress forwards for Mallory is Mallory's, one it forwards for Bob is Bob's.
        assert await _login_via(ingress, MALLORY, bob_email) == 429
        assert await _login_via(ingress, BOB, bob_email) == 200


async def _login_via(ingress: httpx.AsyncClient, client: str, email: str) -> int:
    answer = await ingress.post(
        "/api/v1/auth/login",
        json={"email": email, "password": PASSWORD},
        headers={"X-Forwarded-For": client},
    )
    return answer.status_code
