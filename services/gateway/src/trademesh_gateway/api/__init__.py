"""The gateway's HTTP API: its own route (the event stream) and, from the route table, every
public route of the services behind it (`routes.serve_table`); all under /api/v1, after the
shared about route that create_app mounts first."""

from __future__ import annotations

from fastapi import APIRouter

from trademesh_gateway.api import events


def api_router() -> APIRouter:
    """The gateway's own routes; the route table's come after them (`routes.serve_table`)."""
    router = APIRouter()
    router.include_router(events.router)
    return router
