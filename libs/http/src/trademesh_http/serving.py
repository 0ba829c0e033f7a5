"""How a service's HTTP app meets the network: whose X-Forwarded-For it believes, and where it
serves /metrics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from ipaddress import IPv4Network, IPv6Network
from typing import Any, Protocol

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, start_http_server
from starlette.types import Lifespan
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware


class ServingSettings(Protocol):
    """What `create_http_app(http=...)` reads (trademesh_config.HttpSettings has it)."""

    @property
    def http_host(self) -> str: ...

    @property
    def trusted_proxies(self) -> Sequence[IPv4Network | IPv6Network]: ...

    @property
    def metrics_port(self) -> int | None: ...


def trust_proxies(app: FastAPI, proxies: Sequence[IPv4Network | IPv6Network]) -> None:
    """`request.client` (and the scheme) as the trusted proxies report them: X-Forwarded-For is
    walked from the right while its hop is one of `proxies`, and the first other address is the
    client; from anyone else the header is ignored. uvicorn's own middleware, applied in the app
    so that it holds under any server and under httpx's ASGI transport alike (server.py turns
    off uvicorn's built-in copy of it, which trusts loopback)."""
    if proxies:
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=[str(p) for p in proxies])


def metrics_apart(
    lifespan: Lifespan[FastAPI] | None, registry: CollectorRegistry, host: str, port: int
) -> Lifespan[FastAPI]:
    """`lifespan` with prometheus_client's own server for `registry` on `host`:`port` around it,
    started before the service's start-up and stopped after its shutdown. The port it bound (0:
    any free one) is `app.state.metrics_port`."""

    @asynccontextmanager
    async def with_metrics(app: FastAPI) -> AsyncIterator[Any]:
        server, thread = start_http_server(port, host, registry)
        app.state.metrics_port = server.server_port
        try:
            if lifespan is None:
                yield None
            else:
                async with lifespan(app) as state:
                    yield state
        finally:
            # shutdown() waits for the serving loop to notice (up to half a second): not on
            # the event loop.
            await asyncio.to_thread(server.shutdown)
            server.server_close()
            thread.join(5)

    return with_metrics
