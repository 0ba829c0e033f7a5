"""Who is calling (access token or API key), and the call forwarded to the service behind.

The gateway verifies every credential itself before anything reaches a service, and the service
verifies the forwarded access token again (no service trusts the gateway's word): the gateway's
checks are the first door (roles, ownership the services do not check, rate limits, sizes), not
the only one.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import quote, urlencode
from uuid import UUID

import aiohttp
import httpx
import yarl
from fastapi import Request
from httpx_aiohttp import AiohttpTransport
from opentelemetry import propagate
from starlette.responses import Response
from trademesh_http import AccessClaims, ProblemError, TokenVerifier
from trademesh_http.accounts import AccountOwners
from trademesh_http.caller import Caller as HttpCaller
from trademesh_http.revocations import Revocation, RevokedKey, RevokedSessions
from trademesh_http.tokens import REVOKED_TOKEN
from trademesh_observability import metrics
from trademesh_observability.logging import get_logger, request_id_var

from trademesh_gateway.config import Settings
from trademesh_gateway.engine import (
    SERVICES,
    Route,
    Service,
    capped_limit,
    forward_request_headers,
    forward_response_headers,
    owned_body_values,
    role_allows,
)
from trademesh_gateway.ratelimit import RateLimits

log = get_logger("trademesh_gateway.proxy")

API_KEY_PREFIX = "tmk_"
PAGE_CAP_HEADER = "X-Page-Limit-Capped"
#: How long an idle upstream connection is kept: under the services' own keep-alive (uvicorn's
#: 5 s), so that the gateway never sends a request down a connection the service is closing.
KEEPALIVE_S = 4.0


@dataclass(frozen=True)
class Caller:
    """The verified caller: their claims and the access token to forward (never logged)."""

    claims: AccessClaims
    token: str

    @property
    def user_id(self) -> UUID:
        return self.claims.user_id

    @property
    def by_key(self) -> bool:
        """The token was exchanged for an API key (the gateway caches it)."""
        return self.claims.key_id is not None


def _unauthenticated(detail: str, challenge: str = "Bearer") -> ProblemError:
    return ProblemError(
        401,
        "Not authenticated",
        detail,
        type="/problems/unauthenticated",
        headers={"WWW-Authenticate": challenge},
    )


def _forbidden(detail: str, headers: dict[str, str] | None = None) -> ProblemError:
    return ProblemError(403, "Forbidden", detail, type="/problems/forbidden", headers=headers)


@dataclass(frozen=True)
class Answer:
    """A service's answer to a forwarded request: status, headers and the whole body."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


