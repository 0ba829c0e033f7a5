"""GET /about: what a service is and its contract on the bus, as its manifest declares them."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from trademesh_service.manifest import ServiceManifest


class About(BaseModel):
    service: str
    description: str
    consumes: list[str]
    produces: list[str]
    schema_name: str | None


def about_router(manifest: ServiceManifest, *, service: str, schema: str | None) -> APIRouter:
    """The about route of a service: `service` and `schema` are its settings' (an environment may
    rename them), the rest its manifest's."""
    router = APIRouter(prefix="/about", tags=["about"])
    answer = About(
        service=service,
        description=manifest.description,
        consumes=list(manifest.consumes),
        produces=list(manifest.produces),
        schema_name=schema,
    )

    @router.get("", summary="The service, the topics it consumes and produces, its schema")
    async def about() -> About:
        return answer

    return router
