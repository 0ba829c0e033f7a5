"""Auth events, keyed by user. They carry facts only: never a password, token, key secret or full e-mail."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from trademesh_events.base import Event
from trademesh_events.ids import UserId, UtcDateTime

_MAX_DOMAIN = 200  # 1 + 3 + 1 + 200 stays under the 254 characters of an address
MaskedEmail = Annotated[str, StringConstraints(pattern=r"^[^@*]?\*{3}@[^@]+$", max_length=254)]


class Role(StrEnum):
    ADMIN = "admin"
    TRADER = "trader"
    VIEWER = "viewer"


class LoginFailure(StrEnum):
    BAD_CREDENTIALS = "BAD_CREDENTIALS"
    UNKNOWN_USER = "UNKNOWN_USER"
    DISABLED = "DISABLED"
    THROTTLED = "THROTTLED"


def mask_email(email: str) -> str:
    """`alice@example.com` -> `a***@example.com`: enough to recognise, not enough to harvest.

    Whatever was typed (failed logins carry user input), the result is a valid MaskedEmail:
    a first character that is `*` or `@` is dropped, and an absurd domain is cut.
    """
    local, sep, domain = email.strip().rpartition("@")
    domain = domain.lower()[:_MAX_DOMAIN]
    if not sep or not domain:
        return "***@invalid"
    first = local[:1] if local[:1] not in ("*", "@") else ""
    return f"{first}***@{domain}"


class _AuthEvent(Event):
    user_id: UserId
    ts: UtcDateTime


class UserRegistered(_AuthEvent):
    type: Literal["trademesh.auth.user_registered"] = "trademesh.auth.user_registered"
    email: MaskedEmail
    role: Role


class UserLoggedIn(_AuthEvent):
    type: Literal["trademesh.auth.user_logged_in"] = "trademesh.auth.user_logged_in"
    method: Literal["password", "refresh", "api_key"]


class LoginFailed(Event):
    """A failed login. user_id is None when no such user exists; `email` is masked."""

    type: Literal["trademesh.auth.login_failed"] = "trademesh.auth.login_failed"
    user_id: UserId | None = None
    email: MaskedEmail
    reason: LoginFailure
    ts: UtcDateTime


class RoleChanged(_AuthEvent):
    type: Literal["trademesh.auth.role_changed"] = "trademesh.auth.role_changed"
    old_role: Role
    new_role: Role
    changed_by: UserId


class UserDisabled(_AuthEvent):
    type: Literal["trademesh.auth.user_disabled"] = "trademesh.auth.user_disabled"
    disabled_by: UserId


class ApiKeyCreated(_AuthEvent):
    type: Literal["trademesh.auth.api_key_created"] = "trademesh.auth.api_key_created"
    key_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{4,64}$")]
    scopes: tuple[Literal["read", "trade"], ...]
    expires_at: UtcDateTime | None = None


class ApiKeyRevoked(_AuthEvent):
    type: Literal["trademesh.auth.api_key_revoked"] = "trademesh.auth.api_key_revoked"
    key_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{4,64}$")]


class SessionsRevoked(_AuthEvent):
    """Every access token of the user below `session_version` is refused from now on, before it
    expires: the user was disabled, their role changed or their password changed. Their refresh
    tokens are revoked in the same transaction; tokens issued afterwards carry the new version."""

    type: Literal["trademesh.auth.sessions_revoked"] = "trademesh.auth.sessions_revoked"
    session_version: int = Field(ge=1)
    reason: Literal["disabled", "role_changed", "password_changed"]
