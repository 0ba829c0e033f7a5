"""GET /api/v1/activity: the sample domain's state, listed by key with keyset pagination."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel
from trademesh_http import ProblemError

from {{ cookiecutter.package }}.api.deps import StoreDep
from {{ cookiecutter.package }}.engine import Activity, Direction

router = APIRouter(prefix="/activity", tags=["activity"])


class ActivityPage(BaseModel):
    items: list[Activity]  # the engine's frozen dataclass: FastAPI serialises it as it is
    next_cursor: str | None = None


def _cursor(activity: Activity) -> str:
    raw = json.dumps([activity.key, activity.direction]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _position(cursor: str) -> tuple[str, Direction]:
    try:
        key, direction = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError, binascii.Error):
        raise ProblemError(400, "Invalid cursor", "Pass next_cursor as it was returned.") from None
    if not isinstance(key, str) or direction not in ("in", "out"):
        raise ProblemError(400, "Invalid cursor", "Pass next_cursor as it was returned.")
    return key, direction


@router.get("", summary="Activity per key and direction, in key order")
async def list_activity(
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size.")] = 100,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page.")] = None,
) -> ActivityPage:
    rows = await store.page(_position(cursor) if cursor else None, limit + 1)
    more = len(rows) > limit
    return ActivityPage(items=rows[:limit], next_cursor=_cursor(rows[limit - 1]) if more else None)


@router.get("/{key:path}", summary="Activity of one key (both directions)")
async def key_activity(key: str, store: StoreDep) -> list[Activity]:
    rows = await store.of_key(key)
    if not rows:
        raise ProblemError(404, "Unknown key", f"No activity for key {key!r}.")
    return rows
