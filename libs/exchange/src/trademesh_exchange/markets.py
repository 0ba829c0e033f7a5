"""An exchange's markets from its public endpoints only: no credentials are ever given to the
exchange, and a network failure is tried again after a growing wait.

This is the load of a reader of public market info (risk's venue rules); a venue with an
account's credentials loads its markets through its own exchange object, shared with the
others of its exchange (`shared`). ccxt is imported on the first load, not with this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from trademesh_exchange.errors import Failure, classify
from trademesh_exchange.exchanges import exchange_class

# Configuration keys that would give the exchange credentials.
CREDENTIALS = frozenset(
    {"apiKey", "secret", "password", "uid", "privateKey", "walletAddress", "token", "login"}
)
# Worth another try soon: the network or the exchange failing, not a refusal or a bad answer.
_TRANSIENT = frozenset({Failure.TIMED_OUT, Failure.UNREACHABLE, Failure.TRANSPORT})


def refuse_credentials(config: Mapping[str, Any]) -> None:
    """ValueError if the ccxt configuration would give the exchange credentials."""
    given = CREDENTIALS & set(config)
    if given:
        raise ValueError(f"the market info is public: no {', '.join(sorted(given))}")


def _transient(exc: BaseException) -> bool:
    return classify(exc).failure in _TRANSIENT


async def _load_once(
    exchange_type: type[Any], config: Mapping[str, Any]
) -> tuple[int, list[object]]:
    exchange = exchange_type(dict(config))
    try:
        markets = await exchange.load_markets(True)
        return exchange.precisionMode, list(markets.values())
    finally:
        await exchange.close()


async def load_public_markets(
    exchange_id: str,
    config: Mapping[str, Any],
    *,
    attempts: int = 3,
    retry_wait_s: float = 0.5,
) -> tuple[int, list[object]]:
    """The exchange's precision mode and its unified markets, from its public endpoints, with
    the ccxt `config` (no credentials: ValueError); UnknownExchange for an id ccxt does not
    know. A network failure is tried again, `attempts` times in all, after a growing wait."""
    found = exchange_class(exchange_id, websocket=False)
    refuse_credentials(config)
    retrying = AsyncRetrying(
        retry=retry_if_exception(_transient),
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=retry_wait_s, max=10 * retry_wait_s),
        reraise=True,
    )
    return await retrying(_load_once, found.type, config)
