"""Approvals of approval-mode bots' orders: the owner's routes under /api/v1/bots/{id}/approvals,
and the signed one-time links under /api/v1/approvals (no login: the signature is the authority).

A link's GET never decides (chat apps fetch links to preview them): it answers a page with a
button, whose POST decides. See docs/decisions/0132-approve-before-trade.md.
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse
from pydantic import BaseModel
from trademesh_events.ids import BotId
from trademesh_events.money import Amount
from trademesh_http import ProblemError
from trademesh_http.approval_links import verify
from trademesh_http.pagination import Page, PageDep, paginate

from trademesh_strategy.api.bots import own_bot
from trademesh_strategy.api.deps import CallerDep, RuntimeDep
from trademesh_strategy.approvals import ApprovalRecord, ApprovalStatus, Channel
from trademesh_strategy.usecases.approvals import (
    ApprovalClosed,
    OwnerDecision,
    UnknownApproval,
)

bot_router = APIRouter(prefix="/bots", tags=["approvals"])
link_router = APIRouter(prefix="/approvals", tags=["approvals"])


class IntentOut(BaseModel):
    client_order_id: str
    instrument_id: str
    side: str
    order_type: str
    quantity: Amount
    limit_price: Amount | None
    stop_price: Amount | None


class ApprovalOut(BaseModel):
    approval_id: UUID
    bot_id: UUID
    status: ApprovalStatus
    intent: IntentOut
    created_at: datetime
    expires_at: datetime
    decided_by: UUID | None
    decided_at: datetime | None
    channel: Channel | None


class ApprovalPage(Page[ApprovalOut]):
    pass


def _out(record: ApprovalRecord) -> ApprovalOut:
    intent = record.intent
    return ApprovalOut(
        approval_id=record.approval_id,
        bot_id=record.bot_id,
        status=record.status,
        intent=IntentOut(
            client_order_id=intent.client_order_id,
            instrument_id=intent.instrument_id,
            side=intent.side,
            order_type=intent.order_type.value,
            quantity=intent.quantity,
            limit_price=intent.limit_price,
            stop_price=intent.stop_price,
        ),
        created_at=record.created_at,
        expires_at=record.expires_at,
        decided_by=record.decided_by,
        decided_at=record.decided_at,
        channel=record.channel,
    )


def _unknown(approval_id: UUID) -> ProblemError:
    return ProblemError(404, "Unknown approval", f"No approval {approval_id}.")


def _closed(exc: ApprovalClosed) -> ProblemError:
    if exc.expired:
        return ProblemError(
            409,
            "Approval expired",
            f"The approval expired at {exc.record.expires_at.isoformat()}; nothing was done.",
            type="/problems/approval-expired",
        )
    return ProblemError(
        409,
        "Approval already decided",
        f"The approval is {exc.record.status} already; nothing was done.",
        type="/problems/approval-decided",
    )


# ---- the owner's routes (access token) --------------------------------------------------------


@bot_router.get("/{bot_id}/approvals", summary="A bot's approvals, oldest first")
async def list_approvals(
    bot_id: BotId,
    caller: CallerDep,
    runtime: RuntimeDep,
    request: PageDep,
    status: Annotated[
        ApprovalStatus | None, Query(description="Only approvals in this status.")
    ] = None,
) -> ApprovalPage:
    await own_bot(runtime, bot_id, caller)
    rows = await runtime.approvals.store.page(
        bot_id, status, request.fetch, request.after(datetime, UUID)
    )
    items, cursor = paginate(rows, request, lambda a: (a.created_at, a.approval_id))
    return ApprovalPage(items=[_out(a) for a in items], next_cursor=cursor)


@bot_router.post(
    "/{bot_id}/approvals/{approval_id}/{decision}",
    summary="Approve (the order goes to risk) or reject a pending order of your bot",
)
async def decide(
    bot_id: BotId,
    approval_id: UUID,
    decision: OwnerDecision,
    caller: CallerDep,
    runtime: RuntimeDep,
) -> ApprovalOut:
    desk = runtime.approvals
    try:
        found = await desk.find(approval_id, owner=caller, bot_id=bot_id)
        return _out(await desk.decide(found, decision, "api"))
    except UnknownApproval:
        raise _unknown(approval_id) from None
    except ApprovalClosed as exc:
        raise _closed(exc) from None


# ---- the signed links (no login) --------------------------------------------------------------

# The page holds a one-time link's signature (in its own URL, which the form posts back to): it
# must not be cached, indexed, framed or sent on as a referrer.
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "Content-Security-Policy": "default-src 'none'; form-action 'self'; frame-ancestors 'none'",
}


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html><html><head><meta charset=utf-8>"
        '<meta name="viewport" content="width=device-width">'
        f"<title>{escape(title)}</title></head><body><h1>{escape(title)}</h1>{body}</body></html>",
        status_code=status,
        headers=_PAGE_HEADERS,
    )


async def _signed(
    runtime: RuntimeDep, approval_id: UUID, decision: OwnerDecision, sig: str
) -> ApprovalRecord:
    """The approval a link names, once its signature holds: 404 when links are off, 403 for a
    signature that does not hold, 404 for an approval that does not exist."""
    key = runtime.settings.approval_link_key
    if key is None:
        raise ProblemError(404, "Approval links are off", "Decide through the API instead.")
    if not verify(key, approval_id, decision, sig):
        raise ProblemError(
            403,
            "Bad signature",
            "This link is not valid for this approval and decision.",
            type="/problems/bad-signature",
        )
    try:
        return await runtime.approvals.find(approval_id)
    except UnknownApproval:
        raise _unknown(approval_id) from None


_SIG = Query("", max_length=128, description="The link's signature.")
_VERBS = {"approve": "Approve", "reject": "Reject"}


@link_router.get(
    "/{approval_id}/{decision}",
    summary="A signed link's page: the order and a confirm button (a GET never decides)",
    response_class=HTMLResponse,
)
async def link_page(
    approval_id: UUID,
    decision: Literal["approve", "reject"],
    runtime: RuntimeDep,
    sig: str = _SIG,
) -> HTMLResponse:
    approval = await _signed(runtime, approval_id, decision, sig)
    intent = approval.intent
    price = f" at {intent.limit_price}" if intent.limit_price is not None else ""
    order = escape(
        f"{intent.side} {intent.quantity} {intent.instrument_id} "
        f"{intent.order_type.value.lower()}{price}"
    )
    if approval.status != "pending":
        return _page("Already decided", f"<p>{order}</p><p>This order is {approval.status}.</p>")
    verb = _VERBS[decision]
    return _page(
        f"{verb} this order?",
        f"<p>{order}</p><p>Waiting until {escape(approval.expires_at.isoformat())}.</p>"
        f'<form method="post"><button type="submit">{verb}</button></form>',
    )


@link_router.post(
    "/{approval_id}/{decision}",
    summary="Decide through a signed link, once (no login: the signature is the authority)",
    response_class=HTMLResponse,
)
async def link_decide(
    approval_id: UUID,
    decision: Literal["approve", "reject"],
    runtime: RuntimeDep,
    sig: str = _SIG,
) -> HTMLResponse:
    approval = await _signed(runtime, approval_id, decision, sig)
    try:
        decided = await runtime.approvals.decide(approval, decision, "link")
    except ApprovalClosed as exc:
        raise _closed(exc) from None
    title = "Order approved" if decided.status == "approved" else "Order rejected"
    return _page(title, "<p>You can close this page.</p>")
