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
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from uuid import UUID

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from trademesh_bus.outbox import Outbox
from trademesh_db import Database
from trademesh_events import auth as events
from trademesh_events.ids import UserId
from trademesh_http import ProblemError
from trademesh_http.revocations import Revocations, RevokedKey, RevokedSessions
from trademesh_observability.logging import get_logger

from trademesh_auth.config import Settings
from trademesh_auth.engine import (
    ACCOUNT_SCOPE,
    KeyScope,
    Role,
    Throttle,
    ThrottleRule,
    access_claims,
    api_key_hash,
    key_scopes,
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
        revocations: Revocations | None = None,
    ) -> None:
        self.db = db
        #: This process's own set (its token verifier's): a revocation made here is refused
        #: here at once; other processes hear of it on auth.events.v1.
        self.revoked = revocations
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

    def _access(self, user: User, key: ApiKey | None = None) -> str:
        """An access token of a password session (every scope of the user's role), or of an API
        key (the key's scopes within the role's, and its id)."""
        claims = access_claims(
            user_id=user.user_id,
            role=user.role,
            scopes=scopes_of(user.role) if key is None else key_scopes(user.role, key.scopes),
            now=self.clock(),
            ttl=timedelta(seconds=self.settings.access_ttl_s),
            issuer=self.settings.auth_issuer,
            audience=self.settings.auth_audience,
            token_id=uuid.uuid4().hex,
            session_version=user.session_version,
            key_id=None if key is None else key.key_id,
        )
        return self.keys.sign(claims)

    async def _end_sessions(
        self,
        conn: Any,
        user_id: UUID,
        now: datetime,
        reason: Literal["disabled", "role_changed", "password_changed"],
    ) -> RevokedSessions:
        """Every access and refresh token of the user stops working: the version rises, and
        the event says so to every service (in the caller's transaction)."""
        version = await self.store.end_sessions(conn, user_id, now)
        await self.outbox.add(
            conn,
            events.SessionsRevoked(
                user_id=UserId(user_id), session_version=version, reason=reason, ts=now
            ),
        )
        return RevokedSessions(user_id, version, now.timestamp())

    def _revoked_here(self, *revocations: RevokedKey | RevokedSessions) -> None:
        """After the commit: this process refuses at once what it has just revoked."""
        if self.revoked is not None:
            for revocation in revocations:
                self.revoked.add(revocation)

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
        """The new password; every session ends, the caller's too (a thief holding a token or
        a refresh token is cut off at once): the user logs in again with the new password."""
        user = await self.store.user(user_id)
        if user is None or not await self._verify(user.password_hash, current):
            raise ProblemError(403, "Wrong password", "The current password is not right.")
        self._check(new, user.email)
        async with self.db.transaction() as conn:
            now = self.clock()
            await self.store.update_user(conn, user_id, now, password_hash=await self._hash(new))
            ended = await self._end_sessions(conn, user_id, now, "password_changed")
        self._revoked_here(ended)

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
            revoked: list[RevokedKey | RevokedSessions] = []
            if status == "disabled" and user.status != "disabled":
                revoked.append(await self._end_sessions(conn, user_id, now, "disabled"))
                for key_id in await self.store.revoke_user_keys(conn, user_id, now):
                    await self.outbox.add(
                        conn,
                        events.ApiKeyRevoked(user_id=UserId(user_id), key_id=key_id, ts=now),
                    )
                    revoked.append(RevokedKey(key_id, now.timestamp()))
                await self.outbox.add(
                    conn,
                    events.UserDisabled(user_id=UserId(user_id), disabled_by=UserId(admin), ts=now),
                )
        self._revoked_here(*revoked)
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
            ended = None
            if user.role != role:
                await self.store.update_user(conn, user_id, now, role=role)
                # The new role must not wait for the tokens of the old one to expire: they are
                # refused at once, and the user logs in again.
                ended = await self._end_sessions(conn, user_id, now, "role_changed")
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
        if ended is not None:
            self._revoked_here(ended)
        found = await self.store.user(user_id)
        assert found is not None
        return found

    # ---- API keys -----------------------------------------------------------------------------

    async def create_key(
        self,
        user_id: UUID,
        name: str,
        scopes: Sequence[KeyScope],
        ttl: timedelta | None,
        caller_scopes: Sequence[str],
    ) -> tuple[ApiKey, str]:
        """A new key with `scopes`: no more than the user's role allows, nor than the token
        asking for it has. Only a password session makes keys (its token has the `account`
        scope, which no key's token has): a key never mints a key, so a leaked key cannot
        outlive its own revocation through a successor it made."""
        require_account_scope(caller_scopes)
        user = await self.store.user(user_id)
        if user is None or user.status != "active":
            raise ProblemError(404, "Unknown user")
        allowed = tuple(s for s in key_scopes(user.role, scopes) if s in caller_scopes)
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

    async def revoke_key(self, user_id: UUID, key_id: str, caller_scopes: Sequence[str]) -> None:
        """The key and every token minted for it stop working at once (the event tells every
        service; this process knows already)."""
        require_account_scope(caller_scopes)
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
        self._revoked_here(RevokedKey(key_id, now.timestamp()))

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
        return self._access(user, key), self.settings.access_ttl_s

    async def revocations(self) -> dict[str, list[dict[str, Any]]]:
        """The revocations that can still refuse a live token: those younger than the longest
        an access token lives, with a minute of leeway each side."""
        since = self.clock() - timedelta(seconds=self.settings.access_ttl_s + 120)
        keys, users = await self.store.revocations(since)
        return {
            "keys": [
                {"key_id": r["key_id"], "revoked_at": r["revoked_at"].isoformat()} for r in keys
            ],
            "sessions": [
                {
                    "user_id": str(r["user_id"]),
                    "session_version": r["session_version"],
                    "revoked_at": r["revoked_at"].isoformat(),
                }
                for r in users
            ],
        }


def require_account_scope(scopes: Collection[str]) -> None:
    """403 problem unless the token may manage its user's login (a password session's)."""
    if ACCOUNT_SCOPE not in scopes:
        raise ProblemError(
            403,
            "Forbidden",
            "Managing API keys and the password needs a password session (the "
            f"{ACCOUNT_SCOPE!r} scope); an API key's token never has it.",
            type="/problems/forbidden",
            headers={
                "WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{ACCOUNT_SCOPE}"'
            },
        )
