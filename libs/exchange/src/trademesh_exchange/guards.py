"""Guards on ccxt's per-record parsers: one record ccxt cannot read (or whose time it cannot
read) never costs the rest of an answer.

ccxt parses an answer record by record (`parse_order`, `parse_trade`, `parse_ohlcv`, ...) and a
parser that raises fails the whole call, while a trade without a time breaks ccxt's sorting or
is dropped silently. A guarded parser hands such a record to the caller's `refuse` (which
reports it) and returns what `refuse` gives in its place: a placeholder that ccxt sorts and
filters like any record (time 0, so a `since` filter drops it; an empty id) and that the caller
recognises and skips (`is_placeholder`, `PlaceholderCandle`). No ccxt import.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Parser = Callable[..., Any]
MALFORMED = "_trademesh_malformed"  # marks a placeholder; its value is the reason
_ORIGINALS = "_trademesh_parsers"  # ccxt's own parsers, kept on the exchange


class PlaceholderCandle(list[Any]):
    """A candle a guard refused (a list, so that ccxt's sorting still works)."""


def placeholder(record: Any, market: Any, reason: str) -> dict[str, Any]:
    """What stands in for an order or trade ccxt could not read: marked with the reason, at time
    0 with an empty id, in the market's symbol, the exchange's record as its `info`."""
    symbol = market.get("symbol") if isinstance(market, dict) else None
    return {MALFORMED: reason, "id": "", "timestamp": 0, "symbol": symbol, "info": record}


def placeholder_candle() -> PlaceholderCandle:
    return PlaceholderCandle([0, None, None, None, None, None])


def is_placeholder(record: Any) -> bool:
    """The record is a placeholder of a refused one (already reported by its guard)."""
    return isinstance(record, dict) and bool(record.get(MALFORMED))


def guard(
    parse: Parser,
    *,
    unreadable: Callable[[Exception], str],
    refuse: Callable[[Any, Any, str], Any],
    check: Callable[[Any], str | None] | None = None,
) -> Parser:
    """ccxt's parser `parse(record, market)`, guarded: when it raises, the reason is
    `unreadable(exc)`; when `check(parsed)` finds fault, its answer is the reason. Either way
    `refuse(record, market, reason)` is called and its answer returned instead."""

    def guarded(record: Any, market: Any = None) -> Any:
        try:
            parsed = parse(record, market)
        except Exception as exc:
            return refuse(record, market, unreadable(exc))
        reason = None if check is None else check(parsed)
        return parsed if reason is None else refuse(record, market, reason)

    return guarded


def install(exchange: Any, guards: Mapping[str, Callable[[Parser], Parser]]) -> None:
    """Replace each named parser of the exchange by its guard around ccxt's own parser, which is
    kept on the exchange: guarding it again (a feed run again on the same exchange) wraps ccxt's
    parser anew, not the earlier guard."""
    originals: dict[str, Parser] | None = getattr(exchange, _ORIGINALS, None)
    if originals is None:
        originals = {}
        setattr(exchange, _ORIGINALS, originals)
    for name, wrap in guards.items():
        original = originals.setdefault(name, getattr(exchange, name))
        setattr(exchange, name, wrap(original))
