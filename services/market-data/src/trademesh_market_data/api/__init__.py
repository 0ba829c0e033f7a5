"""The market-data service's HTTP API: one router per resource, mounted under /api/v1."""

from __future__ import annotations

from fastapi import APIRouter

from trademesh_market_data.api import feeds, history


def api_router() -> APIRouter:
    router = APIRouter()
    router.include_router(feeds.router)
    router.include_router(history.router)
    return router
