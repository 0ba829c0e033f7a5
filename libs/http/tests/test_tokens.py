"""Access-token verification: the JWT attacks are refused, valid tokens pass, and the key set
is fetched, rotated, expired and rate-limited over real HTTP (an aiohttp JWKS server)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest
from aiohttp import web
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from trademesh_http import ProblemError, TokenVerifier
from trademesh_http.revocations import REVOCATIONS_PATH, Revocations, RevokedKey, RevokedSessions
from trademesh_testing.tokens import TokenSigner

pytestmark = pytest.mark.unit

ISSUER = "trademesh-auth"
AUDIENCE = "trademesh"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _json_b64(value: dict[str, Any]) -> str:
    return _b64(json.dumps(value).encode())


@pytest.fixture(scope="module")
def signer() -> TokenSigner:
    return TokenSigner(kid="k1")


@pytest.fixture
def verifier(signer: TokenSigner) -> TokenVerifier:
    return TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=signer.jwks_json())


async def _refused(verifier: TokenVerifier, token: str) -> ProblemError:
    with pytest.raises(ProblemError) as raised:
        await verifier.verify(token)
    problem = raised.value
    assert problem.status == 401
    assert problem.headers == {"WWW-Authenticate": 'Bearer error="invalid_token"'}
    assert token not in str(problem.detail) and token not in str(problem)
    return problem


async def test_a_valid_token_gives_its_claims(verifier: TokenVerifier, signer: TokenSigner) -> None:
    user = uuid4()
    claims = await verifier.verify(signer.mint(user, "viewer", ["read"], jti="abc"))
    assert claims.user_id == user
    assert claims.role == "viewer"
    assert claims.scopes == frozenset({"read"})
    assert claims.token_id == "abc"
    assert claims.expires_at.timestamp() > time.time()


def _unsigned(signer: TokenSigner, alg: str) -> tuple[str, str]:
    header = _json_b64({"alg": alg, "typ": "at+jwt", "kid": signer.kid})
    payload = _json_b64(signer.claims(uuid4(), "admin"))
    return header, payload


async def test_alg_none_is_refused(verifier: TokenVerifier, signer: TokenSigner) -> None:
    header, payload = _unsigned(signer, "none")
    for token in (f"{header}.{payload}.", f"{header}.{payload}"):
        await _refused(verifier, token)
    for alg in ("None", "NONE", "nOnE"):
        header, payload = _unsigned(signer, alg)
        await _refused(verifier, f"{header}.{payload}.")


@pytest.mark.parametrize("secret_kind", ["raw", "jwk-x", "pem"])
async def test_hs256_signed_with_the_public_key_is_refused(
    verifier: TokenVerifier, signer: TokenSigner, secret_kind: str
) -> None:
    """The key-confusion attack: an HMAC 'signed' with the verifier's own public key."""
    public = signer.private_key.public_key()
    secret = {
        "raw": public.public_bytes(Encoding.Raw, PublicFormat.Raw),
        "jwk-x": signer.public_jwk["x"].encode(),
        "pem": public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo),
    }[secret_kind]
    header, payload = _unsigned(signer, "HS256")
    mac = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    await _refused(verifier, f"{header}.{payload}.{_b64(mac)}")


@pytest.mark.parametrize(
    ("options", "detail"),
    [
        ({"lifetime_s": -120}, "expired"),
        ({"exp": -31}, "expired"),  # times: seconds from now, beyond the 30 s leeway
        ({"nbf": 120}, "not valid yet"),
        ({"iat": 120}, "not valid yet"),
        ({"aud": "someone-else"}, "audience"),
        ({"aud": ["someone-else", "other"]}, "audience"),
        ({"iss": "evil-auth"}, "issuer"),
        ({"header": {"typ": "JWT"}}, "typ"),
        ({"header": {"typ": "at+jwt+evil"}}, "typ"),
        ({"header": {"kid": "unknown"}}, "key is unknown"),
        ({"header": {"kid": ""}}, "kid"),
        ({"sub": "not-a-uuid"}, "user id"),
        ({"role": "root"}, "role"),
        ({"scope": ["read", "trade"]}, "scope"),
        ({"exp": "60"}, "NumericDates"),
        ({"lifetime_s": 86400}, "lives longer"),
        ({"jti": ""}, "jti"),
    ],
    ids=lambda value: None if isinstance(value, dict) else str(value),
)
async def test_a_bad_token_is_refused(
    verifier: TokenVerifier, signer: TokenSigner, options: dict[str, Any], detail: str
) -> None:
    now = int(time.time())
    timed = {
        claim: (now + int(value) if isinstance(value, int) else str(now + int(value)))
        for claim, value in options.items()
        if claim in ("exp", "nbf", "iat")
    }
    problem = await _refused(verifier, signer.mint(uuid4(), **{**options, **timed}))
    assert detail in str(problem.detail)


