"""Who a request acts for: one place for every service, until the gateway's tokens (T6).

Until the auth service and the gateway exist, the caller is named by the X-User-Id header and
their role by X-User-Role. T6 replaces these functions with the verification of the access
token the gateway forwards (ARCHITECTURE.md: every service verifies tokens against the JWKS
itself). Every route that reads or changes a user's resources takes its user from here, and
only from here, never from a body.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal
from uuid import UUID

from fastapi import Depends, Header

from trademesh_http.problems import ProblemError

Role = Literal["admin", "trader", "viewer"]
ROLES: tuple[Role, ...] = ("admin", "trader", "viewer")


@dataclass(frozen=True)
class Caller:
    user_id: UUID
    role: Role


def get_caller(
    x_user_id: Annotated[
        str | None, Header(description="The calling user's id. Set by the gateway (T6).")
    ] = None,
    x_user_role: Annotated[
        str | None,
        Header(description="The caller's role (default viewer). Set by the gateway (T6)."),
    ] = None,
) -> Caller:
    if x_user_id is None:
        raise ProblemError(401, "No caller", "The X-User-Id header names the calling user.")
    try:
        user = UUID(x_user_id)
    except ValueError:
        raise ProblemError(401, "No caller", "X-User-Id must be a user id (a UUID).") from None
    role = x_user_role or "viewer"
    if role not in ROLES:
        raise ProblemError(401, "Unknown role", "X-User-Role is admin, trader or viewer.")
    return Caller(user, role)


def get_caller_id(caller: Annotated[Caller, Depends(get_caller)]) -> UUID:
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


def get_admin(caller: Annotated[Caller, Depends(get_caller)]) -> UUID:
    require(caller, "admin")
    return caller.user_id


CallerDep = Annotated[Caller, Depends(get_caller)]
CallerIdDep = Annotated[UUID, Depends(get_caller_id)]
AdminDep = Annotated[UUID, Depends(get_admin)]
