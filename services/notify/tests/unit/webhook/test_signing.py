"""The webhook signature and the receiver's recipe."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from trademesh_notify.webhook.signing import SECRET_PREFIX, new_secret, signature, verify

pytestmark = pytest.mark.unit

SECRET = "whsec_test"  # pragma: allowlist secret
BODY = b'{"type":"trademesh.order.filled"}'
NOW = 1_800_000_000


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert signature(SECRET, NOW, BODY) == f"v1={expected}"


def test_a_signed_body_verifies() -> None:
    assert verify(SECRET, str(NOW), signature(SECRET, NOW, BODY), BODY, now=NOW + 10)


def test_a_changed_body_or_another_key_does_not_verify() -> None:
    signed = signature(SECRET, NOW, BODY)
    assert not verify(SECRET, str(NOW), signed, BODY + b" ", now=NOW)
    assert not verify("whsec_other", str(NOW), signed, BODY, now=NOW)


def test_an_old_or_future_timestamp_is_a_replay_and_refused() -> None:
    signed = signature(SECRET, NOW, BODY)
    assert not verify(SECRET, str(NOW), signed, BODY, now=NOW + 301)
    assert not verify(SECRET, str(NOW), signed, BODY, now=NOW - 301)
    assert not verify(SECRET, "not-a-number", signed, BODY, now=NOW)


def test_one_matching_signature_among_several_verifies() -> None:
    signed = signature(SECRET, NOW, BODY)
    assert verify(SECRET, str(NOW), f"v1=00ff, {signed}", BODY, now=NOW)


def test_new_secrets_are_prefixed_and_distinct() -> None:
    a, b = new_secret(), new_secret()
    assert a.startswith(SECRET_PREFIX) and a != b and len(a) > 40
