"""The strategy service's HTTP API: one router per resource, mounted under /api/v1."""

from __future__ import annotations

from fastapi import APIRouter

from trademesh_strategy.api import approvals, backtests, bots, optimizations, strategies


def api_router() -> APIRouter:
    router = APIRouter()
    router.include_router(strategies.router)
    router.include_router(bots.router)
    router.include_router(approvals.bot_router)
    router.include_router(approvals.link_router)
    router.include_router(backtests.router)
    router.include_router(optimizations.router)
    return router
