"""Access-token verification: every service checks the caller's JWT against auth's JWKS itself.

The auth service issues access tokens (RFC 9068) signed with Ed25519 (`alg` EdDSA) and publishes
its public keys at `/.well-known/jwks.json`. `TokenVerifier.verify` accepts a token only if:

- its header says `alg: EdDSA` (nothing else: `none` and HS256 "signed" with the public key are
  refused before any key is touched), `typ: at+jwt` and names a `kid` of the key set;
- its signature verifies with that Ed25519 key;
- `iss` and `aud` are the configured ones; `exp`, `nbf` and `iat` are present and hold now (with
  a small leeway for clock skew) and the token lives at most `max_lifetime_s`;
- `sub` is a user id (a UUID), `role` one of admin/trader/viewer, `scope` a space-separated
  string and `jti` an id;
- no revocation covers it (trademesh_http.revocations): the API key it was minted for
  (`key_id`) is not revoked, and its `session_version` is not below its user's at auth.

Every failure is a 401 problem with `WWW-Authenticate: Bearer error="invalid_token"`; neither the
problem nor a log line ever contains the token.

The key set comes from an inline JWKS document (tests, offline single-key setups) or from auth's
JWKS URL. The URL is fetched lazily and kept for `ttl_s` (so a key auth removes stops verifying
after that); a token naming an unknown `kid` triggers a refetch (a key rotation), but at most one
fetch per `min_refetch_interval_s`, so a flood of tokens with made-up kids cannot make every
service hammer auth. With the key set, the verifier asks auth for the revocations that can still
matter (`revocations_url`), and accepts no token until it has them once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, cast
from uuid import UUID

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from jwt import PyJWK, PyJWKSet

from trademesh_http.problems import ProblemError
from trademesh_http.revocations import REVOCATIONS_PATH, Revocations

Role = Literal["admin", "trader", "viewer"]
ROLES: tuple[Role, ...] = ("admin", "trader", "viewer")

ALGORITHM = "EdDSA"
TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})  # RFC 9068 section 2.1
REQUIRED_CLAIMS = ("iss", "aud", "sub", "exp", "nbf", "iat", "jti")
MAX_TOKEN_BYTES = 8192
MAX_JWKS_BYTES = 65536
INVALID_TOKEN = 'Bearer error="invalid_token"'  # noqa: S105 - a header value, not a secret
REVOKED_TOKEN = "/problems/revoked-token"  # noqa: S105 - a problem type, not a secret

log = logging.getLogger("trademesh.http.tokens")


class AuthTokenSettings(Protocol):
    """What `TokenVerifier.from_settings` reads (trademesh_config.AuthSettings has it)."""

    @property
    def auth_jwks_url(self) -> str: ...

    @property
    def auth_jwks(self) -> str | None: ...

    @property
    def auth_issuer(self) -> str: ...

    @property
    def auth_audience(self) -> str: ...


@dataclass(frozen=True)
class AccessClaims:
    """What a verified access token says about its bearer."""

    user_id: UUID
    role: Role
    scopes: frozenset[str]
    token_id: str
    expires_at: datetime
    #: The API key the token was minted for; None for a password session's token.
    key_id: str | None = None
    #: The user's session version when it was issued (auth raises it to end every session).
    session_version: int = 0


def invalid_token(detail: str) -> ProblemError:
    """The 401 problem of every verification failure. `detail` must never hold the token."""
    return ProblemError(
        401,
        "Invalid access token",
        detail,
        type="/problems/invalid-token",
        headers={"WWW-Authenticate": INVALID_TOKEN},
    )


def _ed25519_keys(document: Mapping[str, Any]) -> dict[str, PyJWK]:
    """The Ed25519 public keys of a JWKS document by kid; other keys are skipped (logged)."""
    raw = document.get("keys")
    if not isinstance(raw, list):
        raise ValueError("a JWKS document has a list of keys")
    keys: dict[str, PyJWK] = {}
    try:
        parsed = PyJWKSet(raw).keys  # PyJWT parses; it skips keys it cannot use at all
    except jwt.PyJWKSetError:
        parsed = []
    for jwk in parsed:
        usable = (
            isinstance(jwk.key, Ed25519PublicKey)  # not Ed448, and never a private key
            and jwk.algorithm_name == ALGORITHM
            and jwk.key_id
            and jwk.public_key_use in (None, "sig")
        )
        if usable and jwk.key_id:
            keys[jwk.key_id] = jwk
        else:
            log.warning("JWKS key skipped: not an Ed25519 signature key with a kid")
    if not keys:
        raise ValueError("the JWKS holds no Ed25519 signature key with a kid")
    return keys


class TokenVerifier:
    """Verifies access tokens against auth's key set; one per service app (app.state.tokens).

    Give either `jwks` (an inline JWKS: a JSON string or the parsed document; never fetched
    again) or `jwks_url`. `clock` is a monotonic clock for the cache (tests pass their own).
    """

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        jwks_url: str | None = None,
        jwks: str | Mapping[str, Any] | None = None,
        ttl_s: float = 300.0,
        min_refetch_interval_s: float = 5.0,
        leeway_s: float = 30.0,
        max_lifetime_s: float = 900.0,
        timeout_s: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        revocations_url: str | None = None,
        revocations: Revocations | None = None,
    ) -> None:
        if (jwks is None) == (jwks_url is None):
            raise ValueError("give exactly one of jwks (inline) and jwks_url")
        #: What auth revoked; kept current from auth.events.v1 by follow_revocations, and from
        #: `revocations_url` (auth's snapshot) when given.
        if revocations is None:
            revocations = Revocations(keep_s=max_lifetime_s + 2 * leeway_s)
        self.revocations = revocations
        self.revocations_url = revocations_url
        self._revocations_loaded = revocations_url is None
        self._revocations_attempted_at: float | None = None
        self.issuer = issuer
        self.audience = audience
        self.jwks_url = jwks_url
        self.ttl_s = ttl_s
        self.min_refetch_interval_s = min_refetch_interval_s
        self.leeway_s = leeway_s
        self.max_lifetime_s = max_lifetime_s
        self._timeout_s = timeout_s
        self._transport = transport
        self._clock = clock
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at: float | None = None  # last successful fetch
        self._attempted_at: float | None = None  # last fetch, successful or not
        self._lock: asyncio.Lock | None = None
        self._revocations_lock = asyncio.Lock()
        self._lock_loop: asyncio.AbstractEventLoop | None = None
        # Tokens verified already: token -> (claims, kid, exp). A client sends the same token
        # with every request for minutes, and an Ed25519 verification plus the claim checks
        # cost more than the rest of a small request; a hit is still refused once the token
        # expires (same leeway as PyJWT) or its key leaves the key set.
        self._verified: OrderedDict[str, tuple[AccessClaims, str, float]] = OrderedDict()
        self.verified_cache_size = 10_000
        #: How many times the JWKS URL was fetched (for tests and diagnostics).
        self.fetches = 0
        if jwks is not None:
            document = json.loads(jwks) if isinstance(jwks, str) else jwks
            self._keys = _ed25519_keys(document)

    @classmethod
    def from_settings(cls, settings: AuthTokenSettings, **options: Any) -> TokenVerifier:
        """The verifier a service's settings describe: the inline JWKS when set, else the URL
        (and auth's revocations at the same origin)."""
        if settings.auth_jwks is not None:
            return cls(
                issuer=settings.auth_issuer,
                audience=settings.auth_audience,
                jwks=settings.auth_jwks,
                **options,
            )
        origin = httpx.URL(settings.auth_jwks_url).copy_with(path="/", query=None, fragment=None)
        options.setdefault("revocations_url", str(origin.join(REVOCATIONS_PATH)))
        return cls(
            issuer=settings.auth_issuer,
            audience=settings.auth_audience,
            jwks_url=settings.auth_jwks_url,
            **options,
        )

    @property
    def key_ids(self) -> frozenset[str]:
        """The kids currently trusted."""
        return frozenset(self._keys)

    async def verify(self, token: str) -> AccessClaims:
        """The claims of a valid access token; raises a 401 ProblemError otherwise."""
        if not token or len(token) > MAX_TOKEN_BYTES:
            raise invalid_token("The access token is empty or too long.")
        hit = self._verified.get(token)
        if hit is not None:
            remembered, remembered_kid, exp = hit
            if time.time() - self.leeway_s < exp and await self._key(remembered_kid) is not None:
                return await self._unrevoked(remembered)
            self._verified.pop(
                token, None
            )  # expired, or its key is gone: verify in full (and fail)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise invalid_token("The access token is not a JWT.") from None
        if header.get("alg") != ALGORITHM:
            raise invalid_token(f"Access tokens are signed with {ALGORITHM}.")
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in TOKEN_TYPES:
            raise invalid_token("The token is not an access token (typ at+jwt).")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise invalid_token("The access token names no signing key (kid).")
        key = await self._key(kid)
        if key is None:
            raise invalid_token("The access token's signing key is unknown.")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_s,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.ExpiredSignatureError:
            raise invalid_token("The access token has expired.") from None
        except jwt.ImmatureSignatureError:
            raise invalid_token("The access token is not valid yet.") from None
        except jwt.InvalidAudienceError:
            raise invalid_token("The access token is not meant for this audience.") from None
        except jwt.InvalidIssuerError:
            raise invalid_token("The access token comes from another issuer.") from None
        except jwt.MissingRequiredClaimError as exc:
            raise invalid_token(f"The access token lacks the {exc.claim!r} claim.") from None
        except jwt.InvalidSignatureError:
            raise invalid_token("The access token's signature does not verify.") from None
        except jwt.PyJWTError as exc:
            # PyJWT's messages name claims and reasons, never the token itself.
            log.info("access token refused", extra={"reason": type(exc).__name__})
            raise invalid_token("The access token is malformed or invalid.") from None
        verified = self._claims(claims)
        self._verified[token] = (verified, kid, float(claims["exp"]))
        if len(self._verified) > self.verified_cache_size:
            self._verified.popitem(last=False)
        return await self._unrevoked(verified)

    async def _unrevoked(self, claims: AccessClaims) -> AccessClaims:
        """`claims`, unless a revocation covers them (a 401 problem of type revoked-token)."""
        if not self._revocations_loaded and not await self._ensure_revocations():
            raise ProblemError(
                503,
                "Token revocations unavailable",
                "The auth service's revocations could not be fetched; try again shortly.",
                headers={"Retry-After": str(max(1, round(self.min_refetch_interval_s)))},
            )
        refusal = self.revocations.refusal(claims)
        if refusal is not None:
            raise ProblemError(
                401,
                "Access token revoked",
                f"The access token was revoked: {refusal}.",
                type=REVOKED_TOKEN,
                headers={"WWW-Authenticate": INVALID_TOKEN},
            )
        return claims

    def _claims(self, claims: Mapping[str, Any]) -> AccessClaims:
        exp, iat = claims["exp"], claims["iat"]
        times = (exp, iat, claims["nbf"])
        if not all(isinstance(t, int | float) and not isinstance(t, bool) for t in times):
            # PyJWT accepts "123" (it calls int()); RFC 7519 NumericDates are JSON numbers.
            raise invalid_token("The access token's times are not NumericDates.")
        if exp - iat > self.max_lifetime_s + self.leeway_s:
            raise invalid_token("The access token lives longer than an access token may.")
        try:
            user_id = UUID(str(claims["sub"]))
        except ValueError:
            raise invalid_token("The access token's subject is not a user id.") from None
        role = claims.get("role")
        if role not in ROLES:
            raise invalid_token("The access token's role is not admin, trader or viewer.")
        role = cast("Role", role)
        scope = claims.get("scope")
        if not isinstance(scope, str):
            raise invalid_token("The access token has no scope.")
        token_id = claims["jti"]
        if not isinstance(token_id, str) or not token_id:
            raise invalid_token("The access token has no id (jti).")
        key_id = claims.get("key_id")
        if key_id is not None and (not isinstance(key_id, str) or not key_id):
            raise invalid_token("The access token's key_id is not an API key id.")
        version = claims.get("session_version", 0)
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise invalid_token("The access token's session_version is not a version number.")
        return AccessClaims(
            user_id=user_id,
            role=role,
            scopes=frozenset(scope.split()),
            token_id=token_id,
            expires_at=datetime.fromtimestamp(exp, UTC),
            key_id=key_id,
            session_version=version,
        )

    async def _key(self, kid: str) -> PyJWK | None:
        if self.jwks_url is None:  # an inline key set: nothing to fetch
            return self._keys.get(kid)
        now = self._clock()
        if self._fetched_at is None or now - self._fetched_at >= self.ttl_s:
            await self._refresh()
        key = self._keys.get(kid)
        if key is None and await self._refresh():
            # An unknown kid may be a key auth has just rotated in: look again, once.
            key = self._keys.get(kid)
        if key is None and self._fetched_at is None:
            raise ProblemError(
                503,
                "Token keys unavailable",
                "The auth service's key set could not be fetched; try again shortly.",
                headers={"Retry-After": str(max(1, round(self.min_refetch_interval_s)))},
            )
        return key

    def _get_lock(self, *, revocations: bool = False) -> asyncio.Lock:
        """The lock of the key set's fetches, or of the revocations' (made on the running loop:
        tests run verifiers on several)."""
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
            self._revocations_lock = asyncio.Lock()
        return self._revocations_lock if revocations else self._lock

    async def _refresh(self) -> bool:
        """Fetch the key set unless a fetch started less than min_refetch_interval_s ago;
        True when this call fetched it. A failed fetch keeps the keys known so far."""
        async with self._get_lock():
            now = self._clock()
            if (
                self._attempted_at is not None
                and now - self._attempted_at < self.min_refetch_interval_s
            ):
                return False
            self._attempted_at = now
            self.fetches += 1
            try:
                self._keys = await self._fetch()
            except (httpx.HTTPError, ValueError, jwt.PyJWTError) as exc:
                log.warning(
                    "JWKS fetch failed; keeping the keys known so far",
                    extra={"url": self.jwks_url, "error": type(exc).__name__},
                )
                return False
            self._fetched_at = now
        if self.revocations_url is not None:
            # With the key set, the revocations: what the bus brought since is kept as well.
            async with self._get_lock(revocations=True):
                await self._load_revocations()
        return True

    async def _ensure_revocations(self) -> bool:
        """True once auth's snapshot has been loaded; a request that comes while it is being
        fetched waits for that fetch rather than start another."""
        async with self._get_lock(revocations=True):
            return self._revocations_loaded or await self._load_revocations()

    async def _load_revocations(self) -> bool:
        """Add auth's snapshot of the revocations that can still matter, at most once per
        min_refetch_interval_s; True when it was loaded now. The caller holds the lock."""
        if self.revocations_url is None:
            return False
        now = self._clock()
        attempted = self._revocations_attempted_at
        if attempted is not None and now - attempted < self.min_refetch_interval_s:
            return False
        self._revocations_attempted_at = now
        try:
            async with httpx.AsyncClient(
                transport=self._transport, timeout=self._timeout_s, follow_redirects=False
            ) as client:
                response = await client.get(
                    self.revocations_url, headers={"Accept": "application/json"}
                )
            response.raise_for_status()
            document = response.json()
            if not isinstance(document, dict):
                raise ValueError("the revocations document is not a JSON object")
            self.revocations.load(document)
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            log.warning(
                "revocations fetch failed",
                extra={"url": self.revocations_url, "error": type(exc).__name__},
            )
            return False
        self._revocations_loaded = True
        return True

    async def _fetch(self) -> dict[str, PyJWK]:
        # PyJWT's PyJWKClient would do this fetch, but with urllib, synchronously: it would block
        # the event loop of every request that meets a new kid. So the fetch is httpx (async),
        # the caching (TTL, rate-limited refetch) is this class's, and PyJWT only parses keys.
        assert self.jwks_url is not None
        async with httpx.AsyncClient(
            transport=self._transport, timeout=self._timeout_s, follow_redirects=False
        ) as client:
            response = await client.get(self.jwks_url, headers={"Accept": "application/json"})
        response.raise_for_status()
        if len(response.content) > MAX_JWKS_BYTES:
            raise ValueError("the JWKS document is too large")
        document = response.json()
        if not isinstance(document, dict):
            raise ValueError("the JWKS document is not a JSON object")
        return _ed25519_keys(document)
