"""What routes receive through FastAPI's dependency injection, as Annotated aliases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from trademesh_bus import Bus
from trademesh_db import Database
from trademesh_events.ids import AccountId, UserId
from trademesh_http import ProblemError
from trademesh_http.caller import get_admin, get_caller_id
from trademesh_service import runtime_dependency

from trademesh_execution.config import Settings
from trademesh_execution.credentials import CredentialVault
from trademesh_execution.store import AccountRow, ExecutionStore
from trademesh_execution.streams import OrderStreams
from trademesh_execution.usecases.balances import BalanceRefresher
from trademesh_execution.usecases.equity import EquitySampler
from trademesh_execution.usecases.live import LiveOrders
from trademesh_execution.usecases.orders import Orders
from trademesh_execution.usecases.reconcile import Reconciler


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
    reconciler: Reconciler
    streams: OrderStreams
    balances: BalanceRefresher


get_runtime = runtime_dependency(Runtime)
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


# The caller's user id, from a verified token (trademesh_http.caller): a UserId from here on.
CallerDep = Annotated[UserId, Depends(get_caller_id)]
AdminDep = Annotated[UserId, Depends(get_admin)]


async def own_account(runtime: Runtime, account_id: AccountId, caller: UserId) -> AccountRow:
    """The caller's account; another user's account does not exist for the caller (404)."""
    return owned(await runtime.store.account(account_id), account_id, caller)


def owned(account: AccountRow | None, account_id: AccountId, caller: UserId) -> AccountRow:
    """`account` (read already) if it is the caller's; else the 404 of an unknown account."""
    if account is None or account.user_id != caller:
        raise ProblemError(404, "Unknown account", f"No account {account_id}.")
    return account
