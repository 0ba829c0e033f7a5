"""POST /api/v1/events: publish one event on a topic this service produces.

Sample: it shows the write path (validate, change state and emit the event together) and gives
the integration test a way in. Replace it with the service's own commands: accepting arbitrary
events lets any caller of the internal API put them on the bus.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from pydantic import BaseModel, ValidationError
from trademesh_http import ProblemError
from trademesh_service import service_manifest

from {{ cookiecutter.package }}.api.deps import RuntimeDep
from {{ cookiecutter.package }}.engine import RejectedEvent, publishable

router = APIRouter(prefix="/events", tags=["events"])
# The topics the service declares it produces ([tool.trademesh.service] in pyproject.toml).
PRODUCES = service_manifest(__name__).produces

_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object", "required": ["type"]}}},
        "description": f"An event of a type that {', '.join(PRODUCES)} carries.",
    }
}


class Published(BaseModel):
    event_id: UUID
    type: str
    topic: str


@router.post("", status_code=202, summary="Publish an event", openapi_extra=_BODY)
async def publish_event(request: Request, runtime: RuntimeDep) -> Published:
    try:
        spec, event = publishable(await request.body(), PRODUCES)
    except RejectedEvent as exc:
        raise ProblemError(422, "Event refused", str(exc)) from None
    except ValidationError as exc:
        raise ProblemError(
            422, "Invalid event", "The event does not match its schema.", errors=_errors(exc)
        ) from None
    envelope = await runtime.activity.publish(spec, event)
    return Published(event_id=envelope.id, type=envelope.type, topic=spec.name)


def _errors(exc: ValidationError) -> list[dict[str, Any]]:
    # Where and why, never the submitted values.
    return [
        {"loc": [str(p) for p in e["loc"]], "msg": e["msg"], "type": e["type"]}
        for e in exc.errors(include_input=False, include_url=False)
    ]
