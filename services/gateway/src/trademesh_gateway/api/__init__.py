"""The gateway's HTTP API: its own routes (about, the event stream) and, from the route table,
every public route of the services behind it; all under /api/v1."""

from __future__ import annotations

from fastapi import FastAPI

from trademesh_gateway.api import about, events, routes

PREFIX = "/api/v1"


def include_api(app: FastAPI) -> None:
    """The gateway's own routes first, then the catch-all that serves the route table, then the
    table's documented routes (never reached: the catch-all serves them)."""
    app.include_router(about.router, prefix=PREFIX)
    app.include_router(events.router, prefix=PREFIX)
    app.router.routes.append(routes.catch_all(PREFIX))
    app.include_router(routes.documented(), prefix=PREFIX)
