"""A stand-in for the one execution route other services ask about accounts, for their own tests.

risk and strategy ask execution's `GET /api/v1/accounts/{id}`, with the caller's token, whether
an account is the caller's (trademesh_http.accounts). Their service tests run without an
execution service; this answers that route as execution does: 200 for an account the token's
user holds, 404 for any other, 401 for a token the test signer did not sign. The tests that run
the real execution beside risk and strategy are the gateway's platform tests, which also call
risk and strategy directly with another user's account.
"""

from __future__ import annotations

import uuid
from functools import cache
from uuid import UUID

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from trademesh_http.problems import ProblemError
from trademesh_http.tokens import TokenVerifier

from trademesh_testing.tokens import signer

__all__ = ["AccountBook", "book"]


class AccountBook:
    """Accounts and their holders; `transport` reaches its route without a socket."""

    def __init__(self) -> None:
        self._holders: dict[UUID, UUID] = {}
        self.asked = 0
        test_signer = signer()
        self._verifier = TokenVerifier(
            issuer=test_signer.issuer, audience=test_signer.audience, jwks=test_signer.jwks()
        )
        self.app = Starlette(routes=[Route("/api/v1/accounts/{account_id}", self._account)])

    @property
    def transport(self) -> httpx.AsyncBaseTransport:
        return httpx.ASGITransport(app=self.app)

    def open(self, user_id: UUID) -> UUID:
        """A new account held by `user_id`."""
        account_id = uuid.uuid4()
        self.grant(user_id, account_id)
        return account_id

    def grant(self, user_id: UUID, account_id: UUID) -> UUID:
        """Record `account_id` as held by `user_id` (an account never changes hands)."""
        holder = self._holders.setdefault(account_id, user_id)
        assert holder == user_id, f"account {account_id} is already held by another user"
        return account_id

    async def _account(self, request: Request) -> JSONResponse:
        self.asked += 1
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return JSONResponse({"title": "No access token"}, status_code=401)
        try:
            claims = await self._verifier.verify(token)
        except ProblemError as exc:
            return JSONResponse({"title": exc.title}, status_code=exc.status)
        try:
            account_id = UUID(request.path_params["account_id"])
        except ValueError:
            return JSONResponse({"title": "Invalid account id"}, status_code=422)
        if self._holders.get(account_id) != claims.user_id:
            return JSONResponse({"title": "Unknown account"}, status_code=404)
        return JSONResponse({"account_id": str(account_id), "user_id": str(claims.user_id)})


@cache
def book() -> AccountBook:
    """The test session's account book (test users are new ids, so tests never share accounts);
    the `account_book` fixture is this book."""
    return AccountBook()
