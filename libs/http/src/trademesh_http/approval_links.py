"""Signed one-time links that decide an approval-mode bot's order: made by notify, checked by strategy.

A link is `{public_base_url}/api/v1/approvals/{approval_id}/{decision}?sig=...`, the signature an
HMAC-SHA256, keyed by the shared `TRADEMESH_APPROVAL_LINK_KEY`, over the approval id and the
decision (base64url, unpadded), compared in constant time. The signature says only "the holder of
this link may take this decision on this approval": it carries no expiry and no nonce, since the
approval's row does both (it expires, and it is decided once). A link and its key are secrets:
never log them, never put them on the bus.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Literal
from uuid import UUID

from pydantic import SecretStr

Decision = Literal["approve", "reject"]
DECISIONS: tuple[Decision, ...] = ("approve", "reject")
#: A key shorter than this is refused: an HMAC key should hold as much entropy as its output.
MIN_KEY_LENGTH = 32
_DOMAIN = b"trademesh.approval-link.v1"


class LinkKeyTooShort(ValueError):
    """The key is shorter than MIN_KEY_LENGTH characters."""


def _key_bytes(key: SecretStr) -> bytes:
    raw = key.get_secret_value().encode()
    if len(raw) < MIN_KEY_LENGTH:
        raise LinkKeyTooShort(f"an approval link key needs at least {MIN_KEY_LENGTH} characters")
    return raw


def signature(key: SecretStr, approval_id: UUID, decision: Decision) -> str:
    """The link's `sig`: HMAC-SHA256 over the domain, the approval id and the decision."""
    if decision not in DECISIONS:
        raise ValueError(f"decision must be one of {', '.join(DECISIONS)}")
    message = b"\n".join((_DOMAIN, str(approval_id).encode(), decision.encode()))
    digest = hmac.new(_key_bytes(key), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def approval_link(
    public_base_url: str, key: SecretStr, approval_id: UUID, decision: Decision
) -> str:
    """The link that takes `decision` on the approval (the gateway's public address first)."""
    base = public_base_url.rstrip("/")
    sig = signature(key, approval_id, decision)
    return f"{base}/api/v1/approvals/{approval_id}/{decision}?sig={sig}"


def verify(key: SecretStr, approval_id: UUID, decision: str, sig: str) -> bool:
    """Whether `sig` is the signature of `decision` on the approval (constant-time compare)."""
    if decision not in DECISIONS:
        return False
    expected = signature(key, approval_id, decision)
    return hmac.compare_digest(expected.encode(), sig.encode("utf-8", "replace"))