class Upstreams:
    """The services behind the gateway: one aiohttp connection pool per service.

    Forwarded requests (`send`) go to aiohttp directly. httpx on top of it (through
    httpx-aiohttp) cost the gateway a fifth of its CPU per request (request building, URL
    merging, cookie extraction; decision 0123), so httpx serves only the gateway's own, colder
    calls (`clients`: API key exchange, account checks, OpenAPI documents, JWKS), on the same
    pool. A transport given for a service (tests reach in-process apps through
    `httpx.ASGITransport`) replaces the network for both.

    The pools keep no cookies: a service's Set-Cookie must never reach another caller's request.
    """

    def __init__(
        self,
        settings: Settings,
        transports: Mapping[Service, httpx.AsyncBaseTransport] | None = None,
    ) -> None:
        self._transports = dict(transports or {})
        self._max_connections = settings.upstream_max_connections
        self._timeout = aiohttp.ClientTimeout(total=settings.upstream_timeout_s)
        self._bases = {service: settings.upstream_url(service).rstrip("/") for service in SERVICES}
        self._sessions: dict[Service, aiohttp.ClientSession] = {}
        limits = httpx.Limits(
            max_connections=settings.upstream_max_connections,
            max_keepalive_connections=settings.upstream_max_connections,
        )
        self.clients: dict[Service, httpx.AsyncClient] = {
            service: httpx.AsyncClient(
                base_url=self._bases[service],
                transport=self._transports.get(service) or self._shared_transport(service),
                timeout=settings.upstream_timeout_s,
                limits=limits,
                follow_redirects=False,
            )
            for service in SERVICES
        }

    def __getitem__(self, service: Service) -> httpx.AsyncClient:
        return self.clients[service]

    def _shared_transport(self, service: Service) -> AiohttpTransport:
        return AiohttpTransport(client=lambda: self._session(service))

    def _session(self, service: Service) -> aiohttp.ClientSession:
        """The service's pool, made on first use (aiohttp wants a running loop)."""
        session = self._sessions.get(service)
        if session is None or session.closed:
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._max_connections, keepalive_timeout=KEEPALIVE_S
                ),
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=self._timeout,
            )
            self._sessions[service] = session
        return session

    async def send(
        self,
        service: Service,
        method: str,
        path: str,
        *,
        query: str,
        headers: list[tuple[str, str]],
        body: bytes,
    ) -> Answer:
        """Forward a request to `service`: `path` already percent-encoded, `query` the encoded
        query string (may be empty). Raises httpx.TimeoutException or httpx.HTTPError as the
        httpx path does, so that callers map one family of errors."""
        transport = self._transports.get(service)
        target = path + ("?" + query if query else "")
        if transport is not None:
            answer = await self.clients[service].request(
                method, target, headers=headers, content=body or None
            )
            return Answer(answer.status_code, answer.headers.multi_items(), answer.content)
        url = yarl.URL(self._bases[service] + target, encoded=True)
        try:
            async with self._session(service).request(
                method, url, headers=headers, data=body or None, allow_redirects=False
            ) as response:
                content = await response.read()
                return Answer(response.status, list(response.headers.items()), content)
        except TimeoutError as exc:
            raise httpx.TimeoutException(str(exc)) from exc
        except aiohttp.ClientError as exc:
            raise httpx.TransportError(str(exc)) from exc

    async def aclose(self) -> None:
        for client in self.clients.values():
            await client.aclose()
        for session in self._sessions.values():
            await session.close()


@dataclass
class _CachedToken:
    token: str
    until: float  # monotonic
    key_id: str | None
    user_id: UUID | None = None  # known once the token was verified


