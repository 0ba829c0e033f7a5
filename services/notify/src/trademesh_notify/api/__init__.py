"""The notify service's HTTP API: one router per resource, mounted under /api/v1."""

from __future__ import annotations

from fastapi import APIRouter

from trademesh_notify.api import channels, deliveries


def api_router() -> APIRouter:
    router = APIRouter()
    router.include_router(channels.router)
    router.include_router(deliveries.router)
    return router
