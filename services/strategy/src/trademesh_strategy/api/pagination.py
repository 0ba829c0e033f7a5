"""Keyset pagination cursors over (created_at, id): opaque to clients, checked when read back."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from uuid import UUID

from trademesh_http import ProblemError


def encode_cursor(created_at: datetime, item_id: UUID) -> str:
    raw = json.dumps([created_at.isoformat(), str(item_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    """The position a cursor names; a 400 problem for anything not made by encode_cursor."""
    invalid = ProblemError(400, "Invalid cursor", "Pass next_cursor as it was returned.")
    try:
        created, item = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        moment = datetime.fromisoformat(created)
        return moment, UUID(item)
    except (ValueError, TypeError, binascii.Error, AttributeError):
        raise invalid from None
