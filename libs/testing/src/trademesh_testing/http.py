"""A running ASGI app (its lifespan started) and an HTTP client on it, for service tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from asgi_lifespan import LifespanManager


@asynccontextmanager
async def app_client(
    app: Any,
    *,
    base_url: str = "http://service",
    startup_timeout: float = 60.0,
    headers: dict[str, str] | None = None,
) -> AsyncIterator[httpx.AsyncClient]:
    """Start `app` (migrations, consumers: its whole lifespan), yield a client on it (sending
    `headers` with every request), stop it."""
    async with LifespanManager(app, startup_timeout=startup_timeout, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url=base_url, headers=headers
        ) as client:
            yield client
