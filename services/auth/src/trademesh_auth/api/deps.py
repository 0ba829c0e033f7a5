"""What routes receive through FastAPI's dependency injection, as Annotated aliases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from trademesh_bus import Bus
from trademesh_db import Database
from trademesh_http import ProblemError
from trademesh_http.caller import Caller
from trademesh_http.tokens import TokenVerifier

from trademesh_auth.config import Settings
from trademesh_auth.signing import SigningKeys
from trademesh_auth.store import AuthStore
from trademesh_auth.users import Users


@dataclass(frozen=True)
class Runtime:
    """What the API's dependencies hand to routes (app.state.runtime)."""

    settings: Settings
    store: AuthStore
    users: Users
    keys: SigningKeys
    bus: Bus
    db: Database | None


def get_runtime(request: Request) -> Runtime:
    runtime = request.app.state.runtime
    assert isinstance(runtime, Runtime)
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
_bearer = HTTPBearer(auto_error=False)


async def get_account_holder(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """The caller, for the routes of one's own account (password, API keys): any valid access
    token, whatever its role or scope, as a viewer changes their password too. Everything else
    goes through trademesh_http.caller, where changing anything needs the trade scope."""
    if credentials is None or not credentials.credentials:
        raise ProblemError(
            401,
            "No access token",
            "This needs an access token: Authorization: Bearer <token>.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    verifier = request.app.state.tokens
    assert isinstance(verifier, TokenVerifier)
    claims = await verifier.verify(credentials.credentials)
    return Caller(
        claims.user_id, claims.role, claims.scopes, claims.token_id, credentials.credentials
    )


AccountHolderDep = Annotated[Caller, Depends(get_account_holder)]
