"""A delivery's body as a person reads it: a subject and a plain text, and the text as Telegram's
MarkdownV2. Pure.

The body is the JSON document a webhook receives (engine.body: `id`, `kind`, `type`, `time`,
`data`; and `links` for a pending approval, added when sent). Fills, denials and approvals have
lines of their own; any other kind gets a generic rendering of its type and fields, so that a
new kind is readable before it has its own.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

# Telegram Bot API, "MarkdownV2 style": in plain text each of these must be escaped with a
# preceding backslash, and the backslash itself too.
MARKDOWN_V2_SPECIAL = frozenset("_*[]()~`>#+-=|{}.!\\")
TELEGRAM_LIMIT = 4096  # characters of a message's text, after entities are parsed
_SUBJECT_LIMIT = 150
_VALUE_LIMIT = 200
_FIELDS_LIMIT = 30
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


@dataclass(frozen=True)
class Rendered:
    """What a person reads: a one-line subject and a plain text body."""

    subject: str
    text: str


def escape_markdown_v2(text: str) -> str:
    """`text` as literal MarkdownV2 text: every special character escaped."""
    return "".join("\\" + c if c in MARKDOWN_V2_SPECIAL else c for c in text)


def telegram_text(rendered: Rendered, limit: int = TELEGRAM_LIMIT) -> str:
    """The message as MarkdownV2: the subject in bold, then the text, escaped; cut (with an
    escaped ellipsis) so that it fits Telegram's limit."""
    head = f"*{escape_markdown_v2(rendered.subject)}*\n\n"
    body = escape_markdown_v2(rendered.text)
    if len(head) + len(body) <= limit:
        return head + body
    ellipsis = "\n\\.\\.\\."
    room, kept = limit - len(head) - len(ellipsis), []
    for c in rendered.text:  # escape by character, so that no escape is cut in two
        piece = escape_markdown_v2(c)
        room -= len(piece)
        if room < 0:
            break
        kept.append(piece)
    return head + "".join(kept) + ellipsis


def render(body: bytes) -> Rendered:
    """The subject and text of a delivery's body; never raises (an unreadable body still says
    what it is)."""
    try:
        document = json.loads(body)
    except ValueError:
        return Rendered("Trademesh notification", "An event that could not be read.")
    if not isinstance(document, dict):
        document = {}
    data = document.get("data")
    data = data if isinstance(data, dict) else {}
    match document.get("kind"):
        case "fill":
            return _fill(document, data)
        case "denial":
            return _denial(document, data)
        case "approval":
            return _approval(document, data)
        case _:
            return _generic(document, data)


def _fill(document: dict[str, Any], data: dict[str, Any]) -> Rendered:
    side = _text(data.get("side")).lower()
    verb = {"buy": "Bought", "sell": "Sold"}.get(side, f"Filled ({side or 'unknown side'})")
    venue, symbol = _instrument(data.get("instrument_id"))
    qty, price = _text(data.get("last_qty")), _text(data.get("last_price"))
    subject = f"Fill: {side.upper() or '?'} {qty} {symbol} @ {price}"
    lines = [
        f"{verb} {qty} {symbol} at {price}" + (f" on {venue}" if venue else ""),
        f"Filled so far: {_text(data.get('cum_qty'))}, left: {_text(data.get('leaves_qty'))}",
        f"Fee: {_text(data.get('fee'))} {_text(data.get('fee_currency'))}".rstrip(),
        f"Account: {_text(data.get('account_id'))}",
        f"Order: {_text(data.get('client_order_id'))}",
        f"Time: {_text(data.get('ts') or document.get('time'))}",
    ]
    return Rendered(_subject(subject), "\n".join(lines))


