"""Run an app with uvicorn, keeping the process's structlog JSON logging."""

from __future__ import annotations

import gc
import socket
from typing import Any

import uvicorn


class _ServiceServer(uvicorn.Server):
    """A server for a process of its own: once started, what startup made is frozen out of the
    garbage collector's full collections.

    A service's process holds some hundred thousand long-lived objects once started (modules,
    the app and its routes, pydantic schemas, the OpenAPI document), and every full (generation
    2) collection walked them all: 60-110 ms each, a few times a minute under load, and every
    request in flight waited (the gateway's p99 at 500 requests/s; decision 0122).
    `gc.freeze()` moves them to the permanent generation, which collections skip; garbage made
    later is collected as before.
    """

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        gc.collect()
        gc.freeze()


def server(app: Any, host: str, port: int, *, process: bool = False) -> uvicorn.Server:
    """A uvicorn server that leaves logging alone (log_config=None) and stops on SIGTERM/SIGINT.

    HTTP is parsed by httptools (C; h11, uvicorn's pure-Python fallback, cost a fifth of a small
    request's time). A service process (`serve`) runs on uvloop (libuv, where it is installed:
    not on Windows): it cut the CPU the gateway and execution spend per request by 12-16 %
    (docs/decisions/0122-gateway-wire-speed.md). The loop is chosen only by `Server.run`; inside
    a running loop (`serve_async`, the tests' `server(...).serve()`) that loop stays.

    uvicorn's own X-Forwarded-For handling is off: it would believe anyone on loopback. The app
    believes the proxies its settings name (trademesh_http.serving.trust_proxies).

    `process`: the server is the process's own (`serve`): what startup made is then frozen out
    of full garbage collections (_ServiceServer); never in a test's process.
    """
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        http="httptools",
        loop="auto",  # uvloop where it is installed, else asyncio's own
        proxy_headers=False,
    )
    return _ServiceServer(config) if process else uvicorn.Server(config)


def serve(app: Any, host: str, port: int) -> None:
    """Serve until SIGTERM/SIGINT, then shut down gracefully (lifespan shutdown runs).

    uvicorn raises the signal again once it has shut down, so that the process ends as the
    signal says; for SIGINT (Ctrl-C reaches every process of `make run`'s group) that is a
    KeyboardInterrupt, whose traceback would end every service's JSON log after its clean
    "stopped" line. The shutdown is complete by then: the process exits with the code a shell
    gives an interrupted command (130), and no traceback."""
    try:
        server(app, host, port, process=True).run()
    except KeyboardInterrupt:
        raise SystemExit(130) from None


async def serve_async(app: Any, host: str, port: int) -> None:
    """The same inside an already-running event loop."""
    await server(app, host, port).serve()
