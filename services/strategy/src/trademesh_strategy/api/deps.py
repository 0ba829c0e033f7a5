"""What routes receive through FastAPI's dependency injection, as Annotated aliases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, Header, Request
from trademesh_bus import Bus
from trademesh_db import Database
from trademesh_http import ProblemError
from trademesh_trading.registry import StrategyRegistry

from trademesh_strategy.config import Settings
from trademesh_strategy.history import MarketData
from trademesh_strategy.runner import BotRuntime
from trademesh_strategy.store import BotStore


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
    backtests: Any  # trademesh_strategy.backtests.BacktestStore


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
    """The user a request acts for.

    Until the auth service and the gateway exist (T6) the caller is named by the X-User-Id
    header; T6 replaces this one function with the verification of the access token the
    gateway forwards (ARCHITECTURE.md: services verify tokens against the JWKS themselves).
    Every route that reads or changes a user's resources takes its user from here, and only
    from here, never from a body.
    """
    if x_user_id is None:
        raise ProblemError(401, "No caller", "The X-User-Id header names the calling user.")
    try:
        return UUID(x_user_id)
    except ValueError:
        raise ProblemError(401, "No caller", "X-User-Id must be a user id (a UUID).") from None


CallerDep = Annotated[UUID, Depends(get_caller)]
