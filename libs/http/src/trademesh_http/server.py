"""Run an app with uvicorn, keeping the process's structlog JSON logging."""

from __future__ import annotations

from typing import Any

import uvicorn


def server(app: Any, host: str, port: int) -> uvicorn.Server:
    """A uvicorn server that leaves logging alone (log_config=None) and stops on SIGTERM/SIGINT.

    HTTP is parsed by httptools (C; h11, uvicorn's pure-Python fallback, cost a fifth of a small
    request's time). A service process (`serve`) runs on uvloop (libuv, where it is installed:
    not on Windows): asyncio's own loop took a third of the gateway's time per request
    (docs/decisions/0122-gateway-wire-speed.md). The loop is chosen only by `Server.run`; inside
    a running loop (`serve_async`, the tests' `server(...).serve()`) that loop stays.

    uvicorn's own X-Forwarded-For handling is off: it would believe anyone on loopback. The app
    believes the proxies its settings name (trademesh_http.serving.trust_proxies).
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
    return uvicorn.Server(config)


def serve(app: Any, host: str, port: int) -> None:
    """Serve until SIGTERM/SIGINT, then shut down gracefully (lifespan shutdown runs).

    uvicorn raises the signal again once it has shut down, so that the process ends as the
    signal says; for SIGINT (Ctrl-C reaches every process of `make run`'s group) that is a
    KeyboardInterrupt, whose traceback would end every service's JSON log after its clean
    "stopped" line. The shutdown is complete by then: the process exits with the code a shell
    gives an interrupted command (130), and no traceback."""
    try:
        server(app, host, port).run()
    except KeyboardInterrupt:
        raise SystemExit(130) from None


async def serve_async(app: Any, host: str, port: int) -> None:
    """The same inside an already-running event loop."""
    await server(app, host, port).serve()
