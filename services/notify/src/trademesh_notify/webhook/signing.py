"""The signature of a webhook delivery: HMAC-SHA256 over the timestamp and the body. Pure.

The recipe a receiver follows (also in the service's README):

1. take the headers `Trademesh-Timestamp` (Unix seconds) and `Trademesh-Signature`
   (`v1=<hex>`; several, comma-separated, while a key is being rotated);
2. refuse the delivery if the timestamp is more than 5 minutes from your clock (replays);
3. compute `HMAC-SHA256(key=<the channel's signing secret, as UTF-8>, msg=<timestamp> + "." +
   <the raw request body bytes>)` in hex, and compare it with each `v1=` value in constant time;
4. deduplicate on `Trademesh-Delivery-Id` (the same event to the same channel keeps its id
   across retries: delivery is at least once).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

TIMESTAMP_HEADER = "Trademesh-Timestamp"
SIGNATURE_HEADER = "Trademesh-Signature"
DELIVERY_HEADER = "Trademesh-Delivery-Id"
EVENT_TYPE_HEADER = "Trademesh-Event-Type"
VERSION = "v1"
TOLERANCE_S = 300
SECRET_PREFIX = "whsec_"  # noqa: S105  # pragma: allowlist secret - a prefix, not a secret


def new_secret() -> str:
    """A fresh signing secret: 32 random bytes, URL-safe base64, with a recognisable prefix."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """`v1=<hex HMAC-SHA256 of "<timestamp>.<body>">`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"{VERSION}={mac.hexdigest()}"


def verify(
    secret: str,
    timestamp: str,
    signatures: str,
    body: bytes,
    now: int,
    tolerance_s: int = TOLERANCE_S,
) -> bool:
    """The recipe above, as a receiver runs it: True when the timestamp is within the tolerance
    of `now` and one of the comma-separated signatures matches."""
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs(now - sent) > tolerance_s:
        return False
    expected = signature(secret, sent, body)
    return any(hmac.compare_digest(expected, given.strip()) for given in signatures.split(","))
