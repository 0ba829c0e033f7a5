"""GET /api/v1/about: what this service is and its contract on the bus."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel
from trademesh_service import service_manifest

from trademesh_strategy.api.deps import RuntimeDep

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
        description="Strategies, bots and backtests: runs strategy code on bars and emits order intents.",
        consumes=list(service_manifest(__name__).consumes),
        produces=list(service_manifest(__name__).produces),
        schema_name=runtime.db.schema if runtime.db is not None else None,
    )
