"""GET /api/v1/about: what this service is and its contract on the bus."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from trademesh_gateway.api.deps import RuntimeDep
from trademesh_gateway.engine import CONSUMES, PRODUCES

router = APIRouter(prefix="/about", tags=["about"])


class About(BaseModel):
    service: str
    description: str
    consumes: list[str]
    produces: list[str]
    schema_name: str | None


@router.get("", summary="The service, the topics it consumes and produces, its schema")
async def about(runtime: RuntimeDep) -> About:
    return About(
        service=runtime.settings.service_name,
        description="The only public API: authenticates callers, enforces roles, ownership and rate limits, and routes /api/v1 to the services.",
        consumes=list(CONSUMES),
        produces=list(PRODUCES),
        schema_name=runtime.db.schema if runtime.db is not None else None,
    )
