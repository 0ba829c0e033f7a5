"""The audit service's HTTP API: one router per resource, mounted under /api/v1."""

from __future__ import annotations

from fastapi import APIRouter

from trademesh_audit.api import audit


def api_router() -> APIRouter:
    router = APIRouter()
    router.include_router(audit.router)
    return router
