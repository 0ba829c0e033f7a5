"""What routes receive through FastAPI's dependency injection, as Annotated aliases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Protocol, TypeVar
from uuid import UUID

from fastapi import Depends
from trademesh_bus import Bus
from trademesh_db import Database
from trademesh_events.ids import UserId
from trademesh_http import ProblemError
from trademesh_http.accounts import AccountOwners
from trademesh_http.caller import CallerDep as VerifiedCallerDep
from trademesh_http.caller import get_caller_id
from trademesh_service import runtime_dependency
from trademesh_trading.registry import StrategyRegistry

from trademesh_strategy.backtests.store import BacktestStore
from trademesh_strategy.config import Settings
from trademesh_strategy.history import MarketData
from trademesh_strategy.optimizations import OptimizationStore
from trademesh_strategy.store import BotStore
from trademesh_strategy.usecases.approvals import ApprovalDesk
from trademesh_strategy.usecases.runner import BotRuntime


@dataclass(frozen=True)
class Runtime:
    """What the API's dependencies hand to routes (app.state.runtime)."""

    settings: Settings
    bus: Bus
    db: Database | None
    registry: StrategyRegistry
    market: MarketData
    bots: BotStore
    runtime: BotRuntime
    backtests: BacktestStore
    accounts: AccountOwners
    optimizations: OptimizationStore
    approvals: ApprovalDesk


get_runtime = runtime_dependency(Runtime)
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


# The caller's user id, from their verified access token: a UserId from here on.
CallerDep = Annotated[UserId, Depends(get_caller_id)]
# The whole verified caller, for a call made on their behalf (caller.auth_headers() forwards the
# access token; never log it). Same dependency as CallerDep's: verified once per request.
OnBehalfDep = VerifiedCallerDep


class Owned(Protocol):
    @property
    def user_id(self) -> UserId: ...


OwnedT = TypeVar("OwnedT", bound=Owned)


def owned(record: OwnedT | None, caller: UserId, kind: str, ident: UUID) -> OwnedT:
    """`record` (read already) if it is the caller's; else the 404 of an unknown `kind`: another
    user's backtest, grid or optimisation does not exist for the caller."""
    if record is None or record.user_id != caller:
        raise ProblemError(404, f"Unknown {kind}", f"No {kind} {ident}.")
    return record
