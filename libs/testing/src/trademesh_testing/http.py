"""A running ASGI app (its lifespan started) and an HTTP client on it, for service tests; the
app served on a loopback port too, for clients that need a real server; and a Receiver, a real
server on loopback that records what it is POSTed (webhooks)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from asgi_lifespan import LifespanManager
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

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


@dataclass(frozen=True)
class Received:
    """One request a Receiver got: when (time.monotonic()), its headers and its raw body."""

    at: float
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """What a loopback HTTP server was POSTed, by path (a webhook receiver's stand-in that is a
    real server); `status` is what it answers, and may be changed while it runs."""

    url: str = ""
    got: dict[str, list[Received]] = field(default_factory=dict)
    status: int = 204

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        self.got.setdefault(request.url.path, []).append(
            Received(time.monotonic(), dict(request.headers), body)
        )
        return Response(status_code=self.status)

    def count(self, path: str) -> int:
        return len(self.got.get(path, []))


@asynccontextmanager
async def receiving() -> AsyncIterator[Receiver]:
    """A Receiver served on a loopback port (`receiver.url`) until the block ends."""
    kept = Receiver()
    app = Starlette(routes=[Route("/{path:path}", kept.handle, methods=["POST"])])
    async with served(app) as url:
        kept.url = url
        yield kept
