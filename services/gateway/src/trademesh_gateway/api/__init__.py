"""The gateway's HTTP API: its own routes (about, the event stream) and, mounted from the route
table, every public route of the services behind it; all under /api/v1."""

from __future__ import annotations

from fastapi import APIRouter

from trademesh_gateway.api import about, events, routes


def api_router() -> APIRouter:
    router = APIRouter()
    router.include_router(about.router)
    router.include_router(events.router)
    router.include_router(routes.router())
    return router
