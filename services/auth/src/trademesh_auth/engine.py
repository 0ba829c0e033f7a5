"""The auth domain, pure: the password policy, login throttling, what a token says, and how the
opaque secrets (refresh tokens, API keys) are made and kept. No I/O, no wall clock.

Passwords (ASVS 6.2): 8 to 128 characters, any characters, no composition rules, refused when
they are a common password (the 30,000 most common passwords from zxcvbn's frequency lists, a
well-kept published list) or the user's own e-mail address or its local part.

Throttling (ASVS 6.1.1, 6.3.1): failed logins are counted per client IP, per user and IP, and per
user; each count gives a delay that doubles from its threshold up to its cap, and the next
attempt from that IP / for that user is refused (429 with Retry-After) until the delay has passed
since the last failure. Counts expire `window` after their last failure and a successful login
clears the user's. The per-user delay is capped low (a minute by default): an attacker from many
IPs can slow a victim down, never lock them out; the per-user-and-IP and per-IP delays, which
only the attacker's own attempts raise, grow much longer. A refused attempt counts nothing (a
victim retrying does not extend a delay).

Secrets. Refresh tokens and API keys are 256-bit random values: they are stored as their SHA-256
(not a slow password hash: with that much entropy nobody can guess one from its hash, and a
lookup must be one indexed query). An API key is `tmk_<key id>_<secret>`: the id finds the row,
the secret's hash must match it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any, Literal
from uuid import UUID

Role = Literal["admin", "trader", "viewer"]
#: read: read one's own resources; trade: change them (orders, bots, accounts, and an admin's
#: administration); account: manage one's own login (API keys, password).
Scope = Literal["read", "trade", "account"]
KeyScope = Literal["read", "trade"]
ROLES: tuple[Role, ...] = ("admin", "trader", "viewer")
ACCOUNT_SCOPE: Scope = "account"
MIN_PASSWORD, MAX_PASSWORD = 8, 128
API_KEY_PREFIX = "tmk"


# ---- passwords -----------------------------------------------------------------------------------


@cache
def common_passwords() -> frozenset[str]:
    """The common-password list (lower case). Loaded once, when first needed."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS  # type: ignore[import-untyped]

    return frozenset(p.lower() for p in FREQUENCY_LISTS["passwords"])


def password_problem(password: str, email: str | None = None) -> str | None:
    """Why the password cannot be used, or None when it can."""
    if len(password) < MIN_PASSWORD:
        return f"a password has at least {MIN_PASSWORD} characters"
    if len(password) > MAX_PASSWORD:
        return f"a password has at most {MAX_PASSWORD} characters"
    lowered = password.lower()
    if lowered in common_passwords():
        return "this password is one of the most common ones: choose another"
    if email is not None:
        address = email.strip().lower()
        if lowered in (address, address.partition("@")[0]):
            return "a password cannot be your e-mail address"
    return None


def normalise_email(email: str) -> str:
    """The form an address is stored and looked up in: trimmed, lower case."""
    return email.strip().lower()


# ---- roles and scopes ----------------------------------------------------------------------------


def scopes_of(role: Role, wanted: Iterable[Scope] | None = None) -> tuple[Scope, ...]:
    """What a password session of a user with `role` may do: `read` and `account` for all,
    `trade` for traders and admins; narrowed to `wanted` when given.

    An API key's token never has `account` (see `key_scopes`): a key cannot mint or revoke keys
    nor change the password, so a leaked key cannot make itself a lasting successor."""
    allowed: tuple[Scope, ...] = (
        ("read", "account") if role == "viewer" else ("read", "trade", "account")
    )
    if wanted is None:
        return allowed
    return tuple(s for s in allowed if s in set(wanted))


def key_scopes(role: Role, wanted: Iterable[str]) -> tuple[Scope, ...]:
    """The scopes of an API key's token: the key's own (`read`, `trade`), within the role's."""
    asked = set(wanted)
    return tuple(s for s in scopes_of(role) if s in asked and s != ACCOUNT_SCOPE)


