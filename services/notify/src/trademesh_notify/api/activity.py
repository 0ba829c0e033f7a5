"""GET /api/v1/activity: the sample domain's state, listed by key with keyset pagination."""

from __future__ import annotations

from fastapi import APIRouter
from trademesh_http import ProblemError
from trademesh_http.pagination import Page, PageDep, decode_cursor, encode_cursor, paginate

from trademesh_notify.api.deps import StoreDep
from trademesh_notify.engine import Activity, Direction

router = APIRouter(prefix="/activity", tags=["activity"])


class ActivityPage(Page[Activity]):  # the engine's frozen dataclass: FastAPI serialises it
    pass


def _cursor(activity: Activity) -> str:
    return encode_cursor(activity.key, activity.direction)


def _position(cursor: str) -> tuple[str, Direction]:
    key, direction = decode_cursor(cursor, str, str)
    if direction == "in" or direction == "out":
        return key, direction
    raise ProblemError(400, "Invalid cursor", "Pass next_cursor as it was returned.")


@router.get("", summary="Activity per key and direction, in key order")
async def list_activity(store: StoreDep, request: PageDep) -> ActivityPage:
    after = _position(request.cursor) if request.cursor else None
    rows = await store.page(after, request.fetch)
    items, cursor = paginate(rows, request, lambda a: (a.key, a.direction))
    return ActivityPage(items=items, next_cursor=cursor)


@router.get("/{key:path}", summary="Activity of one key (both directions)")
async def key_activity(key: str, store: StoreDep) -> list[Activity]:
    rows = await store.of_key(key)
    if not rows:
        raise ProblemError(404, "Unknown key", f"No activity for key {key!r}.")
    return rows