@pytest.mark.parametrize(
    "claim", ["exp", "nbf", "iat", "iss", "aud", "sub", "jti", "role", "scope"]
)
async def test_a_token_missing_a_claim_is_refused(
    verifier: TokenVerifier, signer: TokenSigner, claim: str
) -> None:
    await _refused(verifier, signer.mint(uuid4(), omit=(claim,)))


async def test_a_token_without_typ_or_kid_is_refused(
    verifier: TokenVerifier, signer: TokenSigner
) -> None:
    header, payload = _json_b64({"alg": "EdDSA", "kid": signer.kid}), _json_b64(signer.claims())
    signature = _b64(signer.private_key.sign(f"{header}.{payload}".encode()))
    await _refused(verifier, f"{header}.{payload}.{signature}")  # no typ
    header = _json_b64({"alg": "EdDSA", "typ": "at+jwt"})
    signature = _b64(signer.private_key.sign(f"{header}.{payload}".encode()))
    await _refused(verifier, f"{header}.{payload}.{signature}")  # no kid


async def test_a_key_not_in_the_jwks_is_refused(
    verifier: TokenVerifier, signer: TokenSigner
) -> None:
    impostor = TokenSigner(kid=signer.kid)  # the right kid, another key
    problem = await _refused(verifier, impostor.mint(uuid4()))
    assert "signature" in str(problem.detail)
    await _refused(verifier, TokenSigner(kid="k-other").mint(uuid4()))


async def test_a_tampered_payload_is_refused(verifier: TokenVerifier, signer: TokenSigner) -> None:
    token = signer.mint(uuid4(), "viewer")
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(role="admin", scope="read trade")
    await _refused(verifier, f"{header}.{_json_b64(claims)}.{signature}")
    # The signature of another valid token does not fit either.
    other_signature = signer.mint(uuid4(), "admin").split(".")[2]
    await _refused(verifier, f"{header}.{payload}.{other_signature}")


@pytest.mark.parametrize(
    "token",
    ["garbage", "a.b.c", "...", "eyJhbGciOiJFZERTQSJ9", "eyJ.eyJ.sig", "x" * 10000, "é.é.é"],
    ids=lambda token: token[:24],
)
async def test_garbage_is_refused(verifier: TokenVerifier, token: str) -> None:
    await _refused(verifier, token)


def test_a_jwks_without_an_ed25519_key_is_refused(signer: TokenSigner) -> None:
    rsa_only = {"keys": [{"kty": "RSA", "kid": "r", "n": "AQAB", "e": "AQAB"}]}
    with pytest.raises(ValueError, match="Ed25519"):
        TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=rsa_only)
    with pytest.raises(ValueError, match="exactly one"):
        TokenVerifier(issuer=ISSUER, audience=AUDIENCE)


async def test_failures_never_log_the_token(
    verifier: TokenVerifier, signer: TokenSigner, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    tokens = [
        signer.mint(uuid4(), lifetime_s=-100),
        signer.mint(uuid4(), header={"typ": "JWT"}),
        TokenSigner(kid=signer.kid).mint(uuid4()),
        signer.mint(uuid4(), exp="soon"),
        "not-a-jwt-" + signer.mint(uuid4()),
    ]
    for token in tokens:
        await _refused(verifier, token)
    logged = caplog.text + " ".join(repr(r.__dict__) for r in caplog.records)
    for token in tokens:
        for part in token.split("."):
            assert part not in logged


# ----------------------------------------------------------------------------------------------
# The key set over HTTP: a JWKS server on loopback whose keys a test changes.


@dataclass
class JwksServer:
    url: str
    keys: list[TokenSigner]
    hits: int = 0
    failing: bool = False
    delays: list[float] = field(default_factory=list)
    #: auth's revocations snapshot, its fetches, and whether it fails
    snapshot: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {"keys": [], "sessions": []}
    )
    snapshot_hits: int = 0
    snapshot_failing: bool = False


