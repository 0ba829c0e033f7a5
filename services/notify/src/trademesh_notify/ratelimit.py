"""Per-channel rate limits on deliveries, with `limits` (as the gateway's per-user limits).

A sliding window counter (`SlidingWindowCounterRateLimiter`, the gateway's choice for its cost:
two counters per key). The key is the channel's kind and id: one channel's flood does not hold
up another's. A Telegram bot has a limit of its own across all its chats (Telegram allows a bot
about 30 messages a second in all), keyed by a digest of its token, never the token. The counters live in the storage named by `delivery_rate_limit_storage_uri`:
`memory://` for one process, a Redis or Valkey URI for replicas that must share one limit.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from uuid import UUID

from limits import RateLimitItem, parse_many
from limits.aio.storage import Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.storage import storage_from_string
from trademesh_observability.logging import get_logger

NAMESPACE = "trademesh-notify"
# A delivery put off is put off at least this long: the window's estimate can be "now".
MIN_DEFER_S = 0.05

log = get_logger("trademesh_notify.ratelimit")


def async_storage_uri(uri: str) -> str:
    """limits' async scheme for a settings URI (memory://, redis://, valkey://...)."""
    return uri if uri.startswith("async+") else f"async+{uri}"


class ChannelLimits:
    """What each channel may be sent, per its kind; "default" for a kind not named."""

    def __init__(
        self, storage_uri: str, per_kind: Mapping[str, str], per_bot: str | None = None
    ) -> None:
        storage = storage_from_string(async_storage_uri(storage_uri))
        if not isinstance(storage, Storage):
            raise ValueError("the rate-limit storage is not an async one")
        self.storage = storage
        self.limiter = SlidingWindowCounterRateLimiter(storage)
        self.per_kind: dict[str, list[RateLimitItem]] = {
            kind: parse_many(notation) for kind, notation in per_kind.items()
        }
        self.per_bot: list[RateLimitItem] = parse_many(per_bot) if per_bot else []

    def items(self, kind: str) -> list[RateLimitItem]:
        return self.per_kind.get(kind, self.per_kind.get("default", []))

    async def admit(self, kind: str, channel_id: UUID) -> datetime | None:
        """Count one send to the channel: None when its limits allow it now, else when they
        will (the delivery is put off until then; nothing was counted for the limit it is
        over, the ones before it in the list were). A storage that does not answer admits
        (logged): a limit is no reason to stop deliveries."""
        return await self._admit(self.items(kind), kind, str(channel_id))

    async def admit_bot(self, token: str) -> datetime | None:
        """Count one message of the Telegram bot with this token, whatever its chat, as `admit`
        does a channel's."""
        digest = hashlib.sha256(token.encode()).hexdigest()[:32]
        return await self._admit(self.per_bot, "telegram_bot", digest)

    async def _admit(self, items: list[RateLimitItem], kind: str, key: str) -> datetime | None:
        try:
            for item in items:
                if not await self.limiter.hit(item, NAMESPACE, kind, key):
                    stats = await self.limiter.get_window_stats(item, NAMESPACE, kind, key)
                    at = max(stats.reset_time, time.time() + MIN_DEFER_S)
                    return datetime.fromtimestamp(at, UTC)
        except Exception as exc:  # the storage's errors are its driver's own types
            log.warning("rate-limit storage failed; sending without a limit", error=repr(exc))
        return None