class ApiKeys:
    """API keys exchanged at auth for access tokens, cached until shortly before the token
    expires, and dropped as soon as auth revokes the key or ends its user's sessions
    (`forget`, fed by the verifier's revocations). The cache key is the SHA-256 of the whole
    key (never the key itself, which is never logged); entries are indexed by key id, the
    public part of a key that auth's revocations name."""

    def __init__(self, auth: httpx.AsyncClient, *, margin_s: float, size: int) -> None:
        self._auth = auth
        self._margin_s = margin_s
        self._size = size
        self._cache: OrderedDict[str, _CachedToken] = OrderedDict()
        self._digests: dict[str, str] = {}  # key id -> digest
        self._locks: dict[str, asyncio.Lock] = {}
        #: Exchanges made at auth (for tests and diagnostics).
        self.exchanges = 0

    @staticmethod
    def digest(key: str) -> str:
        """What a key is cached under."""
        return hashlib.sha256(key.encode()).hexdigest()

    async def access_token(self, key: str, digest: str) -> str:
        """The key's access token (`digest`: `ApiKeys.digest(key)`), cached or exchanged."""
        cached = self._fresh(digest)
        if cached is not None:
            return cached
        lock = self._locks.setdefault(digest, asyncio.Lock())
        try:
            async with lock:  # one exchange per key at a time: no stampede on auth
                cached = self._fresh(digest)
                if cached is not None:
                    return cached
                token, ttl = await self._exchange(key)
                key_id = key_id_of(key)
                until = time.monotonic() + ttl - self._margin_s
                self._cache[digest] = _CachedToken(token, until, key_id)
                self._cache.move_to_end(digest)
                if key_id is not None:
                    self._digests[key_id] = digest
                while len(self._cache) > self._size:
                    self._drop(next(iter(self._cache)))
                return token
        finally:
            if not lock.locked():
                self._locks.pop(digest, None)

    def verified(self, digest: str, user_id: UUID) -> None:
        """The key's cached token was verified as `user_id`'s (so that ending the user's
        sessions drops it)."""
        found = self._cache.get(digest)
        if found is not None:
            found.user_id = user_id

    def drop(self, digest: str) -> None:
        """Forget the key's cached token (it was refused: exchange it again, once)."""
        self._drop(digest)

    def forget(self, revocation: Revocation) -> None:
        """A revocation from auth: drop the tokens it covers (a revoked key's; every key token
        of a user whose sessions ended, so that the next request exchanges the key again)."""
        if isinstance(revocation, RevokedKey):
            digest = self._digests.get(revocation.key_id)
            if digest is not None:
                self._drop(digest)
        elif isinstance(revocation, RevokedSessions):
            for digest in [d for d, c in self._cache.items() if c.user_id == revocation.user_id]:
                self._drop(digest)

    def __len__(self) -> int:
        return len(self._cache)

    def _drop(self, digest: str) -> None:
        dropped = self._cache.pop(digest, None)
        if dropped is not None and dropped.key_id is not None:
            self._digests.pop(dropped.key_id, None)

    def _fresh(self, digest: str) -> str | None:
        found = self._cache.get(digest)
        if found is None:
            return None
        if time.monotonic() >= found.until:
            self._drop(digest)
            return None
        return found.token

    async def _exchange(self, key: str) -> tuple[str, float]:
        self.exchanges += 1
        try:
            response = await self._auth.post(
                "/api/v1/auth/token",
                json={"api_key": key},
                headers=_context_headers(),
            )
        except httpx.TimeoutException:
            raise _upstream_problem(504, "auth") from None
        except httpx.HTTPError:
            raise _upstream_problem(502, "auth") from None
        if response.status_code in (400, 401, 403, 404, 422):
            raise _unauthenticated("The API key is unknown, revoked or expired.", "ApiKey")
        if response.status_code != 200:
            raise _upstream_problem(502, "auth")
        body = response.json()
        return str(body["access_token"]), float(body["expires_in"])


def key_id_of(key: str) -> str | None:
    """The public id of an API key `tmk_<key id>_<secret>` (None when malformed)."""
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] + "_" != API_KEY_PREFIX or not parts[1]:
        return None
    return parts[1]


def _upstream_problem(status: int, service: str) -> ProblemError:
    if status == 504:
        return ProblemError(
            504, "Upstream timeout", f"The {service} service did not answer in time."
        )
    return ProblemError(502, "Upstream unavailable", f"The {service} service could not answer.")


def _context_headers() -> dict[str, str]:
    """X-Request-Id and the W3C trace context of the current span, for an upstream call."""
    headers: dict[str, str] = {}
    request_id = request_id_var.get()
    if request_id:
        headers["X-Request-ID"] = request_id
    propagate.inject(headers)
    return headers


