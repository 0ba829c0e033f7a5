"""What routes receive through FastAPI's dependency injection, as Annotated aliases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from trademesh_bus import Bus
from trademesh_db import Database
from trademesh_http.accounts import AccountOwners
from trademesh_http.caller import Caller, CallerDep, require
from trademesh_service import runtime_dependency

from trademesh_risk.config import Settings
from trademesh_risk.store import RiskStore
from trademesh_risk.usecases.decider import Decider
from trademesh_risk.usecases.prices import PriceBook
from trademesh_risk.venue_rules import VenueRules


@dataclass(frozen=True)
class Runtime:
    """What the API's dependencies hand to routes (app.state.runtime)."""

    settings: Settings
    bus: Bus
    db: Database | None
    store: RiskStore
    decider: Decider
    prices: PriceBook
    venue_rules: VenueRules
    accounts: AccountOwners


get_runtime = runtime_dependency(Runtime)
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]

__all__ = ["Caller", "CallerDep", "Runtime", "RuntimeDep", "get_runtime", "require"]
