"""What routes receive through FastAPI's dependency injection, as Annotated aliases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from trademesh_bus import Bus
from trademesh_db import Database
from trademesh_http.caller import Caller, CallerDep, require
from trademesh_service import runtime_dependency

from trademesh_audit.config import Settings
from trademesh_audit.keys import ChainKeys
from trademesh_audit.store import AuditStore
from trademesh_audit.usecases.checkpoints import CheckpointBook, Checkpointer


@dataclass(frozen=True)
class Runtime:
    """What the API's dependencies hand to routes (app.state.runtime)."""

    settings: Settings
    store: AuditStore
    keys: ChainKeys
    book: CheckpointBook
    checkpointer: Checkpointer
    bus: Bus
    db: Database | None


get_runtime = runtime_dependency(Runtime)


async def get_store(runtime: Annotated[Runtime, Depends(get_runtime)]) -> AuditStore:
    return runtime.store


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
StoreDep = Annotated[AuditStore, Depends(get_store)]

__all__ = [
    "Caller",
    "CallerDep",
    "Runtime",
    "RuntimeDep",
    "StoreDep",
    "get_runtime",
    "get_store",
    "require",
]
