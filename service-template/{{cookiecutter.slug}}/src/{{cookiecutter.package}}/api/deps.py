"""What routes receive through FastAPI's dependency injection, as Annotated aliases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from trademesh_bus import Bus
from trademesh_db import Database
from trademesh_service import runtime_dependency

from {{ cookiecutter.package }}.config import Settings
from {{ cookiecutter.package }}.store import ActivityStore
from {{ cookiecutter.package }}.usecases.activity import ActivityLog


@dataclass(frozen=True)
class Runtime:
    """What the API's dependencies hand to routes (app.state.runtime)."""

    settings: Settings
    store: ActivityStore
    activity: ActivityLog
    bus: Bus
    db: Database | None


get_runtime = runtime_dependency(Runtime)


async def get_store(runtime: Annotated[Runtime, Depends(get_runtime)]) -> ActivityStore:
    return runtime.store


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
StoreDep = Annotated[ActivityStore, Depends(get_store)]
