"""What routes receive through FastAPI's dependency injection, as Annotated aliases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from uuid import UUID

from fastapi import Depends, Header, Request
from trademesh_bus import Bus
from trademesh_db import Database
from trademesh_http import ProblemError

from trademesh_execution.config import Settings
from trademesh_execution.credentials import CredentialVault
from trademesh_execution.equity import EquitySampler
from trademesh_execution.live import LiveOrders
from trademesh_execution.orders import Orders
from trademesh_execution.store import AccountRow, ExecutionStore


@dataclass(frozen=True)
class Runtime:
    """What the API's dependencies hand to routes (app.state.runtime)."""

    settings: Settings
    bus: Bus
    db: Database | None
    store: ExecutionStore
    orders: Orders
    credentials: CredentialVault
    equity: EquitySampler
    live: LiveOrders


def get_runtime(request: Request) -> Runtime:
    runtime = request.app.state.runtime
    assert isinstance(runtime, Runtime)
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_caller(
    x_user_id: Annotated[
        str | None,
        Header(description="The calling user's id. Set by the gateway (T6) from a verified token."),
    ] = None,
) -> UUID:
    """The user a request acts for. Until T6 it is the X-User-Id header; T6 replaces this one
    function with the verification of the caller's access token."""
    if x_user_id is None:
        raise ProblemError(401, "No caller", "The X-User-Id header names the calling user.")
    try:
        return UUID(x_user_id)
    except ValueError:
        raise ProblemError(401, "No caller", "X-User-Id must be a user id (a UUID).") from None


CallerDep = Annotated[UUID, Depends(get_caller)]


def require_admin(
    caller: CallerDep,
    x_user_role: Annotated[str | None, Header(description="Set by the gateway (T6).")] = None,
) -> UUID:
    """An admin caller (until T6, named by the X-User-Role header)."""
    if x_user_role != "admin":
        raise ProblemError(
            403, "Forbidden", "This needs the role admin.", type="/problems/forbidden"
        )
    return caller


AdminDep = Annotated[UUID, Depends(require_admin)]


async def own_account(runtime: Runtime, account_id: UUID, caller: UUID) -> AccountRow:
    """The caller's account; another user's account does not exist for the caller (404)."""
    account = await runtime.store.account(account_id)
    if account is None or account.user_id != caller:
        raise ProblemError(404, "Unknown account", f"No account {account_id}.")
    return account
