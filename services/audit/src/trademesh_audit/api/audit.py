"""/api/v1/audit: search the log and verify its chain. Admins only: the log names every user's
orders, bots and logins."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BaseModel, Field
from trademesh_http import ProblemError

from trademesh_audit.api.deps import CallerDep, StoreDep, require
from trademesh_audit.engine import ActorKind, AuditRow, Break, TargetKind
from trademesh_audit.store import Search

router = APIRouter(prefix="/audit", tags=["audit"])

MAX_LIMIT = 500

Filter = Annotated[str | None, Query(min_length=1, max_length=200)]


class AuditEntryOut(BaseModel):
    """One row of the log; hashes in lowercase hex."""

    seq: int
    event_id: UUID
    topic: str
    action: str = Field(description="The event type, e.g. trademesh.order.intent.")
    actor_kind: ActorKind
    actor: str = Field(description="A user id, or the publishing service's name.")
    target_kind: TargetKind | None
    target: str | None
    occurred_at: datetime = Field(description="The event's time (its envelope's ce_time).")
    recorded_at: datetime = Field(description="When the log appended it.")
    trace_id: str | None
    event: dict[str, Any]
    prev_hash: str
    hash: str

    @classmethod
    def of(cls, row: AuditRow) -> AuditEntryOut:
        return cls(
            **{name: getattr(row, name) for name in cls.model_fields if "hash" not in name},
            prev_hash=row.prev_hash.hex(),
            hash=row.hash.hex(),
        )


class AuditPage(BaseModel):
    items: list[AuditEntryOut]
    next_cursor: int | None = Field(
        None, description="Pass as `cursor` for the next (older) page; null on the last page."
    )


class BrokenRow(BaseModel):
    """The first row whose hash or link does not hold. `event_id` is null (and `stored_hash` the
    last row's hash, null with no row left) when rows are missing after the last one: the chain
    head records row `seq` with hash `expected_hash`."""

    seq: int
    event_id: UUID | None
    expected_hash: str
    stored_hash: str | None

    @classmethod
    def of(cls, broken: Break) -> BrokenRow:
        return cls(
            seq=broken.seq,
            event_id=broken.event_id,
            expected_hash=broken.expected_hash.hex(),
            stored_hash=broken.stored_hash.hex() if broken.stored_hash is not None else None,
        )


class VerifyOut(BaseModel):
    ok: bool
    rows: int = Field(description="Rows found intact, from the first one.")
    first_broken: BrokenRow | None


@router.get("", summary="Search the audit log, newest first (admin)")
async def search(
    caller: CallerDep,
    store: StoreDep,
    actor: Filter = None,
    action: Filter = None,
    target: Filter = None,
    since: Annotated[
        AwareDatetime | None, Query(description="Events that occurred at or after this time.")
    ] = None,
    until: Annotated[
        AwareDatetime | None, Query(description="Events that occurred before this time.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size.")] = 100,
    cursor: Annotated[
        int | None, Query(ge=1, description="next_cursor of the previous page.")
    ] = None,
) -> AuditPage:
    require(caller, "admin")
    if since is not None and until is not None and since >= until:
        raise ProblemError(400, "Empty time range", "`since` must be before `until`.")
    query = Search(
        actor=actor,
        action=action,
        target=target,
        since=since,
        until=until,
        before_seq=cursor,
        limit=limit + 1,  # one more than asked: whether there is a next page
    )
    rows = await store.search(query)
    more = len(rows) > limit
    return AuditPage(
        items=[AuditEntryOut.of(row) for row in rows[:limit]],
        next_cursor=rows[limit - 1].seq if more else None,
    )


@router.get("/verify", summary="Walk the whole hash chain and report the first break (admin)")
async def verify(caller: CallerDep, store: StoreDep) -> VerifyOut:
    require(caller, "admin")
    result = await store.verify()
    return VerifyOut(
        ok=result.ok,
        rows=result.rows,
        first_broken=BrokenRow.of(result.first_broken) if result.first_broken else None,
    )
