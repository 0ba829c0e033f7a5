"""approval_links: the signed one-time links that decide an approval-mode bot's order."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import parse_qs, urlsplit
from uuid import UUID, uuid4

import pytest
from pydantic import SecretStr
from trademesh_http.approval_links import (
    LinkKeyTooShort,
    approval_link,
    signature,
    verify,
)

pytestmark = pytest.mark.unit

KEY = SecretStr("k" * 32)
OTHER_KEY = SecretStr("o" * 32)
APPROVAL = UUID("0190a1b2-0000-7000-8000-0000000000aa")


def _sig_of(link: str) -> str:
    return parse_qs(urlsplit(link).query)["sig"][0]


def test_a_link_names_the_approval_and_decision_under_the_public_base() -> None:
    link = approval_link("https://trade.example.com/", KEY, APPROVAL, "approve")

    parts = urlsplit(link)
    assert (parts.scheme, parts.netloc) == ("https", "trade.example.com")
    assert parts.path == f"/api/v1/approvals/{APPROVAL}/approve"
    assert verify(KEY, APPROVAL, "approve", _sig_of(link))


def test_the_signature_is_hmac_sha256_base64url_over_id_and_decision() -> None:
    message = b"trademesh.approval-link.v1\n" + str(APPROVAL).encode() + b"\nreject"
    digest = hmac.new(KEY.get_secret_value().encode(), message, hashlib.sha256).digest()

    assert signature(KEY, APPROVAL, "reject") == (
        base64.urlsafe_b64encode(digest).decode().rstrip("=")
    )
    assert "=" not in signature(KEY, APPROVAL, "reject")


def test_an_approve_signature_does_not_reject() -> None:
    sig = signature(KEY, APPROVAL, "approve")

    assert not verify(KEY, APPROVAL, "reject", sig)


def test_a_signature_for_another_approval_is_refused() -> None:
    sig = signature(KEY, uuid4(), "approve")

    assert not verify(KEY, APPROVAL, "approve", sig)


def test_a_signature_made_with_another_key_is_refused() -> None:
    sig = signature(OTHER_KEY, APPROVAL, "approve")

    assert not verify(KEY, APPROVAL, "approve", sig)


@pytest.mark.parametrize("sig", ["", "x", "é" * 43, signature(KEY, APPROVAL, "approve")[:-1]])
def test_a_malformed_or_truncated_signature_is_refused(sig: str) -> None:
    assert not verify(KEY, APPROVAL, "approve", sig)


def test_an_unknown_decision_is_refused_not_raised() -> None:
    assert not verify(KEY, APPROVAL, "expire", signature(KEY, APPROVAL, "approve"))
    with pytest.raises(ValueError, match="decision"):
        signature(KEY, APPROVAL, "expire")  # type: ignore[arg-type]


def test_a_short_key_is_refused() -> None:
    with pytest.raises(LinkKeyTooShort):
        approval_link("https://x", SecretStr("short"), APPROVAL, "approve")
