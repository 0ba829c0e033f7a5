"""Who a request acts for: the bearer of a verified access token, checked by every service itself.

A request names its caller with `Authorization: Bearer <access token>`, a JWT issued by the auth
service (see trademesh_http.tokens). `get_caller` verifies it with the app's TokenVerifier
(`create_http_app(tokens=...)`, kept on app.state.tokens) against auth's JWKS: no service trusts
an identity header just because the request came from inside (docs/architecture.md, Security). An
app without a verifier answers 401 to every route that needs a caller: a misconfiguration must
not open the door.

Every route that reads or changes a user's resources takes its user from here, and only from
here, never from a body. Besides the role checks (`require`, `AdminDep`), one blanket rule holds
for writes: a request whose method is not GET, HEAD or OPTIONS needs the `trade` scope and the
role trader or admin (a viewer cannot trade; nor can a read-only API key), else 403.

A service that calls another service on the caller's behalf forwards the caller's token
(`caller.auth_headers()`); the token is never logged and never shown in the Caller's repr.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Annotated
from uuid import UUID

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from trademesh_http.problems import ProblemError
from trademesh_http.tokens import ROLES, Role, TokenVerifier

__all__ = [
    "READ_METHODS",
    "ROLES",
    "TRADE_SCOPE",
    "AdminDep",
    "Caller",
    "CallerDep",
    "CallerIdDep",
    "Role",
    "TokenHolderDep",
    "get_admin",
    "get_caller",
    "get_caller_id",
    "get_token_holder",
    "require",
]

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
TRADE_SCOPE = "trade"
WRITE_ROLES: tuple[Role, ...] = ("trader", "admin")

log = logging.getLogger("trademesh.http.caller")

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="accessToken",
    description="An access token (JWT, EdDSA) from the auth service.",
)


@dataclass(frozen=True)
class Caller:
    """The verified bearer of the request's access token."""

    user_id: UUID
    role: Role
    scopes: frozenset[str]
    token_id: str
    #: The raw access token, to forward to another service on the caller's behalf. Never log it.
    token: str = field(default="", repr=False, compare=False)

    def auth_headers(self) -> dict[str, str]:
        """`{"Authorization": "Bearer …"}` for a call made on this caller's behalf."""
        if not self.token:
            raise ValueError("this caller has no token to forward")
        return {"Authorization": f"Bearer {self.token}"}


def _no_token() -> ProblemError:
    return ProblemError(
        401,
        "No access token",
        "This needs an access token: Authorization: Bearer <token>.",
        type="/problems/unauthenticated",
        headers={"WWW-Authenticate": "Bearer"},
    )


async def get_token_holder(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """The bearer of a valid access token, whatever its role and scope (401 otherwise): for the
    few routes of one's own account that any user may change (auth's password and API keys).
    Everything else takes `get_caller`, which adds the rule for writes."""
    if credentials is None or not credentials.credentials:
        raise _no_token()
    verifier = getattr(request.app.state, "tokens", None)
    if not isinstance(verifier, TokenVerifier):
        log.error("no token verifier on this app: every caller is refused (create_http_app tokens)")
        raise ProblemError(
            401,
            "Access tokens cannot be verified",
            "This service has no token verifier configured; no caller is accepted.",
            type="/problems/unauthenticated",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    token = credentials.credentials
    claims = await verifier.verify(token)
    return Caller(claims.user_id, claims.role, claims.scopes, claims.token_id, token)


async def get_caller(
    request: Request, caller: Annotated[Caller, Depends(get_token_holder)]
) -> Caller:
    """The caller of the request, from its verified access token; 401/403 problems otherwise:
    changing anything (any method but GET, HEAD, OPTIONS) needs the trade scope and the trader
    or admin role."""
    if request.method not in READ_METHODS:
        if TRADE_SCOPE not in caller.scopes:
            raise ProblemError(
                403,
                "Forbidden",
                f"Changing anything needs the {TRADE_SCOPE!r} scope; this token lacks it.",
                type="/problems/forbidden",
                headers={
                    "WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{TRADE_SCOPE}"'
                },
            )
        require(caller, *WRITE_ROLES)
    return caller


async def get_caller_id(caller: Annotated[Caller, Depends(get_caller)]) -> UUID:
    return caller.user_id


def require(caller: Caller, *roles: Role) -> None:
    """403 problem unless the caller has one of `roles`."""
    if caller.role not in roles:
        raise ProblemError(
            403,
            "Forbidden",
            f"This needs the role {' or '.join(roles)}.",
            type="/problems/forbidden",
        )


async def get_admin(caller: Annotated[Caller, Depends(get_caller)]) -> UUID:
    require(caller, "admin")
    return caller.user_id


CallerDep = Annotated[Caller, Depends(get_caller)]
TokenHolderDep = Annotated[Caller, Depends(get_token_holder)]
CallerIdDep = Annotated[UUID, Depends(get_caller_id)]
AdminDep = Annotated[UUID, Depends(get_admin)]