@pytest.fixture
async def jwks_server(signer: TokenSigner) -> AsyncIterator[JwksServer]:
    state = JwksServer(url="", keys=[signer])

    async def jwks(_request: web.Request) -> web.Response:
        state.hits += 1
        if state.failing:
            return web.Response(status=503)
        await asyncio.sleep(0.01)  # a fetch takes a little while, as over a network
        return web.json_response({"keys": [s.public_jwk for s in state.keys]})

    async def revocations(_request: web.Request) -> web.Response:
        state.snapshot_hits += 1
        if state.snapshot_failing:
            return web.Response(status=503)
        return web.json_response(state.snapshot)

    app = web.Application()
    app.router.add_get("/.well-known/jwks.json", jwks)
    app.router.add_get(REVOCATIONS_PATH, revocations)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state.url = f"http://127.0.0.1:{port}/.well-known/jwks.json"
    try:
        yield state
    finally:
        await runner.cleanup()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _remote(server: JwksServer, clock: FakeClock, **options: Any) -> TokenVerifier:
    return TokenVerifier(
        issuer=ISSUER, audience=AUDIENCE, jwks_url=server.url, clock=clock, **options
    )


async def test_the_key_set_is_fetched_once_and_cached(
    jwks_server: JwksServer, signer: TokenSigner
) -> None:
    verifier = _remote(jwks_server, FakeClock())
    for _ in range(5):
        assert (await verifier.verify(signer.mint(uuid4()))).role == "trader"
    assert jwks_server.hits == 1 and verifier.fetches == 1


async def test_a_rotated_key_is_picked_up_by_a_refetch(
    jwks_server: JwksServer, signer: TokenSigner
) -> None:
    clock = FakeClock()
    verifier = _remote(jwks_server, clock)
    await verifier.verify(signer.mint(uuid4()))
    rotated = TokenSigner(kid="k2")
    jwks_server.keys = [signer, rotated]  # auth publishes the new key before using it
    clock.now += 6  # past the refetch interval, well within the TTL
    user = uuid4()
    assert (await verifier.verify(rotated.mint(user))).user_id == user
    assert jwks_server.hits == 2
    await verifier.verify(signer.mint(uuid4()))  # the old key still verifies
    assert verifier.key_ids == {"k1", "k2"}


async def test_an_unknown_kid_is_refused_after_one_refetch(
    jwks_server: JwksServer, signer: TokenSigner
) -> None:
    clock = FakeClock()
    verifier = _remote(jwks_server, clock)
    await verifier.verify(signer.mint(uuid4()))
    clock.now += 6
    problem = await _refused(verifier, TokenSigner(kid="never-published").mint(uuid4()))
    assert "unknown" in str(problem.detail)
    assert jwks_server.hits == 2


async def test_a_removed_key_stops_verifying_after_the_ttl(
    jwks_server: JwksServer, signer: TokenSigner
) -> None:
    clock = FakeClock()
    verifier = _remote(jwks_server, clock, ttl_s=300)
    old = TokenSigner(kid="k-old")
    jwks_server.keys = [signer, old]
    await verifier.verify(old.mint(uuid4()))
    jwks_server.keys = [signer]  # auth retires the old key
    clock.now += 299
    await verifier.verify(old.mint(uuid4()))  # cached: still good within the TTL
    clock.now += 2
    await _refused(verifier, old.mint(uuid4()))
    await verifier.verify(signer.mint(uuid4()))
    assert verifier.key_ids == {signer.kid}


