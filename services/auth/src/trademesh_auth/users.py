"""What auth does: registration, login (throttled), token refresh with reuse detection, logout,
password changes, API keys, and the administration of users. Every change and the auth event it
causes commit together (outbox). Failures are RFC 9457 problems that never say whether an
e-mail address is registered, and no event or log line carries a password, token, key or full
e-mail address (events mask it: `a***@example.com`).
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from trademesh_bus.outbox import Outbox
from trademesh_db import Database
from trademesh_events import auth as events
from trademesh_events.ids import UserId
from trademesh_http import ProblemError
from trademesh_observability.logging import get_logger

from trademesh_auth.config import Settings
from trademesh_auth.engine import (
    Role,
    Scope,
    Throttle,
    ThrottleRule,
    access_claims,
    api_key_hash,
    new_api_key,
    new_secret,
    normalise_email,
    parse_api_key,
    password_problem,
    retry_after,
    same_hash,
    scopes_of,
    secret_hash,
)
from trademesh_auth.signing import SigningKeys
from trademesh_auth.store import ApiKey, AuthStore, User

log = get_logger("trademesh_auth.users")

_BAD_LOGIN = ProblemError(
    401, "Login failed", "Unknown e-mail address or wrong password.", type="/problems/login-failed"
)


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "Bearer"  # noqa: S105 (the OAuth token type, not a secret)


def hasher(settings: Settings) -> PasswordHasher:
    """Argon2id at (at least) RFC 9106's low-memory profile: 3 passes, 64 MiB, 4 lanes."""
    return PasswordHasher(
        time_cost=settings.argon2_time_cost,
        memory_cost=settings.argon2_memory_kib,
        parallelism=settings.argon2_parallelism,
    )


