"""What routes receive through FastAPI's dependency injection, as Annotated aliases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from trademesh_bus import Bus
from trademesh_db import Database
from trademesh_http.caller import TokenHolderDep
from trademesh_service import runtime_dependency

from trademesh_auth.config import Settings
from trademesh_auth.signing import SigningKeys
from trademesh_auth.store import AuthStore
from trademesh_auth.usecases.users import Users


@dataclass(frozen=True)
class Runtime:
    """What the API's dependencies hand to routes (app.state.runtime)."""

    settings: Settings
    store: AuthStore
    users: Users
    keys: SigningKeys
    bus: Bus
    db: Database | None


get_runtime = runtime_dependency(Runtime)
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


# Password and API keys are one's own account: any valid token may change them, a viewer's too.
AccountHolderDep = TokenHolderDep
