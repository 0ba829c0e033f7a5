"""Signed approve/reject links added to a pending approval's delivery when it is sent.

The links are made at send time, from the approval id in the stored body, and never kept: a link
decides an order for whoever holds it, so it is a secret, and the deliveries table holds bodies
in clear (docs/decisions/0132-approve-before-trade.md for the link itself, trademesh_http's
approval_links for its signature). A webhook receives them in the signed body under `links`;
Telegram and e-mail show them in the text (render.py).
"""

from __future__ import annotations

import json
from uuid import UUID

from pydantic import SecretStr
from trademesh_events.bots import ApprovalRequested
from trademesh_http.approval_links import DECISIONS, approval_link

APPROVAL_REQUESTED = ApprovalRequested.model_fields["type"].default


class ApprovalLinks:
    """Adds `links: {approve, reject}` to the body of a pending approval's delivery."""

    def __init__(self, public_url: str, key: SecretStr) -> None:
        self.public_url = public_url
        self.key = key

    def add_to(self, event_type: str, body: bytes) -> bytes:
        """`body` with the approval's links, for an ApprovalRequested; any other body as it is."""
        if event_type != APPROVAL_REQUESTED:
            return body
        try:
            document = json.loads(body)
            approval_id = UUID(document["data"]["approval_id"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"a pending approval's body without its id ({exc!r})") from None
        document["links"] = {
            decision: approval_link(self.public_url, self.key, approval_id, decision)
            for decision in DECISIONS
        }
        return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()