class Users:
    def __init__(
        self,
        *,
        db: Database,
        store: AuthStore,
        outbox: Outbox,
        keys: SigningKeys,
        settings: Settings,
        clock: Callable[[], datetime],
    ) -> None:
        self.db = db
        self.store = store
        self.outbox = outbox
        self.keys = keys
        self.settings = settings
        self.clock = clock
        self.hasher = hasher(settings)
        # Verified against when the e-mail is unknown, so that an unknown address takes as
        # long as a wrong password.
        self._dummy = self.hasher.hash(new_secret())
        self.throttle = Throttle(
            per_ip=ThrottleRule(
                settings.throttle_ip_threshold,
                timedelta(seconds=1),
                timedelta(seconds=settings.throttle_ip_cap_s),
            ),
            per_user_ip=ThrottleRule(
                settings.throttle_user_ip_threshold,
                timedelta(seconds=1),
                timedelta(seconds=settings.throttle_user_ip_cap_s),
            ),
            per_user=ThrottleRule(
                settings.throttle_user_threshold,
                timedelta(seconds=1),
                timedelta(seconds=settings.throttle_user_cap_s),
            ),
            window=timedelta(seconds=settings.throttle_window_s),
        )

    # ---- passwords ----------------------------------------------------------------------------

    async def _hash(self, password: str) -> str:
        return await asyncio.to_thread(self.hasher.hash, password)

    async def _verify(self, stored: str, password: str) -> bool:
        try:
            return await asyncio.to_thread(self.hasher.verify, stored, password)
        except (VerificationError, InvalidHashError):
            return False

    @staticmethod
    def _check(password: str, email: str | None) -> None:
        problem = password_problem(password, email)
        if problem is not None:
            raise ProblemError(422, "Password refused", problem, type="/problems/password")

    # ---- tokens -------------------------------------------------------------------------------

    def _access(self, user: User, scopes: Sequence[Scope] | None = None) -> str:
        claims = access_claims(
            user_id=user.user_id,
            role=user.role,
            scopes=scopes_of(user.role, scopes),
            now=self.clock(),
            ttl=timedelta(seconds=self.settings.access_ttl_s),
            issuer=self.settings.auth_issuer,
            audience=self.settings.auth_audience,
            token_id=uuid.uuid4().hex,
        )
        return self.keys.sign(claims)

    async def _issue(self, conn: Any, user: User, family: UUID | None = None) -> Tokens:
        refresh = new_secret()
        now = self.clock()
        await self.store.add_refresh(
            conn,
            secret_hash(refresh),
            family or uuid.uuid4(),
            user.user_id,
            now,
            now + timedelta(seconds=self.settings.refresh_ttl_s),
        )
        return Tokens(self._access(user), refresh, self.settings.access_ttl_s)

    # ---- registration and users ---------------------------------------------------------------

    async def register(
        self, email: str, password: str, *, role: Role | None = None, active: bool | None = None
    ) -> User:
        address = normalise_email(email)
        self._check(password, address)
        status = "active" if (active or self.settings.registration == "open") else "pending"
        user = User(
            uuid.uuid4(),
            address,
            await self._hash(password),
            role or self.settings.default_role,
            status,
            self.clock(),
        )
        async with self.db.transaction() as conn:
            if not await self.store.add_user(conn, user):
                raise ProblemError(
                    409, "Already registered", "An account with this e-mail address exists."
                )
            await self.outbox.add(
                conn,
                events.UserRegistered(
                    user_id=UserId(user.user_id),
                    email=events.mask_email(address),
                    role=events.Role(user.role),
                    ts=user.created_at,
                ),
            )
        log.info("user registered", user_id=str(user.user_id), status=status, role=user.role)
        return user

    async def login(self, email: str, password: str, ip: str) -> Tokens:
        address = normalise_email(email)
        user = await self.store.user_by_email(address)
        keys = {"ip": f"ip:{ip}"}
        if user is not None:
            keys["user_ip"] = f"user_ip:{user.user_id}|{ip}"
            keys["user"] = f"user:{user.user_id}"
        stored = await self.store.failures(list(keys.values()))
        now = self.clock()
        wait = retry_after(self.throttle, {k: stored.get(v) for k, v in keys.items()}, now)
        if wait > timedelta(0):
            await self._failed(user, address, events.LoginFailure.THROTTLED, [])
            seconds = max(1, math.ceil(wait.total_seconds()))
            raise ProblemError(
                429,
                "Too many failed logins",
                f"Try again in {seconds} s.",
                type="/problems/login-throttled",
                headers={"Retry-After": str(seconds)},
            )
        good = await self._verify(user.password_hash if user else self._dummy, password)
        if user is None or not good:
            reason = (
                events.LoginFailure.UNKNOWN_USER
                if user is None
                else events.LoginFailure.BAD_CREDENTIALS
            )
            await self._failed(user, address, reason, list(keys.values()))
            raise _BAD_LOGIN
        if user.status != "active":
            await self._failed(user, address, events.LoginFailure.DISABLED, [])
            detail = (
                "Your account awaits an administrator's approval."
                if user.status == "pending"
                else "Your account is disabled."
            )
            raise ProblemError(403, "Account not active", detail, type="/problems/inactive")
        async with self.db.transaction() as conn:
            await self.store.clear(conn, [keys["user"], keys["user_ip"]])
            if self.hasher.check_needs_rehash(user.password_hash):
                await self.store.update_user(
                    conn, user.user_id, now, password_hash=await self._hash(password)
                )
            tokens = await self._issue(conn, user)
            await self.outbox.add(
                conn,
                events.UserLoggedIn(user_id=UserId(user.user_id), method="password", ts=now),
            )
        return tokens

    async def _failed(
        self,
        user: User | None,
        address: str,
        reason: events.LoginFailure,
        count: list[str],
    ) -> None:
        now = self.clock()
        async with self.db.transaction() as conn:
            if count:
                await self.store.fail(conn, count, now, self.settings.throttle_window_s)
            await self.outbox.add(
                conn,
                events.LoginFailed(
                    user_id=UserId(user.user_id) if user is not None else None,
                    email=events.mask_email(address),
                    reason=reason,
                    ts=now,
                ),
            )
        log.info("login failed", reason=reason.value, email=events.mask_email(address))

    async def refresh(self, token: str) -> Tokens:
        """A new access and refresh token for a refresh token, used once. A token used a second
        time was copied: its whole family (every token descended from the same login) is
        revoked, the thief's and the user's alike, and the user logs in again."""
        now = self.clock()
        async with self.db.transaction() as conn:
            row = await self.store.refresh_token(conn, secret_hash(token))
            if row is None or row["revoked_at"] is not None or row["expires_at"] <= now:
                raise ProblemError(401, "Invalid refresh token", type="/problems/refresh")
            if row["used_at"] is not None:
                revoked = await self.store.revoke_family(conn, row["family_id"], now)
                log.warning(
                    "refresh token reused: its family is revoked",
                    user_id=str(row["user_id"]),
                    revoked=revoked,
                )
                # Committed with this transaction, then refused.
                failure = ProblemError(
                    401,
                    "Refresh token reused",
                    "This refresh token was used before: every session it belongs to is "
                    "revoked. Log in again.",
                    type="/problems/refresh-reused",
                )
            else:
                failure = None
                user = await self.store.user(row["user_id"], conn)
                if user is None or user.status != "active":
                    raise ProblemError(401, "Invalid refresh token", type="/problems/refresh")
                await self.store.use_refresh(conn, secret_hash(token), now)
                tokens = await self._issue(conn, user, row["family_id"])
                await self.outbox.add(
                    conn,
                    events.UserLoggedIn(user_id=UserId(user.user_id), method="refresh", ts=now),
                )
        if failure is not None:
            raise failure
        return tokens

    async def logout(self, token: str) -> None:
        """The refresh token's whole family is revoked (its access tokens expire on their own,
        within minutes)."""
        async with self.db.transaction() as conn:
            row = await self.store.refresh_token(conn, secret_hash(token))
            if row is not None:
                await self.store.revoke_family(conn, row["family_id"], self.clock())

    async def change_password(self, user_id: UUID, current: str, new: str) -> None:
        user = await self.store.user(user_id)
        if user is None or not await self._verify(user.password_hash, current):
            raise ProblemError(403, "Wrong password", "The current password is not right.")
        self._check(new, user.email)
        async with self.db.transaction() as conn:
            now = self.clock()
            await self.store.update_user(conn, user_id, now, password_hash=await self._hash(new))
            await self.store.revoke_user_tokens(conn, user_id, now)  # every other session ends

    # ---- administration -----------------------------------------------------------------------

    async def set_status(self, admin: UUID, user_id: UUID, status: str) -> User:
        now = self.clock()
        async with self.db.transaction() as conn:
            user = await self.store.user(user_id, conn, lock=True)
            if user is None:
                raise ProblemError(404, "Unknown user")
            if user_id == admin and status == "disabled":
                raise ProblemError(409, "Not yourself", "An admin cannot disable themselves.")
            await self.store.update_user(conn, user_id, now, status=status)
            if status == "disabled":
                await self.store.revoke_user_tokens(conn, user_id, now)
                for key_id in await self.store.revoke_user_keys(conn, user_id, now):
                    await self.outbox.add(
                        conn,
                        events.ApiKeyRevoked(user_id=UserId(user_id), key_id=key_id, ts=now),
                    )
                await self.outbox.add(
                    conn,
                    events.UserDisabled(user_id=UserId(user_id), disabled_by=UserId(admin), ts=now),
                )
        found = await self.store.user(user_id)
        assert found is not None
        return found

    async def set_role(self, admin: UUID, user_id: UUID, role: Role) -> User:
        now = self.clock()
        async with self.db.transaction() as conn:
            user = await self.store.user(user_id, conn, lock=True)
            if user is None:
                raise ProblemError(404, "Unknown user")
            if user_id == admin and role != "admin":
                raise ProblemError(409, "Not yourself", "An admin cannot demote themselves.")
            if user.role != role:
                await self.store.update_user(conn, user_id, now, role=role)
                # Refresh tokens carry no role, but the new role must not wait for them: the
                # user logs in again.
                await self.store.revoke_user_tokens(conn, user_id, now)
                await self.outbox.add(
                    conn,
                    events.RoleChanged(
                        user_id=UserId(user_id),
                        old_role=events.Role(user.role),
                        new_role=events.Role(role),
                        changed_by=UserId(admin),
                        ts=now,
                    ),
                )
        found = await self.store.user(user_id)
        assert found is not None
        return found

    # ---- API keys -----------------------------------------------------------------------------

    async def create_key(
        self,
        user_id: UUID,
        name: str,
        scopes: Sequence[Scope],
        ttl: timedelta | None,
        caller_scopes: Sequence[str],
    ) -> tuple[ApiKey, str]:
        """A new key with `scopes`: no more than the user's role allows, nor than the token
        asking for it has (a read-only key's token cannot make a trading key)."""
        user = await self.store.user(user_id)
        if user is None or user.status != "active":
            raise ProblemError(404, "Unknown user")
        allowed = tuple(s for s in scopes_of(user.role, scopes) if s in caller_scopes)
        if set(scopes) - set(allowed):
            raise ProblemError(
                403,
                "Scope not allowed",
                f"This token (a {user.role}'s, scopes {' '.join(caller_scopes)}) cannot make a "
                f"key with the scopes {' '.join(scopes)}.",
            )
        limit = timedelta(days=self.settings.api_key_max_ttl_days)
        ttl = ttl or limit
        if ttl > limit:
            raise ProblemError(
                422,
                "Too long",
                f"An API key lives at most {limit.days} days.",
                type="/problems/ttl",
            )
        key_id, whole = new_api_key()
        now = self.clock()
        key = ApiKey(
            key_id, user_id, name, api_key_hash(whole), tuple(allowed), now, now + ttl, None, None
        )
        async with self.db.transaction() as conn:
            await self.store.add_key(conn, key)
            await self.outbox.add(
                conn,
                events.ApiKeyCreated(
                    user_id=UserId(user_id),
                    key_id=key_id,
                    scopes=tuple(allowed),
                    expires_at=key.expires_at,
                    ts=now,
                ),
            )
        return key, whole

    async def revoke_key(self, user_id: UUID, key_id: str) -> None:
        key = await self.store.key(key_id)
        if key is None or key.user_id != user_id:
            raise ProblemError(404, "Unknown API key")
        if key.revoked_at is not None:
            return
        now = self.clock()
        async with self.db.transaction() as conn:
            await self.store.revoke_key(conn, key_id, now)
            await self.outbox.add(
                conn, events.ApiKeyRevoked(user_id=UserId(user_id), key_id=key_id, ts=now)
            )

    async def token_for_key(self, whole: str) -> tuple[str, int]:
        """A short-lived access token for a valid API key, with the key's scopes: what the
        gateway forwards for a programmatic client."""
        parsed = parse_api_key(whole)
        key = await self.store.key(parsed[0]) if parsed is not None else None
        now = self.clock()
        if (
            key is None
            or not same_hash(key.key_hash, api_key_hash(whole))
            or key.revoked_at is not None
            or (key.expires_at is not None and key.expires_at <= now)
        ):
            raise ProblemError(401, "Invalid API key", type="/problems/api-key")
        user = await self.store.user(key.user_id)
        if user is None or user.status != "active":
            raise ProblemError(401, "Invalid API key", type="/problems/api-key")
        await self.store.key_used(key.key_id, now)
        scopes: list[Scope] = [s for s in ("read", "trade") if s in key.scopes]
        return self._access(user, scopes), self.settings.access_ttl_s