def _denial(document: dict[str, Any], data: dict[str, Any]) -> Rendered:
    reason = _text(data.get("reason")) or "unknown reason"
    _, symbol = _instrument(data.get("instrument_id"))
    subject = f"Order denied: {reason} on {symbol}"
    lines = [f"Risk denied an order on {_text(data.get('instrument_id'))}: {reason}"]
    if data.get("message"):
        lines.append(f"Why: {_text(data.get('message'))}")
    order = data.get("order")
    if isinstance(order, dict) and order.get("side") is not None:
        what = f"{_text(order.get('side')).upper()} {_text(order.get('quantity'))}"
        if order.get("price") is not None:
            what += f" @ {_text(order.get('price'))}"
        lines.append(f"Order: {what} ({_text(order.get('order_type')) or 'order'})")
    lines += [
        f"Account: {_text(data.get('account_id'))}",
        f"Client order id: {_text(data.get('client_order_id'))}",
        f"Time: {_text(data.get('denied_at') or document.get('time'))}",
    ]
    return Rendered(_subject(subject), "\n".join(lines))


def _approval(document: dict[str, Any], data: dict[str, Any]) -> Rendered:
    """A pending approval, with its links when the service makes them (links.py), or one that
    expired undecided."""
    bot, order = _text(data.get("bot_id")), _text(data.get("client_order_id"))
    if data.get("decision") is not None:
        lines = [
            f"Your bot's order {order} was not decided before it expired: it was not placed.",
            f"Bot: {bot}",
            f"Time: {_text(data.get('decided_at') or document.get('time'))}",
        ]
        return Rendered(_subject(f"Approval expired: order {order}"), "\n".join(lines))
    side, qty = _text(data.get("side")).upper(), _text(data.get("quantity"))
    _, symbol = _instrument(data.get("instrument_id"))
    price = data.get("limit_price") or data.get("stop_price")
    at = f" at {_text(price)}" if price is not None else ""
    lines = [
        f"Your bot asks to {side} {qty} {_text(data.get('instrument_id'))}{at} "
        f"({_text(data.get('order_type')).lower() or 'order'}).",
        f"It expires at {_text(data.get('expires_at'))} unless you decide before.",
        f"Bot: {bot}",
        f"Account: {_text(data.get('account_id'))}",
        f"Order: {order}",
    ]
    links = document.get("links")
    if isinstance(links, dict) and links.get("approve") and links.get("reject"):
        # Whole, never cut: a cut link decides nothing.
        lines += [
            f"Approve: {_CONTROL.sub('', str(links['approve']))}",
            f"Reject: {_CONTROL.sub('', str(links['reject']))}",
        ]
    else:
        lines.append(
            f"Decide it: POST /api/v1/bots/{bot}/approvals/{_text(data.get('approval_id'))}"
            "/approve (or /reject)"
        )
    return Rendered(_subject(f"Approve? {side} {qty} {symbol}{at}"), "\n".join(lines))


def _generic(document: dict[str, Any], data: dict[str, Any]) -> Rendered:
    kind = _text(document.get("kind")) or "event"
    event_type = _text(document.get("type") or data.get("type")) or "unknown type"
    subject = f"{kind.replace('_', ' ').capitalize()}: {event_type}"
    lines = [f"Event {event_type}", f"Time: {_text(document.get('time'))}"]
    fields = [(k, v) for k, v in sorted(data.items()) if k != "type" and v is not None]
    for key, value in fields[:_FIELDS_LIMIT]:
        lines.append(f"{key}: {_text(value)}")
    if len(fields) > _FIELDS_LIMIT:
        lines.append(f"... and {len(fields) - _FIELDS_LIMIT} more fields")
    return Rendered(_subject(subject), "\n".join(lines))


def _instrument(value: Any) -> tuple[str, str]:
    """("binance", "BTC/USDT") of "binance:BTC/USDT"; no venue when there is no colon."""
    text = _text(value)
    venue, _, symbol = text.rpartition(":")
    return venue, symbol or "?"


def _text(value: Any) -> str:
    """A field's value on one line: scalars as they are, the rest as compact JSON, cut."""
    if value is None:
        return ""
    if isinstance(value, str | int | float | bool):
        text = str(value)
    else:
        text = json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)
    text = _CONTROL.sub(" ", text)
    return text if len(text) <= _VALUE_LIMIT else text[: _VALUE_LIMIT - 3] + "..."


def _subject(subject: str) -> str:
    subject = _CONTROL.sub(" ", subject).strip()
    return subject if len(subject) <= _SUBJECT_LIMIT else subject[: _SUBJECT_LIMIT - 3] + "..."
