"""What routes receive through FastAPI's dependency injection, as Annotated aliases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal
from uuid import UUID

from fastapi import Depends, Header, Request
from trademesh_bus import Bus
from trademesh_db import Database
from trademesh_http import ProblemError

from trademesh_risk.config import Settings
from trademesh_risk.decider import Decider
from trademesh_risk.prices import PriceBook
from trademesh_risk.store import RiskStore


@dataclass(frozen=True)
class Runtime:
    """What the API's dependencies hand to routes (app.state.runtime)."""

    settings: Settings
    bus: Bus
    db: Database | None
    store: RiskStore
    decider: Decider
    prices: PriceBook


def get_runtime(request: Request) -> Runtime:
    runtime = request.app.state.runtime
    assert isinstance(runtime, Runtime)
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]

Role = Literal["admin", "trader", "viewer"]


@dataclass(frozen=True)
class Caller:
    user_id: UUID
    role: Role


def get_caller(
    x_user_id: Annotated[str | None, Header(description="Set by the gateway (T6).")] = None,
    x_user_role: Annotated[str | None, Header(description="Set by the gateway (T6).")] = None,
) -> Caller:
    """The user a request acts for, and their role.

    Until the auth service and the gateway exist (T6) they come from the X-User-Id and
    X-User-Role headers; T6 replaces this one function with the verification of the caller's
    access token. Which accounts a user owns is execution's to know: the gateway checks it
    before it forwards a request about an account (T6)."""
    if x_user_id is None:
        raise ProblemError(401, "No caller", "The X-User-Id header names the calling user.")
    try:
        user = UUID(x_user_id)
    except ValueError:
        raise ProblemError(401, "No caller", "X-User-Id must be a user id (a UUID).") from None
    role = x_user_role or "viewer"
    if role not in ("admin", "trader", "viewer"):
        raise ProblemError(401, "Unknown role", "X-User-Role is admin, trader or viewer.")
    return Caller(user, role)  # type: ignore[arg-type]


CallerDep = Annotated[Caller, Depends(get_caller)]


def require(caller: Caller, *roles: Role) -> None:
    if caller.role not in roles:
        raise ProblemError(
            403,
            "Forbidden",
            f"This needs the role {' or '.join(roles)}.",
            type="/problems/forbidden",
        )
