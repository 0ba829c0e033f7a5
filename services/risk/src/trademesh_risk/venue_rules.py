"""Instrument rules from the venue's market info: ccxt's unified markets turned into
`InstrumentRules`, and the sync that writes them, as the `venue` rules of `exchange:SYMBOL`.

Why here: an order off the venue's price or quantity grid, below its minimums or above its
maxima, is rejected by the venue anyway; denying it in risk says why, before anything is sent. Paper accounts trade the
market data of the same `exchange:SYMBOL` instruments, so the same rules apply to them.

The conversion (`rules_from_market`) reads ccxt's `precision` in the exchange's precisionMode:
TICK_SIZE (Binance and most exchanges today) gives the steps themselves; DECIMAL_PLACES gives a
number of decimals n, which is a step of 10**-n; SIGNIFICANT_DIGITS gives a number of significant
digits, which is no fixed step, so no step rule. The minimums are `limits.amount.min` (quantity)
and `limits.cost.min` (notional); the maxima `limits.amount.max`, `limits.price.max` and
`limits.cost.max` (Binance's LOT_SIZE maxQty, PRICE_FILTER maxPrice, NOTIONAL maxNotional).
Exchange data is untrusted: every number becomes a Decimal as the exchange wrote it
(`trademesh_exchange.parsing`), and a value that is not a positive finite number (None, zero,
negative, NaN, infinity, a bool, text that is no number) is left out, i.e. no rule rather than a
wrong one (Binance sends a maxPrice of 0 for "no maximum").

The load (`trademesh_exchange.markets.load_public_markets`) uses `ccxt.async_support` with public
endpoints only: no credentials are ever given to the exchange, and exchanges whose default market
load would reach further get options in `PUBLIC_CONFIG` (Binance: spot markets only, no futures
APIs). The sync (`VenueRules`)
writes only `venue` rows, so an admin's override (an `admin` row) is never overwritten.
Markets whose symbol does not make an instrument id (ccxt's `BTC/USDT:USDT` swaps have a colon)
are skipped and counted. Rules of markets a venue stops listing are left as they were: a venue
rejects orders on a delisted market anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import TypeAdapter, ValidationError
from trademesh_events.ids import InstrumentId
from trademesh_exchange.exchanges import UnknownExchange, known_exchange
from trademesh_exchange.markets import load_public_markets, refuse_credentials
from trademesh_exchange.parsing import decimal_or_none
from trademesh_observability.logging import get_logger

from trademesh_risk.engine import InstrumentRules
from trademesh_risk.store import RiskStore

log = get_logger("trademesh_risk.venue_rules")

# ccxt is imported where it is used (by trademesh_exchange, at the first load), not with this
# module: importing it takes seconds (every exchange's module), which a service without
# venue_rules_exchanges (tests, offline runs) need not pay.
# ccxt's precision modes (ccxt.base.decimal_to_precision; a unit test keeps them equal):
DECIMAL_PLACES = 2
SIGNIFICANT_DIGITS = 3
TICK_SIZE = 4
PRECISION_MODES = frozenset({DECIMAL_PLACES, SIGNIFICANT_DIGITS, TICK_SIZE})
# Decimal places beyond this (either way) are not a real venue's grid.
MAX_DECIMAL_PLACES = 30

# Per exchange, the ccxt configuration that keeps the market load on public endpoints the
# service needs. Binance would otherwise also load its USD-M and COIN-M futures markets.
PUBLIC_CONFIG: Mapping[str, Mapping[str, Any]] = {
    "binance": {
        "options": {
            "fetchMarkets": {"types": ["spot"]},
            "fetchCurrencies": False,
            "fetchMargins": False,
        }
    },
}
MAX_ERROR_TEXT = 300

_INSTRUMENT_ID: TypeAdapter[str] = TypeAdapter(InstrumentId)


class VenueRulesError(Exception):
    """The venue's market info could not be loaded: unreachable, failing, or unreadable."""


@dataclass(frozen=True)
class SyncResult:
    """One exchange's sync: how many instruments' rules were written, how many of those were new
    or different from the stored ones, and how many markets were left out."""

    exchange: str
    instruments: int
    changed: int
    skipped: int


# ---- the conversion (pure) --------------------------------------------------------------------


def _positive(value: object) -> Decimal | None:
    """A positive finite Decimal from an exchange's number, else None (no rule)."""
    return decimal_or_none(value, positive=True)


def _decimal_places(value: object) -> Decimal | None:
    """The step of a DECIMAL_PLACES precision n, 10**-n, when n is a whole number in range."""
    places = decimal_or_none(value, signed=True)
    if places is None or places != places.to_integral_value():
        return None
    if abs(places) > MAX_DECIMAL_PLACES:
        return None
    return Decimal(1).scaleb(-int(places))


def _step(value: object, precision_mode: int) -> Decimal | None:
    if precision_mode == TICK_SIZE:
        return _positive(value)
    if precision_mode == DECIMAL_PLACES:
        return _decimal_places(value)
    # SIGNIFICANT_DIGITS: the allowed values depend on the magnitude; there is no one step.
    return None


def _field(section: object, key: str) -> object:
    return section.get(key) if isinstance(section, Mapping) else None


