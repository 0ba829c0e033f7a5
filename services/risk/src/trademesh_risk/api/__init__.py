"""The risk service's HTTP API: one router per resource, mounted under /api/v1."""

from __future__ import annotations

from fastapi import APIRouter

from trademesh_risk.api import accounts, instruments


def api_router() -> APIRouter:
    router = APIRouter()
    router.include_router(accounts.router)
    router.include_router(instruments.router)
    return router