@dataclass(frozen=True)
class AccessClaims:
    """What an access token says (RFC 9068 claims, and the platform's role and scope)."""

    user_id: UUID
    role: Role
    scopes: tuple[Scope, ...]
    issuer: str
    audience: str
    issued_at: datetime
    expires_at: datetime
    token_id: str
    #: The user's session version (raised to end every session at once).
    session_version: int = 1
    #: The API key the token was minted for (revoking the key refuses the token).
    key_id: str | None = None

    def to_jwt(self) -> dict[str, Any]:
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": str(self.user_id),
            "role": self.role,
            "scope": " ".join(self.scopes),
            "iat": int(self.issued_at.timestamp()),
            "nbf": int(self.issued_at.timestamp()),
            "exp": int(self.expires_at.timestamp()),
            "jti": self.token_id,
            "session_version": self.session_version,
        }
        if self.key_id is not None:
            claims["key_id"] = self.key_id
        return claims


def access_claims(
    *,
    user_id: UUID,
    role: Role,
    scopes: tuple[Scope, ...],
    now: datetime,
    ttl: timedelta,
    issuer: str,
    audience: str,
    token_id: str,
    session_version: int = 1,
    key_id: str | None = None,
) -> AccessClaims:
    if not timedelta(0) < ttl <= timedelta(minutes=15):
        raise ValueError("an access token lives more than 0 and at most 15 minutes")
    return AccessClaims(
        user_id, role, scopes, issuer, audience, now, now + ttl, token_id, session_version, key_id
    )


# ---- opaque secrets ------------------------------------------------------------------------------


def new_secret() -> str:
    """256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_api_key() -> tuple[str, str]:
    """(key id, the whole key to show once): `tmk_<key id>_<secret>`."""
    key_id = secrets.token_hex(8)
    return key_id, f"{API_KEY_PREFIX}_{key_id}_{new_secret()}"


def parse_api_key(key: str) -> tuple[str, str] | None:
    """(key id, the key's secret part) of a well-formed key; None otherwise."""
    prefix, sep, rest = key.partition("_")
    key_id, sep2, secret = rest.partition("_")
    if prefix != API_KEY_PREFIX or not sep or not sep2 or len(key_id) != 16 or len(secret) < 40:
        return None
    if not all(c in "0123456789abcdef" for c in key_id):
        return None
    return key_id, secret


def api_key_hash(key: str) -> str:
    return secret_hash(key)


def same_hash(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


# ---- throttling ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ThrottleRule:
    """Failures up to `threshold` cost nothing; then the delay doubles from `base` up to `cap`."""

    threshold: int
    base: timedelta
    cap: timedelta

    def delay(self, failures: int) -> timedelta:
        if failures < self.threshold:
            return timedelta(0)
        exponent = min(failures - self.threshold, 30)
        grown: timedelta = self.base * (2**exponent)
        return min(grown, self.cap)


@dataclass(frozen=True)
class Throttle:
    per_ip: ThrottleRule
    per_user_ip: ThrottleRule
    per_user: ThrottleRule
    window: timedelta


@dataclass(frozen=True)
class Failures:
    """A throttle key's count of failures, and the time of the last one."""

    count: int
    last: datetime


def live_count(failures: Failures | None, now: datetime, window: timedelta) -> int:
    """The count that still counts: none once `window` has passed since the last failure."""
    if failures is None or now - failures.last >= window:
        return 0
    return failures.count


def retry_after(
    throttle: Throttle, counts: Mapping[str, Failures | None], now: datetime
) -> timedelta:
    """How long the attempt must wait (0: it may go ahead). `counts` are by kind: `ip`,
    `user_ip` and `user` (the last two absent for an unknown user)."""
    rules = {"ip": throttle.per_ip, "user_ip": throttle.per_user_ip, "user": throttle.per_user}
    wait = timedelta(0)
    for kind, failures in counts.items():
        count = live_count(failures, now, throttle.window)
        if failures is None or count == 0:
            continue
        until = failures.last + rules[kind].delay(count)
        wait = max(wait, until - now)
    return wait
