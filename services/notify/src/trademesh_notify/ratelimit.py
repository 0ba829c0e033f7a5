"""Per-channel rate limits on deliveries, with `limits` (as the gateway's per-user limits).

A sliding window counter (`SlidingWindowCounterRateLimiter`, the gateway's choice for its cost:
two counters per key). The key is the channel's kind and id: one channel's flood does not hold
up another's. A Telegram bot has a limit of its own across all its chats (Telegram allows a bot
about 30 messages a second in all), keyed by a digest of its token, never the token. A send is
counted only when every limit it is under has room: one put off uses up none of them. The
counters live in the storage named by `delivery_rate_limit_storage_uri`: `memory://` for one
process, a Redis or Valkey URI for replicas that must share one limit.
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

    async def admit(
        self, kind: str, channel_id: UUID, bot_token: str | None = None
    ) -> datetime | None:
        """Count one send to the channel (and, with `bot_token`, one message of that Telegram
        bot): None when all their limits allow it now, else when the first that does not will
        (the delivery is put off until then, and nothing was counted). A storage that does not
        answer admits (logged): a limit is no reason to stop deliveries."""
        counts = [(item, kind, str(channel_id)) for item in self.items(kind)]
        if bot_token is not None:
            digest = hashlib.sha256(bot_token.encode()).hexdigest()[:32]
            counts += [(item, "telegram_bot", digest) for item in self.per_bot]
        try:
            # Look first, then count: a send put off by one limit uses up none of the others
            # (a chat's 20 a minute would otherwise go on sends its bot's limit put off).
            for item, space, key in counts:
                if not await self.limiter.test(item, NAMESPACE, space, key):
                    return await self._reset(item, space, key)
            for item, space, key in counts:
                if not await self.limiter.hit(item, NAMESPACE, space, key):
                    return await self._reset(item, space, key)  # taken meanwhile by another
        except Exception as exc:  # the storage's errors are its driver's own types
            log.warning("rate-limit storage failed; sending without a limit", error=repr(exc))
        return None

    async def _reset(self, item: RateLimitItem, space: str, key: str) -> datetime:
        stats = await self.limiter.get_window_stats(item, NAMESPACE, space, key)
        return datetime.fromtimestamp(max(stats.reset_time, time.time() + MIN_DEFER_S), UTC)
