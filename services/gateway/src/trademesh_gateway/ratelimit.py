"""Rate limits per client address (before authentication) and per user (after), with `limits`.

A sliding window counter (`limits.aio.strategies.SlidingWindowCounterRateLimiter`): the count of
the current window plus the previous window's, weighted by how much of it the sliding window
still covers; so no burst of twice the limit at a window's edge, as a fixed window would allow.
It keeps two counters per key where a moving window keeps a timestamp per request: the moving
window's memory storage inserted each hit at the head of a list as long as the limit and expired
them in a task that held the key's lock across a thread hop: ~6% of the gateway's time per
request (docs/decisions/0122-gateway-wire-speed.md). The counters live in the storage named by
`rate_limit_storage_uri`: `memory://` for one process, a Redis or Valkey URI for replicas that
must share one limit (the plain `redis://` of the settings becomes limits' `async+redis://`; one
script call per hit there).
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse_many
from limits.aio.storage import Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.storage import storage_from_string
from trademesh_http import ProblemError
from trademesh_observability import metrics

NAMESPACE = "trademesh-gateway"


def async_storage_uri(uri: str) -> str:
    """limits' async scheme for a settings URI (memory://, redis://, valkey://...)."""
    return uri if uri.startswith("async+") else f"async+{uri}"


class RateLimits:
    """The gateway's two limits over one storage."""

    def __init__(
        self, storage_uri: str, per_user: str, per_ip: str, *, service: str = "gateway"
    ) -> None:
        self.service = service
        storage = storage_from_string(async_storage_uri(storage_uri))
        if not isinstance(storage, Storage):
            raise ValueError("the rate-limit storage is not an async one")
        self.storage = storage
        self.limiter = SlidingWindowCounterRateLimiter(storage)
        self.per_user: list[RateLimitItem] = parse_many(per_user)
        self.per_ip: list[RateLimitItem] = parse_many(per_ip)

    async def hit_ip(self, address: str) -> None:
        """Count one request of `address`; 429 problem past the per-IP limit."""
        await self._hit(self.per_ip, "ip", address)

    async def hit_user(self, user: str) -> None:
        """Count one request of `user`; 429 problem past the per-user limit."""
        await self._hit(self.per_user, "user", user)

    async def _hit(self, items: list[RateLimitItem], kind: str, who: str) -> None:
        for item in items:
            if not await self.limiter.hit(item, NAMESPACE, kind, who):
                stats = await self.limiter.get_window_stats(item, NAMESPACE, kind, who)
                retry = max(1, math.ceil(stats.reset_time - time.time()))
                metrics.GATEWAY_RATE_LIMITED.labels(service=self.service, scope=kind).inc()
                raise ProblemError(
                    429,
                    "Too many requests",
                    f"More than {item} per {kind}; retry in {retry} s.",
                    type="/problems/rate-limited",
                    headers={"Retry-After": str(retry)},
                    limit=str(item),
                    scope=kind,
                )

    async def check(self) -> None:
        """Raise unless the storage answers (readiness, with a shared storage)."""
        if not await self.storage.check():
            raise ConnectionError("the rate-limit storage does not answer")
