"""What routes receive through FastAPI's dependency injection, as Annotated aliases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from trademesh_bus import Bus
from trademesh_db import Database
from trademesh_service import runtime_dependency

from trademesh_market_data.catalog import Catalog
from trademesh_market_data.config import Settings
from trademesh_market_data.tickstore import TickStore
from trademesh_market_data.usecases.manager import FeedManager


@dataclass(frozen=True)
class Runtime:
    """What the API's dependencies hand to routes (app.state.runtime)."""

    settings: Settings
    bus: Bus
    db: Database | None
    catalog: Catalog
    store: TickStore
    feeds: FeedManager


get_runtime = runtime_dependency(Runtime)
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_catalog(runtime: RuntimeDep) -> Catalog:
    return runtime.catalog


async def get_store(runtime: RuntimeDep) -> TickStore:
    return runtime.store


async def get_feeds(runtime: RuntimeDep) -> FeedManager:
    return runtime.feeds


CatalogDep = Annotated[Catalog, Depends(get_catalog)]
StoreDep = Annotated[TickStore, Depends(get_store)]
FeedsDep = Annotated[FeedManager, Depends(get_feeds)]
