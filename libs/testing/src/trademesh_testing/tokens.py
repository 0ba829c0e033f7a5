"""A test signer of access tokens: what the auth service issues, without an auth service.

One Ed25519 key pair per test session (`signer()`, also the `token_signer` fixture) signs tokens
of the auth contract: header `alg EdDSA`, `kid`, `typ at+jwt`; claims `iss`, `aud`, `sub`,
`role`, `scope`, `exp`, `nbf`, `iat`, `jti`. The plugin's settings (`service_settings`,
`TestInfra.settings`) set `auth_jwks` to this signer's JWKS, so every service test verifies the
tokens for real.

    from trademesh_testing.tokens import bearer
    await client.post("/api/v1/bots", json=..., headers=bearer(user_id))            # a trader
    await client.get("/api/v1/bots", headers=bearer(user_id, role="viewer"))

`mint(...)` builds any token, bad ones included: expired (`lifetime_s` negative or `exp=`),
not yet valid (`nbf=`), wrong `aud`/`iss` (claims), wrong `typ` (`header={"typ": "JWT"}`),
missing claims (`omit=("exp",)`) or signed by another key (`TokenSigner()` is a fresh one).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any
from uuid import UUID

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

ISSUER = "trademesh-auth"
AUDIENCE = "trademesh"
LIFETIME_S = 900  # the longest an access token lives

# What a password session of each role may do, as auth issues it.
_DEFAULT_SCOPES = {
    "admin": "read trade account",
    "trader": "read trade account",
    "viewer": "read account",
}


class TokenSigner:
    """An Ed25519 key pair with a kid that signs access tokens like the auth service does."""

    def __init__(
        self,
        *,
        kid: str | None = None,
        issuer: str = ISSUER,
        audience: str = AUDIENCE,
        private_key: Ed25519PrivateKey | None = None,
    ) -> None:
        self.kid = kid or f"test-{uuid.uuid4().hex[:12]}"
        self.issuer = issuer
        self.audience = audience
        self.private_key = private_key or Ed25519PrivateKey.generate()

    @property
    def public_jwk(self) -> dict[str, Any]:
        """The public key as a JWK (OKP, Ed25519) with kid, use and alg."""
        jwk: dict[str, Any] = json.loads(OKPAlgorithm.to_jwk(self.private_key.public_key()))
        return {**jwk, "kid": self.kid, "use": "sig", "alg": "EdDSA"}

    def jwks(self, *others: TokenSigner) -> dict[str, Any]:
        """The JWKS document of this key (and of `others`, as during a key rotation)."""
        return {"keys": [self.public_jwk, *(other.public_jwk for other in others)]}

    def jwks_json(self, *others: TokenSigner) -> str:
        return json.dumps(self.jwks(*others))

    def claims(
        self,
        user_id: UUID | str | None = None,
        role: str = "trader",
        scopes: Iterable[str] | str | None = None,
        *,
        lifetime_s: float = LIFETIME_S,
        now: float | None = None,
    ) -> dict[str, Any]:
        """The claims of a valid token for `user_id` (a new id when None)."""
        issued = int(time.time() if now is None else now)
        if scopes is None:
            scope = _DEFAULT_SCOPES.get(role, "read")
        else:
            scope = scopes if isinstance(scopes, str) else " ".join(scopes)
        return {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": str(user_id or uuid.uuid4()),
            "role": role,
            "scope": scope,
            "iat": issued,
            "nbf": issued,
            "exp": issued + int(lifetime_s),
            "jti": uuid.uuid4().hex,
        }

    def mint(
        self,
        user_id: UUID | str | None = None,
        role: str = "trader",
        scopes: Iterable[str] | str | None = None,
        *,
        lifetime_s: float = LIFETIME_S,
        now: float | None = None,
        header: Mapping[str, Any] | None = None,
        omit: Iterable[str] = (),
        **claims: Any,
    ) -> str:
        """A signed token: valid by default; `claims` override or add claims, `header` header
        fields (typ, kid), `omit` drops claims."""
        payload = self.claims(user_id, role, scopes, lifetime_s=lifetime_s, now=now)
        payload.update(claims)
        for name in omit:
            payload.pop(name, None)
        headers = {"kid": self.kid, "typ": "at+jwt", **(header or {})}
        return jwt.encode(payload, self.private_key, algorithm="EdDSA", headers=headers)

    def bearer(
        self,
        user_id: UUID | str | None = None,
        role: str = "trader",
        scopes: Iterable[str] | str | None = None,
        **claims: Any,
    ) -> dict[str, str]:
        """`{"Authorization": "Bearer <valid token>"}` for `user_id` with `role`; the default
        scopes are a login's ("read trade" for a trader or admin, "read" for a viewer)."""
        return {"Authorization": f"Bearer {self.mint(user_id, role, scopes, **claims)}"}


_session_signer: TokenSigner | None = None


def signer() -> TokenSigner:
    """The session's signer: one key pair for the whole test process."""
    global _session_signer
    if _session_signer is None:
        _session_signer = TokenSigner(kid="trademesh-test")
    return _session_signer


def bearer(
    user_id: UUID | str | None = None,
    role: str = "trader",
    scopes: Iterable[str] | str | None = None,
    **claims: Any,
) -> dict[str, str]:
    """`{"Authorization": "Bearer …"}` with a valid token of the session's signer."""
    return signer().bearer(user_id, role, scopes, **claims)


def mint(
    user_id: UUID | str | None = None,
    role: str = "trader",
    scopes: Iterable[str] | str | None = None,
    **options: Any,
) -> str:
    """A token of the session's signer (see TokenSigner.mint for the options)."""
    return signer().mint(user_id, role, scopes, **options)