class Proxy:
    """Authenticate, authorise, limit and forward one request by its route."""

    def __init__(
        self,
        settings: Settings,
        upstreams: Upstreams,
        verifier: TokenVerifier,
        api_keys: ApiKeys,
        rate_limits: RateLimits,
    ) -> None:
        self.settings = settings
        self.upstreams = upstreams
        self.verifier = verifier
        self.api_keys = api_keys
        self.rate_limits = rate_limits
        self.accounts = AccountOwners(upstreams["execution"])

    def client_address(self, request: Request) -> str:
        """The client the per-IP limit counts: as the app resolved it (the peer, or the address
        a trusted proxy named; trademesh_http.serving)."""
        return request.client.host if request.client else "unknown"

    async def authenticate(self, request: Request, *, fresh: bool = False) -> Caller:
        """The caller, from `Authorization: Bearer <access token>`, `Authorization: ApiKey
        tmk_…` or `X-API-Key: tmk_…`; 401 problem otherwise. `fresh`: an API key is exchanged
        again rather than its cached token used."""
        authorization = request.headers.get("authorization", "")
        scheme, _, credential = authorization.partition(" ")
        credential = credential.strip()
        api_key = request.headers.get("x-api-key", "").strip()
        if scheme.lower() == "apikey" and credential:
            api_key = credential
        elif scheme.lower() == "bearer" and credential:
            return Caller(await self.verifier.verify(credential), credential)
        elif authorization:
            raise _unauthenticated("Use Authorization: Bearer <token> or ApiKey <key>.")
        if not api_key:
            raise _unauthenticated("This needs an access token: Authorization: Bearer <token>.")
        if not api_key.startswith(API_KEY_PREFIX):
            raise _unauthenticated("The API key is malformed.", "ApiKey")
        digest = self.api_keys.digest(api_key)
        if fresh:
            self.api_keys.drop(digest)
        token = await self.api_keys.access_token(api_key, digest)
        try:
            claims = await self.verifier.verify(token)
        except ProblemError as refused:
            if refused.type != REVOKED_TOKEN:
                raise
            # The cached token was revoked, not necessarily the key: its user's sessions ended
            # (a role change) and the key may still be good. Exchange it again, once: auth
            # refuses a revoked key or a disabled user's.
            self.api_keys.drop(digest)
            token = await self.api_keys.access_token(api_key, digest)
            claims = await self.verifier.verify(token)
        self.api_keys.verified(digest, claims.user_id)
        return Caller(claims, token)

    def authorise(self, route: Route, caller: Caller) -> None:
        """403 problem unless the caller's role and scope allow the route."""
        if not role_allows(caller.claims.role, route.min_role):
            raise _forbidden(f"This needs the role {route.min_role} or higher.")
        scope = route.scope
        if scope is not None and scope not in caller.claims.scopes:
            what = "one's own login" if scope == "account" else "anything"
            raise _forbidden(
                f"Changing {what} needs the {scope!r} scope; this credential lacks it.",
                {"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'},
            )

    @staticmethod
    def refused_as_revoked(response: Response) -> bool:
        """The service refused the forwarded token as revoked: it heard of a revocation before
        this gateway did (both follow auth's events). For an API key's cached token, the key
        itself may still be good (its user's sessions ended with a role change)."""
        if response.status_code != 401:
            return False
        try:
            problem = json.loads(bytes(response.body))
        except ValueError:
            return False
        return isinstance(problem, dict) and problem.get("type") == REVOKED_TOKEN

    def answered(self, route: Route, request: Request, response: Response) -> None:
        """What the gateway learns from a service's answer: a key revoked through it is refused
        at once by this replica (the others hear auth's event within a second)."""
        if route.revokes_key is not None and 200 <= response.status_code < 300:
            key_id = str(request.path_params[route.revokes_key])
            self.verifier.revocations.add(RevokedKey(key_id, time.time()))

    async def read_body(self, request: Request) -> bytes:
        """The request's body. Its size (413 past max_body_bytes, a larger Content-Length
        refused unread) and content are held at the edge by trademesh_http.inputs, which the
        gateway's app runs with its own max_body_bytes."""
        return await request.body()

    async def check_account(self, account_id: str, caller: Caller, *, admin_may: bool) -> None:
        """404 problem unless execution says the account is the caller's (an admin passes for
        any account where `admin_may`); trademesh_http.accounts asks, and caches a yes."""
        claims = caller.claims
        holder = HttpCaller(
            claims.user_id, claims.role, claims.scopes, claims.token_id, caller.token
        )
        await self.accounts.check(
            account_id, holder, admin_may=admin_may, headers=_context_headers()
        )

    async def forward(
        self, request: Request, route: Route, caller: Caller | None, body: bytes
    ) -> Response:
        """The route's upstream call with the client's request, and its answer."""
        values = {k: quote(str(v), safe="") for k, v in request.path_params.items()}
        path = route.upstream_path(values)
        query: list[tuple[str, str]] = []
        capped = False
        for name, value in request.query_params.multi_items():
            if name == "limit":
                lowered = capped_limit(value, self.settings.max_page_size)
                if lowered is not None:
                    value, capped = lowered, True
            query.append((name, value))
        headers = forward_request_headers(request.headers.items())
        headers += list(_context_headers().items())
        traceparent = request.headers.get("traceparent")
        if traceparent and not any(n.lower() == "traceparent" for n, _ in headers):
            headers.append(("traceparent", traceparent))  # no span of ours: pass theirs on
        # The client as the gateway resolved it, alone: the services trust the gateway's
        # network, so an address the client wrote itself must never reach them.
        if request.client:
            headers.append(("X-Forwarded-For", request.client.host))
        headers.append(("X-Forwarded-Proto", request.url.scheme))
        if caller is not None:
            headers.append(("Authorization", f"Bearer {caller.token}"))
        upstream = await self._send(
            route.service, request.method, path, query=urlencode(query), headers=headers, body=body
        )
        out = Response(
            content=upstream.body,
            status_code=upstream.status,
            headers=dict(forward_response_headers(upstream.headers)),
        )
        if capped:
            out.headers[PAGE_CAP_HEADER] = str(self.settings.max_page_size)
        return out

    async def call_as(
        self, caller: Caller, service: Service, method: str, path: str, content: bytes
    ) -> httpx.Response:
        """A call of the gateway's own (not a forwarded request) to `service`, for `caller`:
        their access token, the request's id and trace, a JSON body."""
        headers = {
            **_context_headers(),
            "Authorization": f"Bearer {caller.token}",
            "Content-Type": "application/json",
        }
        return await self._call(service, method, path, headers=headers, content=content)

    async def _call(
        self,
        service: Service,
        method: str,
        path: str,
        *,
        headers: dict[str, str],
        content: bytes,
    ) -> httpx.Response:
        with self._upstream_errors(service, method):
            return await self.upstreams[service].request(
                method, path, headers=headers, content=content or None
            )

    async def _send(
        self,
        service: Service,
        method: str,
        path: str,
        *,
        query: str,
        headers: list[tuple[str, str]],
        body: bytes,
    ) -> Answer:
        with self._upstream_errors(service, method):
            return await self.upstreams.send(
                service, method, path, query=query, headers=headers, body=body
            )

    @contextmanager
    def _upstream_errors(self, service: Service, method: str) -> Iterator[None]:
        """An upstream's timeout as a 504 problem, any other transport failure as a 502."""
        try:
            yield
        except httpx.TimeoutException:
            log.warning("upstream timeout", service=service, method=method)
            metrics.GATEWAY_UPSTREAM_ERRORS.labels(
                service=self.settings.service_name, upstream=service, kind="timeout"
            ).inc()
            raise _upstream_problem(504, service) from None
        except httpx.HTTPError as exc:
            log.warning("upstream unavailable", service=service, error=type(exc).__name__)
            metrics.GATEWAY_UPSTREAM_ERRORS.labels(
                service=self.settings.service_name, upstream=service, kind="unavailable"
            ).inc()
            raise _upstream_problem(502, service) from None


async def check_owned(
    proxy: Proxy, route: Route, request: Request, caller: Caller, body: bytes
) -> None:
    """The gateway's own ownership checks (the services check too): accounts named by a path
    (risk's per-account routes, where an admin may act on any account) or by a body field (a bot
    trades only its owner's account, whoever starts it)."""
    if route.ownership == "account" and route.owned is not None:
        await proxy.check_account(str(request.path_params[route.owned]), caller, admin_may=True)
    if route.owned_body:
        for account_id in owned_body_values(body, route.owned_body) or []:
            await proxy.check_account(account_id, caller, admin_may=False)