def rules_from_market(market: Mapping[str, Any], precision_mode: int) -> InstrumentRules:
    """The rules of one ccxt unified market, read in the exchange's `precisionMode`."""
    if precision_mode not in PRECISION_MODES:
        raise ValueError(f"unknown ccxt precision mode {precision_mode!r}")
    precision = market.get("precision")
    limits = market.get("limits")
    return InstrumentRules(
        price_step=_step(_field(precision, "price"), precision_mode),
        quantity_step=_step(_field(precision, "amount"), precision_mode),
        min_quantity=_positive(_field(_field(limits, "amount"), "min")),
        min_notional=_positive(_field(_field(limits, "cost"), "min")),
        max_quantity=_positive(_field(_field(limits, "amount"), "max")),
        max_price=_positive(_field(_field(limits, "price"), "max")),
        max_notional=_positive(_field(_field(limits, "cost"), "max")),
    )


def rules_of_markets(
    exchange: str, markets: Iterable[object], precision_mode: int
) -> tuple[dict[str, InstrumentRules], int]:
    """Instrument id (`exchange:SYMBOL`) -> rules for every market whose symbol makes a valid
    instrument id, and how many markets were skipped (no such symbol, or not a market at all)."""
    out: dict[str, InstrumentRules] = {}
    skipped = 0
    for market in markets:
        symbol = market.get("symbol") if isinstance(market, Mapping) else None
        if not isinstance(market, Mapping) or not isinstance(symbol, str):
            skipped += 1
            continue
        try:
            instrument_id = _INSTRUMENT_ID.validate_python(f"{exchange}:{symbol}")
        except ValidationError:
            skipped += 1
            continue
        out[instrument_id] = rules_from_market(market, precision_mode)
    return out, skipped


# ---- the sync ---------------------------------------------------------------------------------


class VenueRules:
    """Keeps the `venue` rules of the configured exchanges' instruments up to date.

    `ccxt_config` replaces `PUBLIC_CONFIG` for the exchanges it names (tests point ccxt's urls at
    a local venue with it); a request timeout and ccxt's rate limiter are always added.
    """

    def __init__(
        self,
        store: RiskStore,
        exchanges: Sequence[str],
        *,
        refresh_s: float,
        ccxt_config: Mapping[str, Mapping[str, Any]] | None = None,
        timeout_s: float = 10.0,
        attempts: int = 3,
        retry_wait_s: float = 0.5,
    ) -> None:
        self.store = store
        self.exchanges = tuple(exchanges)
        self.refresh_s = refresh_s
        self.ccxt_config = dict(ccxt_config or {})
        self.timeout_s = timeout_s
        self.attempts = attempts
        self.retry_wait_s = retry_wait_s

    def config_of(self, exchange: str) -> dict[str, Any]:
        """The exchange's ccxt configuration; ValueError if it would give it credentials."""
        base = self.ccxt_config.get(exchange, PUBLIC_CONFIG.get(exchange, {}))
        refuse_credentials(base)
        return {**base, "timeout": int(self.timeout_s * 1000), "enableRateLimit": True}

    async def sync(self, exchange: str) -> SyncResult:
        """Load one exchange's markets and write their rules. UnknownExchange for an id ccxt
        does not know; VenueRulesError when the markets cannot be loaded, in which case the
        stored rules stay as they were."""
        if not known_exchange(exchange):
            raise UnknownExchange(f"{exchange!r} is not a ccxt exchange id")
        config = self.config_of(exchange)
        try:
            mode, markets = await load_public_markets(
                exchange,
                config,
                attempts=self.attempts,
                retry_wait_s=self.retry_wait_s,
            )
        except Exception as exc:
            # Any failure of ccxt's, its parsers' included: the answer is untrusted input.
            text = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_TEXT]
            raise VenueRulesError(
                f"the markets of {exchange} could not be loaded ({text})"
            ) from exc
        if mode not in PRECISION_MODES:
            raise VenueRulesError(f"{exchange} has an unknown ccxt precision mode {mode!r}")
        rules, skipped = rules_of_markets(exchange, markets, mode)
        changed = await self.store.put_venue_rules(rules)
        log.info(
            "venue rules synced",
            exchange=exchange,
            instruments=len(rules),
            changed=changed,
            skipped=skipped,
        )
        return SyncResult(exchange, len(rules), changed, skipped)

    async def sync_all(self) -> list[SyncResult]:
        """Every configured exchange in turn; one that fails is logged and left for the next
        refresh, and does not stop the others."""
        results = []
        for exchange in self.exchanges:
            try:
                results.append(await self.sync(exchange))
            except Exception:
                log.warning(
                    "venue rules sync failed; retried at the next refresh",
                    exchange=exchange,
                    exc_info=True,
                )
        return results

    async def run(self, stop: asyncio.Event) -> None:
        """Sync at once, then every refresh_s, until `stop`; a sync under way when `stop` is set
        is cancelled (its exchange is closed on the way out)."""
        while self.exchanges and not stop.is_set():
            syncing = asyncio.create_task(self.sync_all())
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({syncing, stopping}, return_when=asyncio.FIRST_COMPLETED)
            for task in (syncing, stopping):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.refresh_s)
