"""A delivery's body as a person reads it, and as Telegram's MarkdownV2: pure."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
from trademesh_events import bots, orders, risk
from trademesh_events.base import Event
from trademesh_events.envelope import new_envelope
from trademesh_testing.samples import build_sample

from trademesh_notify.engine import notice_of
from trademesh_notify.render import (
    MARKDOWN_V2_SPECIAL,
    Rendered,
    escape_markdown_v2,
    render,
    telegram_text,
)

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
# Telegram's list ("MarkdownV2 style"), spelled out here rather than taken from the module.
SPECIAL = "_*[]()~`>#+-=|{}.!\\"


def body_of(event: orders.OrderFilled | orders.OrderDenied) -> bytes:
    notice = notice_of(event, new_envelope(event, "execution", time=T0))
    assert notice is not None
    return notice.body


def unescape(text: str) -> str:
    """What Telegram shows of escaped MarkdownV2 plain text."""
    out, chars = [], iter(text)
    for c in chars:
        out.append(next(chars) if c == "\\" else c)
    return "".join(out)


def test_every_markdown_v2_special_character_is_escaped_and_nothing_else() -> None:
    assert frozenset(SPECIAL) == MARKDOWN_V2_SPECIAL
    for c in SPECIAL:
        assert escape_markdown_v2(c) == "\\" + c
    assert escape_markdown_v2("abc XYZ 123 é/:,;@$%&'\"?") == "abc XYZ 123 é/:,;@$%&'\"?"
    assert escape_markdown_v2("a_b*c.d\\e") == "a\\_b\\*c\\.d\\\\e"
    assert unescape(escape_markdown_v2(SPECIAL + " plain")) == SPECIAL + " plain"


def test_a_fill_renders_side_quantity_symbol_price_and_account() -> None:
    fill = build_sample(orders.OrderFilled, user_id=uuid4(), account_id=uuid4())
    assert isinstance(fill, orders.OrderFilled)
    rendered = render(body_of(fill))
    symbol = str(fill.instrument_id).split(":", 1)[1]
    side = str(fill.side)
    assert rendered.subject == f"Fill: {side.upper()} {fill.last_qty} {symbol} @ {fill.last_price}"
    verb = "Bought" if side == "buy" else "Sold"
    assert rendered.text.splitlines()[0].startswith(f"{verb} {fill.last_qty} {symbol} at ")
    assert f"Account: {fill.account_id}" in rendered.text
    assert f"Order: {fill.client_order_id}" in rendered.text
    assert f"Fee: {fill.fee} {fill.fee_currency}" in rendered.text


def test_a_denial_renders_its_reason_and_message() -> None:
    denial = build_sample(orders.OrderDenied, user_id=uuid4(), account_id=uuid4())
    assert isinstance(denial, orders.OrderDenied)
    rendered = render(body_of(denial))
    assert rendered.subject.startswith(f"Order denied: {denial.reason.value} on ")
    assert f"Why: {denial.message}" in rendered.text
    assert f"Account: {denial.account_id}" in rendered.text


def document(kind: str, data: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "id": str(uuid4()),
            "kind": kind,
            "type": data.get("type"),
            "time": T0.isoformat(),
            "data": data,
        }
    ).encode()


def test_any_other_kind_renders_its_type_and_fields() -> None:
    body = document(
        "kill_switch",
        {
            "type": "trademesh.risk.kill_switch",
            "account_id": "a-1",
            "state": "HALTED",
            "limits": {"max": "10"},
            "note": None,
            "reason": "line\nbreak",
        },
    )
    rendered = render(body)
    assert rendered.subject == "Kill switch: trademesh.risk.kill_switch"
    lines = rendered.text.splitlines()
    assert lines[0] == "Event trademesh.risk.kill_switch"
    assert "account_id: a-1" in lines
    assert "state: HALTED" in lines
    assert 'limits: {"max":"10"}' in lines
    assert "reason: line break" in lines  # one field, one line
    assert not any(line.startswith("note:") for line in lines)  # nothing to say


def test_a_generic_event_with_many_long_fields_is_cut() -> None:
    data = {f"f{i:02}": "x" * 500 for i in range(40)}
    rendered = render(document("new_kind", {"type": "t", **data}))
    assert "... and 10 more fields" in rendered.text
    assert max(len(line) for line in rendered.text.splitlines()) <= len("f00: ") + 200


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b"{}", b'{"kind": "fill", "data": 3}'])
def test_an_unreadable_body_still_renders(body: bytes) -> None:
    rendered = render(body)
    assert rendered.subject
    assert "\n" not in rendered.subject


def test_telegram_text_is_the_bold_subject_and_the_escaped_text() -> None:
    text = telegram_text(Rendered("Fill: BUY 0.1 BTC/USDT @ 64000.5", "Fee: -0.1 USDT (maker)"))
    assert text == "*Fill: BUY 0\\.1 BTC/USDT @ 64000\\.5*\n\nFee: \\-0\\.1 USDT \\(maker\\)"


def test_telegram_text_over_the_limit_is_cut_without_a_lone_escape() -> None:
    rendered = Rendered("s", "." * 5000)
    text = telegram_text(rendered, limit=101)
    assert len(text) <= 101
    assert text.endswith("\n\\.\\.\\.")
    kept = text[len("*s*\n\n") : -len("\n\\.\\.\\.")]
    assert kept == "\\." * (len(kept) // 2)  # whole escapes only
    assert len(kept) % 2 == 0


@pytest.mark.parametrize(
    ("cls", "fields"),
    [
        (orders.OrderRejected, {"reason": "insufficient balance"}),
        (bots.BotStateChanged, {"state": bots.BotState.ERROR, "reason": "boom"}),
        (orders.DiscrepancyDetected, {}),
        (risk.TradingStateChanged, {}),
    ],
)
def test_every_other_event_kind_renders_readably_by_the_fallback(
    cls: type[Event], fields: dict[str, Any]
) -> None:
    event = build_sample(cls, **fields)
    notice = notice_of(event, new_envelope(event, "test", time=T0))
    assert notice is not None
    rendered = render(notice.body)
    assert rendered.subject.endswith(f": {event.type}")
    assert rendered.text.splitlines()[0] == f"Event {event.type}"
    data = json.loads(notice.body)["data"]
    for key, value in data.items():
        if key != "type" and isinstance(value, str) and value:
            assert f"{key}: {value}" in rendered.text
    assert len(telegram_text(rendered)) <= 4096


def test_a_pending_approval_renders_the_order_and_both_links_whole() -> None:
    asked = build_sample(bots.ApprovalRequested, limit_price=None, stop_price=None)
    assert isinstance(asked, bots.ApprovalRequested)
    notice = notice_of(asked, new_envelope(asked, "strategy", time=T0))
    assert notice is not None
    long_sig = "s" * 300  # longer than any field is cut to: a link is never cut
    links = {d: f"https://trade.example.org/api/v1/approvals/{asked.approval_id}/{d}?sig={long_sig}"
             for d in ("approve", "reject")}  # fmt: skip
    body = json.dumps({**json.loads(notice.body), "links": links}).encode()

    rendered = render(body)

    symbol = str(asked.instrument_id).split(":", 1)[1]
    assert rendered.subject == f"Approve? {str(asked.side).upper()} {asked.quantity} {symbol}"
    assert f"Approve: {links['approve']}" in rendered.text.splitlines()
    assert f"Reject: {links['reject']}" in rendered.text.splitlines()
    assert f"It expires at {asked.expires_at:%Y-%m-%dT%H:%M:%S}" in rendered.text
    assert unescape(telegram_text(rendered)).endswith(f"Reject: {links['reject']}")


def test_a_pending_approval_without_links_says_how_to_decide_through_the_api() -> None:
    asked = build_sample(bots.ApprovalRequested)
    assert isinstance(asked, bots.ApprovalRequested)
    notice = notice_of(asked, new_envelope(asked, "strategy", time=T0))
    assert notice is not None
    text = render(notice.body).text
    assert f"/api/v1/bots/{asked.bot_id}/approvals/{asked.approval_id}/approve" in text
    assert "Approve: " not in text


def test_an_expired_approval_says_the_order_was_not_placed() -> None:
    expired = build_sample(bots.ApprovalDecided, decision=bots.ApprovalDecision.EXPIRED)
    assert isinstance(expired, bots.ApprovalDecided)
    notice = notice_of(expired, new_envelope(expired, "strategy", time=T0))
    assert notice is not None
    rendered = render(notice.body)
    assert rendered.subject == f"Approval expired: order {expired.client_order_id}"
    assert "it was not placed" in rendered.text
