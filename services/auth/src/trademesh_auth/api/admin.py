"""/api/v1/users (admin): list users, approve, disable and enable them, change their role; and
/api/v1/api-keys: the caller's own API keys (made, listed without their secret, revoked)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from trademesh_http.caller import AdminDep

from trademesh_auth.api.deps import AccountHolderDep, RuntimeDep
from trademesh_auth.api.sessions import UserOut
from trademesh_auth.store import ApiKey, User

users = APIRouter(prefix="/users", tags=["users"])
keys = APIRouter(prefix="/api-keys", tags=["api keys"])


def _user(user: User) -> UserOut:
    return UserOut(user_id=user.user_id, email=user.email, role=user.role, status=user.status)


@users.get("", summary="Users, by id (admin)")
async def list_users(
    admin: AdminDep,
    runtime: RuntimeDep,
    after: UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[UserOut]:
    return [_user(u) for u in await runtime.store.users(limit, after)]


@users.post("/{user_id}/approve", summary="Approve a registered user (admin)")
async def approve(user_id: UUID, admin: AdminDep, runtime: RuntimeDep) -> UserOut:
    return _user(await runtime.users.set_status(admin, user_id, "active"))


@users.post("/{user_id}/disable", summary="Disable a user: sessions and API keys revoked (admin)")
async def disable(user_id: UUID, admin: AdminDep, runtime: RuntimeDep) -> UserOut:
    return _user(await runtime.users.set_status(admin, user_id, "disabled"))


@users.post("/{user_id}/enable", summary="Enable a disabled user again (admin)")
async def enable(user_id: UUID, admin: AdminDep, runtime: RuntimeDep) -> UserOut:
    return _user(await runtime.users.set_status(admin, user_id, "active"))


class RoleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["admin", "trader", "viewer"]


@users.put("/{user_id}/role", summary="Change a user's role (admin)")
async def set_role(user_id: UUID, body: RoleIn, admin: AdminDep, runtime: RuntimeDep) -> UserOut:
    return _user(await runtime.users.set_role(admin, user_id, body.role))


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    scopes: list[Literal["read", "trade"]] = Field(min_length=1, max_length=2)
    expires_in_days: int | None = Field(None, ge=1, le=3650)


class KeyOut(BaseModel):
    key_id: str
    name: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class NewKeyOut(KeyOut):
    api_key: str = Field(description="The key itself: shown this once, never again.")


def _key(key: ApiKey) -> KeyOut:
    return KeyOut(
        key_id=key.key_id,
        name=key.name,
        scopes=list(key.scopes),
        created_at=key.created_at,
        expires_at=key.expires_at,
        revoked_at=key.revoked_at,
        last_used_at=key.last_used_at,
    )


@keys.post("", status_code=201, summary="Make an API key (shown once)")
async def create_key(body: KeyIn, caller: AccountHolderDep, runtime: RuntimeDep) -> NewKeyOut:
    ttl = timedelta(days=body.expires_in_days) if body.expires_in_days else None
    key, whole = await runtime.users.create_key(
        caller.user_id, body.name, body.scopes, ttl, tuple(caller.scopes)
    )
    return NewKeyOut(**_key(key).model_dump(), api_key=whole)


@keys.get("", summary="Your API keys (never their secret)")
async def list_keys(caller: AccountHolderDep, runtime: RuntimeDep) -> list[KeyOut]:
    return [_key(k) for k in await runtime.store.keys_of(caller.user_id)]


@keys.delete("/{key_id}", status_code=204, summary="Revoke one of your API keys")
async def revoke_key(key_id: str, caller: AccountHolderDep, runtime: RuntimeDep) -> Response:
    await runtime.users.revoke_key(caller.user_id, key_id, tuple(caller.scopes))
    return Response(status_code=204)
