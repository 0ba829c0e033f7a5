"""The execution service's HTTP API: one router per resource, mounted under /api/v1."""

from __future__ import annotations

from fastapi import APIRouter

from trademesh_execution.api import accounts, keystore, orders


def api_router() -> APIRouter:
    router = APIRouter()
    router.include_router(accounts.router)
    router.include_router(orders.router)
    router.include_router(keystore.router)
    return router
