"""/api/v1/audit: search the log, verify its chain, checkpoint it, rotate its key. Admins only:
the log names every user's orders, bots and logins."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BaseModel, Field
from trademesh_events.audit import ChainCheckpointed
from trademesh_http import ProblemError
from trademesh_http.pagination import Page, PageDep, paginate

from trademesh_audit.api.deps import CallerDep, RuntimeDep, StoreDep, require
from trademesh_audit.engine import ActorKind, AuditRow, Break, BreakReason, TargetKind
from trademesh_audit.store import Search
from trademesh_audit.usecases.checkpoints import HeadMismatch

router = APIRouter(prefix="/audit", tags=["audit"])

Filter = Annotated[str | None, Query(min_length=1, max_length=200)]


class AuditEntryOut(BaseModel):
    """One row of the log; links in lowercase hex."""

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
    key_id: str | None = Field(
        description="The chain key of the row's link; null for a row of the unkeyed prefix."
    )
    prev_hash: str
    hash: str = Field(description="The row's link: HMAC-SHA256 (SHA-256 if unkeyed).")

    @classmethod
    def of(cls, row: AuditRow) -> AuditEntryOut:
        return cls(
            **{name: getattr(row, name) for name in cls.model_fields if "hash" not in name},
            prev_hash=row.prev_hash.hex(),
            hash=row.hash.hex(),
        )


class AuditPage(Page[AuditEntryOut]):
    """Newest first: `next_cursor` names the next, older, page."""


class BrokenRow(BaseModel):
    """The first place the chain does not hold, by seq, and why."""

    seq: int
    event_id: UUID | None = Field(description="The row's event; null for `head`, `checkpoint`.")
    reason: BreakReason = Field(
        description="chain: a link or sequence does not hold (a row edited, removed or "
        "inserted); key: a row's chain key is unknown, or the row is on the wrong side of "
        "keyed_from; head: rows are missing after the last one (the chain head records row "
        "`seq`, hash `expected_hash`); checkpoint: a checkpoint does not match the log, or is "
        "not signed by its keys."
    )
    detail: str
    expected_hash: str | None = Field(
        description="The link the row should have: given for an unkeyed row only (a keyed link "
        "is never given out); the head's hash for `head`; the pinned link for `checkpoint`."
    )
    stored_hash: str | None = Field(description="The link the log has there (null: no row).")

    @classmethod
    def of(cls, broken: Break) -> BrokenRow:
        return cls(
            seq=broken.seq,
            event_id=broken.event_id,
            reason=broken.reason,
            detail=broken.detail,
            expected_hash=_hex(broken.expected_hash),
            stored_hash=_hex(broken.stored_hash),
        )


def _hex(value: bytes | None) -> str | None:
    return value.hex() if value is not None else None


class VerifyOut(BaseModel):
    ok: bool
    rows: int = Field(description="Rows found intact, from the first one.")
    keyed_from: int = Field(description="The first row of the keyed chain.")
    unkeyed_rows: int = Field(
        description="Rows before keyed_from: appended before the log was keyed, with plain "
        "SHA-256 links (0 for a log keyed from the start). They are protected by the keyed "
        "rows after them, which chain from their last link."
    )
    checkpoints: int = Field(description="Checkpoints checked (those still on the topic).")
    last_checkpoint: int | None = Field(
        description="The highest row a checkpoint pins: later rows are only as safe as the "
        "database until the next checkpoint."
    )
    first_broken: BrokenRow | None


class CheckpointOut(BaseModel):
    """A checkpoint as published on audit.checkpoints.v1."""

    chain: str
    seq: int
    link: str
    key_id: str
    signature: str
    ts: datetime

    @classmethod
    def of(cls, made: ChainCheckpointed) -> CheckpointOut:
        return cls(**made.model_dump(exclude={"type"}))


class ChainKeyOut(BaseModel):
    key_id: str = Field(description="The new chain key's id (the key itself never leaves).")


@router.get("", summary="Search the audit log, newest first (admin)")
async def search(
    caller: CallerDep,
    store: StoreDep,
    request: PageDep,
    actor: Filter = None,
    action: Filter = None,
    target: Filter = None,
    since: Annotated[
        AwareDatetime | None, Query(description="Events that occurred at or after this time.")
    ] = None,
    until: Annotated[
        AwareDatetime | None, Query(description="Events that occurred before this time.")
    ] = None,
) -> AuditPage:
    require(caller, "admin")
    if since is not None and until is not None and since >= until:
        raise ProblemError(400, "Empty time range", "`since` must be before `until`.")
    after = request.after(int)
    query = Search(
        actor=actor,
        action=action,
        target=target,
        since=since,
        until=until,
        before_seq=after[0] if after else None,
        limit=request.fetch,  # one more than asked: whether there is a next page
    )
    rows = await store.search(query)
    items, cursor = paginate(rows, request, lambda row: (row.seq,))
    return AuditPage(items=[AuditEntryOut.of(row) for row in items], next_cursor=cursor)


@router.get(
    "/verify",
    summary="Walk the whole keyed chain, check it against its checkpoints, report the first "
    "break (admin)",
)
async def verify(caller: CallerDep, runtime: RuntimeDep) -> VerifyOut:
    require(caller, "admin")
    await runtime.keys.load()  # another replica may have rotated the key
    checkpoints = runtime.book.snapshot()  # before the walk reads the head: see store.verify
    result = await runtime.store.verify(checkpoints)
    return VerifyOut(
        ok=result.ok,
        rows=result.rows,
        keyed_from=result.keyed_from,
        unkeyed_rows=result.keyed_from - 1,
        checkpoints=result.checkpoints,
        last_checkpoint=result.last_checkpoint,
        first_broken=BrokenRow.of(result.first_broken) if result.first_broken else None,
    )


@router.post(
    "/checkpoints",
    status_code=201,
    summary="Checkpoint the chain head now, on audit.checkpoints.v1 (admin)",
)
async def checkpoint(caller: CallerDep, runtime: RuntimeDep) -> CheckpointOut:
    require(caller, "admin")
    try:
        made = await runtime.checkpointer.checkpoint()
    except HeadMismatch as mismatch:
        raise ProblemError(
            409,
            "The chain head does not match the log",
            f"{mismatch}: run verify; nothing was checkpointed.",
            type="/problems/audit-head-mismatch",
        ) from None
    if made is None:
        raise ProblemError(
            409,
            "Nothing to checkpoint",
            "The audit log has no row yet.",
            type="/problems/audit-empty",
        )
    return CheckpointOut.of(made)


@router.post(
    "/keys/rotate",
    status_code=201,
    summary="Make a new chain key for new rows; the old ones keep verifying (admin)",
)
async def rotate_key(caller: CallerDep, runtime: RuntimeDep) -> ChainKeyOut:
    require(caller, "admin")
    return ChainKeyOut(key_id=await runtime.keys.rotate())
