"""What routes receive through FastAPI's dependency injection, as Annotated aliases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from trademesh_bus import Bus
from trademesh_db import Database
from trademesh_service import runtime_dependency

from trademesh_notify.config import Settings
from trademesh_notify.usecases.channels import Channels
from trademesh_notify.usecases.deliveries import Deliveries


@dataclass(frozen=True)
class Runtime:
    """What the API's dependencies hand to routes (app.state.runtime)."""

    settings: Settings
    channels: Channels
    deliveries: Deliveries
    bus: Bus
    db: Database | None


get_runtime = runtime_dependency(Runtime)


async def get_channels(runtime: Annotated[Runtime, Depends(get_runtime)]) -> Channels:
    return runtime.channels


async def get_deliveries(runtime: Annotated[Runtime, Depends(get_runtime)]) -> Deliveries:
    return runtime.deliveries


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
ChannelsDep = Annotated[Channels, Depends(get_channels)]
DeliveriesDep = Annotated[Deliveries, Depends(get_deliveries)]
