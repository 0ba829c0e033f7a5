"""A running ASGI app (its lifespan started) and an HTTP client on it, for service tests; the
app served on a loopback port too, for clients that need a real server."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import uvicorn
from asgi_lifespan import LifespanManager

from trademesh_testing.waiting import eventually


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


@asynccontextmanager
async def served(app: Any) -> AsyncIterator[str]:
    """`app` (its lifespan already running) on a loopback port, served by the current loop;
    yields its base URL. Streaming needs a real server (httpx's ASGI transport hands a response
    over only once it is complete), and so does a client in another thread (schemathesis)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_config=None)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await eventually(lambda: asyncio.sleep(0, result=server.started or None), interval=0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
