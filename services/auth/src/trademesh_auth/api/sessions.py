"""/api/v1/auth: register, log in, refresh, log out, change password, exchange an API key for an
access token; and the JWKS the services verify access tokens with (also at
/.well-known/jwks.json)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from trademesh_http import ProblemError
from trademesh_http.caller import AdminDep

from trademesh_auth.api.deps import AccountHolderDep, RuntimeDep
from trademesh_auth.engine import MAX_PASSWORD
from trademesh_auth.usecases.users import Tokens, require_account_scope

router = APIRouter(prefix="/auth", tags=["auth"])
wellknown = APIRouter(tags=["auth"])

Email = Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")


class Register(BaseModel):
    model_config = ConfigDict(extra="forbid")  # no role, no status: never from a body

    email: str = Email
    password: SecretStr = Field(description="8 to 128 characters; not a common password.")


class Login(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(min_length=1, max_length=254)
    password: SecretStr = Field(max_length=4 * MAX_PASSWORD)


class RefreshIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: SecretStr = Field(max_length=200)


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: SecretStr = Field(max_length=4 * MAX_PASSWORD)
    new_password: SecretStr


class ApiKeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api_key: SecretStr = Field(max_length=200)


class TokensOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str
    expires_in: int = Field(description="Seconds the access token lives.")


class AccessOut(BaseModel):
    access_token: str
    token_type: str = "Bearer"  # noqa: S105 (the OAuth token type, not a secret)
    expires_in: int


class UserOut(BaseModel):
    user_id: UUID
    email: str
    role: str
    status: str


def _tokens(tokens: Tokens) -> TokensOut:
    return TokensOut(
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        token_type=tokens.token_type,
        expires_in=tokens.expires_in,
    )


@router.post("/register", status_code=201, summary="Register (open, or awaiting approval)")
async def register(body: Register, runtime: RuntimeDep) -> UserOut:
    user = await runtime.users.register(body.email, body.password.get_secret_value())
    return UserOut(user_id=user.user_id, email=user.email, role=user.role, status=user.status)


@router.post("/login", summary="Log in: an access token and a refresh token")
async def login(body: Login, request: Request, runtime: RuntimeDep) -> TokensOut:
    # The client as the app resolved it: the connection's peer, or the address a trusted proxy
    # (the gateway; settings.trusted_proxies) forwarded.
    ip = request.client.host if request.client is not None else "unknown"
    return _tokens(await runtime.users.login(body.email, body.password.get_secret_value(), ip))


@router.post("/refresh", summary="A new access and refresh token; the old refresh token is spent")
async def refresh(body: RefreshIn, runtime: RuntimeDep) -> TokensOut:
    return _tokens(await runtime.users.refresh(body.refresh_token.get_secret_value()))


@router.post("/logout", status_code=204, summary="Revoke the session of this refresh token")
async def logout(body: RefreshIn, runtime: RuntimeDep) -> Response:
    await runtime.users.logout(body.refresh_token.get_secret_value())
    return Response(status_code=204)


@router.post("/password", status_code=204, summary="Change your password; other sessions end")
async def change_password(
    body: PasswordChange, caller: AccountHolderDep, runtime: RuntimeDep
) -> Response:
    require_account_scope(caller.scopes)
    await runtime.users.change_password(
        caller.user_id,
        body.current_password.get_secret_value(),
        body.new_password.get_secret_value(),
    )
    return Response(status_code=204)


@router.post("/token", summary="An access token for an API key (its scopes, minutes long)")
async def token_for_key(body: ApiKeyIn, runtime: RuntimeDep) -> AccessOut:
    token, ttl = await runtime.users.token_for_key(body.api_key.get_secret_value())
    return AccessOut(access_token=token, expires_in=ttl)


@router.get(
    "/revocations",
    summary="Revoked API keys and ended sessions whose tokens may still be alive (internal)",
)
async def revocations(runtime: RuntimeDep) -> dict[str, list[dict[str, Any]]]:
    """What every service's token verifier loads when it starts, before it follows
    auth.events.v1 (trademesh_http.revocations). Not a public route: the gateway's table does
    not publish it. It names key ids and user ids, never a secret."""
    return await runtime.users.revocations()


@router.get("/me", summary="Who you are")
async def me(caller: AccountHolderDep, runtime: RuntimeDep) -> UserOut:
    user = await runtime.store.user(caller.user_id)
    if user is None:
        raise ProblemError(404, "Unknown user")
    return UserOut(user_id=user.user_id, email=user.email, role=user.role, status=user.status)


@router.post("/signing-keys/rotate", summary="Rotate the token signing key (admin)")
async def rotate(admin: AdminDep, runtime: RuntimeDep) -> dict[str, str]:
    return {"kid": await runtime.keys.rotate()}


@router.get("/jwks", summary="The public keys that verify access tokens (JWKS)")
async def jwks(runtime: RuntimeDep, response: Response) -> dict[str, Any]:
    response.headers["Cache-Control"] = "public, max-age=60"
    return runtime.keys.jwks()


@wellknown.get("/.well-known/jwks.json", summary="The JWKS (RFC 8414 location)")
async def jwks_wellknown(runtime: RuntimeDep, response: Response) -> dict[str, Any]:
    response.headers["Cache-Control"] = "public, max-age=60"
    return runtime.keys.jwks()
