"""Access tokens refused before they expire: revoked API keys and ended sessions.

An access token lives minutes and is verified offline (its signature, against auth's JWKS), so
without more a revoked API key or a disabled user would keep working until their token expires.
Auth therefore says what it revoked, and every service keeps a small set of it:

- a token minted for an API key carries the key's id (`key_id`): a key revoked at auth is
  refused everywhere by its id;
- every token carries its user's `session_version`: disabling a user, changing their role or
  their password raises the version at auth, and tokens below it are refused.

Auth publishes each revocation on `auth.events.v1` (`ApiKeyRevoked`, `SessionsRevoked`) in the
transaction that makes it; every process of every service reads that topic with a consumer
group of its own, from the end (`follow_revocations`), and asks auth once, when it first
verifies a token and then with every refresh of the key set, for the revocations that can still
matter (`GET /api/v1/auth/revocations`): those of the last `keep_s`, the longest an access token
lives plus leeway. Older entries are dropped: every token they refuse has expired anyway, so the
set stays as small as the revocations of a quarter of an hour.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

__all__ = [
    "REVOCATIONS_PATH",
    "Revocation",
    "Revocations",
    "RevokedKey",
    "RevokedSessions",
    "follow_revocations",
]

#: Where auth serves the revocations that can still matter (an internal route: the gateway's
#: route table does not publish it).
REVOCATIONS_PATH = "/api/v1/auth/revocations"
AUTH_EVENTS_TOPIC = "auth.events.v1"
_KEY_REVOKED = "trademesh.auth.api_key_revoked"
_SESSIONS_REVOKED = "trademesh.auth.sessions_revoked"


@dataclass(frozen=True)
class RevokedKey:
    """Tokens minted for API key `key_id` are refused."""

    key_id: str
    at: float


@dataclass(frozen=True)
class RevokedSessions:
    """Tokens of `user_id` with a session version below `session_version` are refused."""

    user_id: UUID
    session_version: int
    at: float


Revocation = RevokedKey | RevokedSessions


class RevokedClaims(Protocol):
    """What a revocation is checked against (trademesh_http.tokens.AccessClaims has it)."""

    @property
    def user_id(self) -> UUID: ...

    @property
    def key_id(self) -> str | None: ...

    @property
    def session_version(self) -> int: ...


class Revocations:
    """The revocations of the last `keep_s` seconds, by key id and by user."""

    def __init__(self, *, keep_s: float = 960.0, clock: Callable[[], float] = time.time) -> None:
        self.keep_s = keep_s
        self._clock = clock
        self._keys: dict[str, float] = {}
        self._users: dict[UUID, tuple[int, float]] = {}
        self._listeners: list[Callable[[Revocation], None]] = []
        self._pruned_at = clock()

    def __len__(self) -> int:
        return len(self._keys) + len(self._users)

    def listen(self, listener: Callable[[Revocation], None]) -> None:
        """Call `listener` with every revocation added (the gateway drops its cached tokens)."""
        self._listeners.append(listener)

    def add(self, revocation: Revocation) -> bool:
        """Keep `revocation`; True (and the listeners told) when it is news: a key not known
        revoked, or a higher session version (auth's snapshot repeats what the bus brought)."""
        if isinstance(revocation, RevokedKey):
            news = revocation.key_id not in self._keys
            if news:
                self._keys[revocation.key_id] = revocation.at
        else:
            known = self._users.get(revocation.user_id)
            news = known is None or revocation.session_version > known[0]
            if news:
                self._users[revocation.user_id] = (revocation.session_version, revocation.at)
        if news:
            for listener in self._listeners:
                listener(revocation)
        self._prune()
        return news

    def refusal(self, claims: RevokedClaims) -> str | None:
        """Why a token with these claims is refused, or None when no revocation covers it."""
        if claims.key_id is not None and claims.key_id in self._keys:
            return "its API key was revoked"
        known = self._users.get(claims.user_id)
        if known is not None and claims.session_version < known[0]:
            return "its user's sessions were ended (disabled, role or password changed)"
        return None

    def load(self, document: Mapping[str, Any]) -> None:
        """Add the revocations of a snapshot from auth (`GET /api/v1/auth/revocations`)."""
        for key in document.get("keys", ()):
            self.add(RevokedKey(str(key["key_id"]), _timestamp(key["revoked_at"])))
        for user in document.get("sessions", ()):
            self.add(
                RevokedSessions(
                    UUID(str(user["user_id"])),
                    int(user["session_version"]),
                    _timestamp(user["revoked_at"]),
                )
            )

    async def on_event(self, event: Any, _delivery: Any = None) -> None:
        """A handler of auth.events.v1: adds what a revocation event says, ignores the rest."""
        kind = getattr(event, "type", None)
        if kind == _KEY_REVOKED:
            self.add(RevokedKey(event.key_id, event.ts.timestamp()))
        elif kind == _SESSIONS_REVOKED:
            user_id = UUID(str(event.user_id))
            self.add(RevokedSessions(user_id, event.session_version, event.ts.timestamp()))

    def _prune(self) -> None:
        now = self._clock()
        if now - self._pruned_at < 60:
            return
        self._pruned_at = now
        horizon = now - self.keep_s
        self._keys = {k: at for k, at in self._keys.items() if at >= horizon}
        self._users = {u: entry for u, entry in self._users.items() if entry[1] >= horizon}


def _timestamp(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    return datetime.fromisoformat(str(value)).timestamp()


class _Subscribes(Protocol):
    """The part of trademesh_bus.Bus that follow_revocations uses."""

    def subscribe(
        self,
        topic: Any,
        *,
        group: str,
        handler: Any,
        inbox: bool = ...,
        from_beginning: bool = ...,
        background: bool = ...,
    ) -> Any: ...


class _HasRevocations(Protocol):
    @property
    def revocations(self) -> Revocations: ...


def follow_revocations(bus: _Subscribes, verifier: _HasRevocations, group_prefix: str) -> None:
    """Keep `verifier`'s revocations current from auth.events.v1: every process reads the topic
    in a consumer group of its own (each must see every revocation), from the end (what came
    before is in auth's snapshot). Nothing is stored: no inbox."""
    instance = uuid.uuid4().hex[:12]
    bus.subscribe(
        AUTH_EVENTS_TOPIC,
        group=f"{group_prefix}.{AUTH_EVENTS_TOPIC}.revocations.{instance}",
        handler=verifier.revocations.on_event,
        inbox=False,
        from_beginning=False,
        background=True,
    )
