"""Whose account is it: asked of execution, which owns accounts, with the caller's own token.

Accounts (paper and exchange) live in execution's schema. Other services keep data per account
id (risk's limits and kill switches, strategy's bots) and must not act on an account for a
caller who does not hold it (BOLA). They cannot read execution's schema (docs/architecture.md:
services talk through events or the owner's HTTP API), so they ask execution's
`GET /api/v1/accounts/{id}` with the caller's access token: execution answers 200 for the
caller's own account and 404 for any other, so it alone decides, and the asking service trusts
no identity it did not verify itself (the token was verified before this is called).

A yes is cached per (user, account) for `ttl_s`: an account never changes hands, and the cache
spares execution one call per request. A no is never cached (the account may be opened a moment
later). When execution cannot answer, the answer is a 503 problem: the check fails closed.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping
from urllib.parse import quote
from uuid import UUID

import httpx

from trademesh_http.caller import Caller
from trademesh_http.problems import ProblemError

__all__ = ["AccountOwners"]


class AccountOwners:
    """`await owners.check(account_id, caller)`: nothing if the account is the caller's, else a
    404 problem (unknown to this caller), or 503 when execution could not say."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        ttl_s: float = 60.0,
        max_entries: int = 10_000,
        owns_client: bool = False,
    ) -> None:
        self._client = client
        self._owns_client = owns_client
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._known: OrderedDict[tuple[UUID, str], float] = OrderedDict()
        self.calls = 0  # requests made to execution (the tests read it)

    @classmethod
    def for_url(
        cls,
        execution_url: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout_s: float = 5.0,
        ttl_s: float = 60.0,
    ) -> AccountOwners:
        """A checker with its own pooled client on execution at `execution_url`."""
        client = httpx.AsyncClient(
            base_url=execution_url.rstrip("/"),
            transport=transport,
            timeout=timeout_s,
            follow_redirects=False,
        )
        return cls(client, ttl_s=ttl_s, owns_client=True)

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def check(
        self,
        account_id: UUID | str,
        caller: Caller,
        *,
        admin_may: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Raise unless `caller` holds `account_id`. With `admin_may`, an admin passes for any
        account (risk officers set limits and kill switches on every account); `headers` are
        added to the call (request id, trace context)."""
        if admin_may and caller.role == "admin":
            return
        account = str(account_id)
        key = (caller.user_id, account)
        now = time.monotonic()
        seen = self._known.get(key)
        if seen is not None and now - seen < self.ttl_s:
            return
        try:
            self.calls += 1
            response = await self._client.get(
                f"/api/v1/accounts/{quote(account, safe='')}",
                headers={**(headers or {}), **caller.auth_headers()},
            )
        except httpx.HTTPError:
            raise _unavailable() from None
        if response.status_code == 200:
            self._remember(key, now)
            return
        if response.status_code in (404, 422):
            raise ProblemError(404, "Unknown account", f"No account {account}.")
        if response.status_code in (401, 403):
            raise ProblemError(
                403,
                "Forbidden",
                "The account's owner could not be checked for this caller.",
                type="/problems/forbidden",
            )
        raise _unavailable()

    def _remember(self, key: tuple[UUID, str], now: float) -> None:
        self._known[key] = now
        self._known.move_to_end(key)
        while len(self._known) > self.max_entries:
            self._known.popitem(last=False)


def _unavailable() -> ProblemError:
    return ProblemError(
        503,
        "Account owner unknown",
        "The execution service, which keeps accounts, could not say whose account this is.",
        headers={"Retry-After": "1"},
    )
