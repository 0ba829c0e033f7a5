"""The auth service's HTTP API: one router per resource, mounted under /api/v1 (the JWKS also at
/.well-known/jwks.json)."""

from __future__ import annotations

from fastapi import APIRouter

from trademesh_auth.api import admin, sessions


def api_router() -> APIRouter:
    router = APIRouter()
    router.include_router(sessions.router)
    router.include_router(admin.users)
    router.include_router(admin.keys)
    return router