async def test_a_verified_token_is_remembered_only_while_it_and_its_key_are_good(
    jwks_server: JwksServer, signer: TokenSigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same token is verified once: later uses skip the signature (the decode below would
    fail), until it expires (PyJWT's leeway, no more) or its key leaves the key set."""
    import trademesh_http.tokens as tokens

    clock = FakeClock()
    verifier = _remote(jwks_server, clock, ttl_s=300, leeway_s=5)
    old = TokenSigner(kid="k-old")
    jwks_server.keys = [signer, old]
    now = time.time()
    short = signer.mint(uuid4(), lifetime_s=60, now=now - 50)  # expires in 10 s
    retired = old.mint(uuid4())
    first = await verifier.verify(short)
    await verifier.verify(retired)

    def no_decode(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a remembered token was decoded again")

    with monkeypatch.context() as patched:
        patched.setattr(tokens.jwt, "decode", no_decode)
        assert await verifier.verify(short) == first
        await verifier.verify(retired)
        patched.setattr(tokens.time, "time", lambda: now + 10 + 6)  # past exp + leeway
        with pytest.raises(AssertionError):  # no longer remembered: decoded in full, where
            await verifier.verify(short)  # PyJWT refuses it as expired (tested above)
    jwks_server.keys = [signer]  # auth retires the old key; the TTL runs out
    clock.now += 301
    await _refused(verifier, retired)


async def test_refetches_are_rate_limited_under_a_flood_of_unknown_kids(
    jwks_server: JwksServer, signer: TokenSigner
) -> None:
    clock = FakeClock()
    verifier = _remote(jwks_server, clock, min_refetch_interval_s=5)
    await verifier.verify(signer.mint(uuid4()))
    clock.now += 10
    flood = [TokenSigner(kid=f"random-{n}").mint(uuid4()) for n in range(100)]
    results = await asyncio.gather(*(verifier.verify(t) for t in flood), return_exceptions=True)
    assert all(isinstance(r, ProblemError) and r.status == 401 for r in results)
    for token in flood[:20]:  # and one after another, within the interval
        await _refused(verifier, token)
    assert jwks_server.hits == 2  # the first fetch and a single refetch for the whole flood
    clock.now += 5
    await _refused(verifier, flood[0])
    assert jwks_server.hits == 3  # the next refetch only once the interval has passed
    await verifier.verify(signer.mint(uuid4()))  # valid tokens were never disturbed


async def test_an_unreachable_key_set_keeps_the_known_keys(
    jwks_server: JwksServer, signer: TokenSigner
) -> None:
    clock = FakeClock()
    verifier = _remote(jwks_server, clock, ttl_s=300)
    await verifier.verify(signer.mint(uuid4()))
    jwks_server.failing = True
    clock.now += 301
    await verifier.verify(signer.mint(uuid4()))  # auth is down: the known keys still serve
    assert jwks_server.hits == 2


async def test_no_key_set_at_all_is_a_503(jwks_server: JwksServer, signer: TokenSigner) -> None:
    jwks_server.failing = True
    verifier = _remote(jwks_server, FakeClock())
    with pytest.raises(ProblemError) as raised:
        await verifier.verify(signer.mint(uuid4()))
    assert raised.value.status == 503


async def test_from_settings_picks_the_inline_jwks_or_the_url(signer: TokenSigner) -> None:
    @dataclass
    class Settings:
        auth_jwks_url: str = "http://127.0.0.1:1/.well-known/jwks.json"
        auth_jwks: str | None = None
        auth_issuer: str = ISSUER
        auth_audience: str = AUDIENCE

    inline = TokenVerifier.from_settings(Settings(auth_jwks=signer.jwks_json()))
    assert inline.jwks_url is None and inline.key_ids == {signer.kid}
    user = uuid4()
    assert (await inline.verify(signer.mint(user))).user_id == UUID(str(user))
    remote = TokenVerifier.from_settings(Settings())
    assert remote.jwks_url == Settings.auth_jwks_url


# ----------------------------------------------------------------------------------------------
# Revocations: a revoked API key and ended sessions are refused before their tokens expire.


async def _revoked(verifier: TokenVerifier, token: str) -> None:
    problem = await _refused(verifier, token)
    assert problem.type == "/problems/revoked-token"


async def test_a_token_of_a_revoked_key_is_refused_at_once_even_when_remembered(
    verifier: TokenVerifier, signer: TokenSigner
) -> None:
    user = uuid4()
    keyed = signer.mint(user, scopes=["read"], key_id="0123456789abcdef")
    other_key = signer.mint(user, scopes=["read"], key_id="fedcba9876543210")
    session = signer.mint(user)
    for token in (keyed, other_key, session):
        await verifier.verify(token)  # verified, and remembered
    verifier.revocations.add(RevokedKey("0123456789abcdef", time.time()))
    await _revoked(verifier, keyed)
    assert (await verifier.verify(other_key)).key_id == "fedcba9876543210"
    assert (await verifier.verify(session)).key_id is None


async def test_tokens_below_the_users_session_version_are_refused(
    verifier: TokenVerifier, signer: TokenSigner
) -> None:
    user, someone_else = uuid4(), uuid4()
    old = signer.mint(user, session_version=1)
    old_key = signer.mint(user, scopes=["read"], key_id="0123456789abcdef", session_version=1)
    unversioned = signer.mint(user)  # a token from before versions: version 0
    theirs = signer.mint(someone_else, session_version=1)
    await verifier.verify(old)
    verifier.revocations.add(RevokedSessions(user, 2, time.time()))
    for token in (old, old_key, unversioned):
        await _revoked(verifier, token)
    assert (await verifier.verify(signer.mint(user, session_version=2))).session_version == 2
    assert (await verifier.verify(theirs)).user_id == someone_else
    # An older event arriving late lowers nothing.
    verifier.revocations.add(RevokedSessions(user, 1, time.time()))
    await _revoked(verifier, signer.mint(user, session_version=1))


@pytest.mark.parametrize(
    "claims",
    [{"session_version": "2"}, {"session_version": True}, {"session_version": -1}, {"key_id": ""},
     {"key_id": 7}],
)  # fmt: skip
async def test_malformed_revocation_claims_are_refused(
    verifier: TokenVerifier, signer: TokenSigner, claims: dict[str, Any]
) -> None:
    await _refused(verifier, signer.mint(uuid4(), **claims))


async def test_revocations_arrive_as_auth_events_and_old_ones_are_pruned() -> None:
    from trademesh_events.auth import ApiKeyRevoked, SessionsRevoked, UserLoggedIn

    clock = FakeClock()
    clock.now = time.time()
    revocations = Revocations(keep_s=960, clock=clock)
    seen: list[Any] = []
    revocations.listen(seen.append)
    user = uuid4()
    now = datetime.fromtimestamp(clock.now, UTC)
    await revocations.on_event(ApiKeyRevoked(user_id=user, key_id="0123456789abcdef", ts=now))
    await revocations.on_event(
        SessionsRevoked(user_id=user, session_version=3, reason="role_changed", ts=now)
    )
    await revocations.on_event(UserLoggedIn(user_id=user, method="password", ts=now))  # ignored
    # The same revocations again (auth's snapshot repeats the bus) are no news to listeners.
    revocations.load(
        {
            "keys": [{"key_id": "0123456789abcdef", "revoked_at": now.isoformat()}],
            "sessions": [
                {"user_id": str(user), "session_version": 3, "revoked_at": now.isoformat()}
            ],
        }
    )
    assert seen == [
        RevokedKey("0123456789abcdef", now.timestamp()),
        RevokedSessions(user, 3, now.timestamp()),
    ]
    assert len(revocations) == 2
    clock.now += 961  # every token they refused has expired: they go with the next change
    revocations.add(RevokedKey("fedcba9876543210", clock.now))  # pragma: allowlist secret
    assert len(revocations) == 1


async def test_a_verifier_loads_auths_snapshot_before_it_accepts_a_token(
    jwks_server: JwksServer, signer: TokenSigner
) -> None:
    @dataclass
    class Settings:
        auth_jwks_url: str
        auth_jwks: str | None = None
        auth_issuer: str = ISSUER
        auth_audience: str = AUDIENCE

    user = uuid4()
    revoked_at = datetime.now(UTC).isoformat()
    jwks_server.snapshot["keys"].append({"key_id": "0123456789abcdef", "revoked_at": revoked_at})
    jwks_server.snapshot["sessions"].append(
        {"user_id": str(user), "session_version": 2, "revoked_at": revoked_at}
    )
    jwks_server.snapshot_failing = True
    verifier = TokenVerifier.from_settings(
        Settings(auth_jwks_url=jwks_server.url), min_refetch_interval_s=0.0
    )
    assert verifier.revocations_url == jwks_server.url.replace(
        "/.well-known/jwks.json", REVOCATIONS_PATH
    )
    # Until it has auth's revocations once, it accepts nothing: it could not tell.
    with pytest.raises(ProblemError) as raised:
        await verifier.verify(signer.mint(uuid4()))
    assert raised.value.status == 503
    jwks_server.snapshot_failing = False
    await _revoked(verifier, signer.mint(uuid4(), key_id="0123456789abcdef"))
    await _revoked(verifier, signer.mint(user, session_version=1))
    assert (await verifier.verify(signer.mint(user, session_version=2))).user_id == user
    # Auth down later: what it said is kept, and tokens still verify.
    jwks_server.snapshot_failing = True
    assert (await verifier.verify(signer.mint(uuid4()))).role == "trader"


async def test_requests_that_come_while_the_snapshot_loads_wait_for_it(
    jwks_server: JwksServer, signer: TokenSigner
) -> None:
    verifier = TokenVerifier(
        issuer=ISSUER,
        audience=AUDIENCE,
        jwks_url=jwks_server.url,
        revocations_url=jwks_server.url.replace("/.well-known/jwks.json", REVOCATIONS_PATH),
    )
    tokens = [signer.mint(uuid4()) for _ in range(5)]
    verified = await asyncio.gather(*(verifier.verify(token) for token in tokens))
    assert len(verified) == 5 and jwks_server.snapshot_hits == 1
