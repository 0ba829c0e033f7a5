"""What routes receive through FastAPI's dependency injection, as Annotated aliases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from trademesh_bus import Bus
from trademesh_db import Database
from trademesh_service import runtime_dependency

from trademesh_gateway.config import Settings
from trademesh_gateway.proxy import Proxy
from trademesh_gateway.usecases.streams import EventHub


@dataclass(frozen=True)
class Runtime:
    """What the API's dependencies hand to routes (app.state.runtime)."""

    settings: Settings
    proxy: Proxy
    hub: EventHub
    bus: Bus
    db: Database | None


get_runtime = runtime_dependency(Runtime)
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
