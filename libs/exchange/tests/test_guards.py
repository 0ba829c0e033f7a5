"""Guards on ccxt's parsers: a record the parser chokes on, or one its check refuses, is handed
to the caller and replaced by a placeholder that ccxt still sorts and filters; guarding again
wraps ccxt's own parser."""

from __future__ import annotations

from typing import Any

import ccxt
import pytest
from trademesh_exchange.guards import (
    MALFORMED,
    PlaceholderCandle,
    guard,
    install,
    is_placeholder,
    placeholder,
    placeholder_candle,
)

pytestmark = pytest.mark.unit

MARKET = {"symbol": "BTC/USDT", "id": "BTCUSDT"}


def _parse(record: Any, market: Any = None) -> Any:
    return {"id": record["a"], "timestamp": record.get("T"), "symbol": MARKET["symbol"]}


def _undated(parsed: Any) -> str | None:
    return "the time does not parse" if parsed.get("timestamp") is None else None


def test_a_record_the_parser_reads_passes_unchanged() -> None:
    refused: list[tuple[Any, str]] = []
    guarded = guard(
        _parse,
        unreadable=lambda exc: f"unreadable ({type(exc).__name__})",
        refuse=lambda record, market, reason: refused.append((record, reason)),
        check=_undated,
    )
    assert guarded({"a": 1, "T": 5}, MARKET) == {"id": 1, "timestamp": 5, "symbol": "BTC/USDT"}
    assert refused == []


def test_a_record_the_parser_chokes_on_or_the_check_refuses_is_replaced() -> None:
    refused: list[tuple[Any, Any, str]] = []

    def refuse(record: Any, market: Any, reason: str) -> Any:
        refused.append((record, market, reason))
        return placeholder(record, market, reason)

    guarded = guard(
        _parse,
        unreadable=lambda exc: f"unreadable ({type(exc).__name__}: {exc})",
        refuse=refuse,
        check=_undated,
    )
    choked = guarded({"no": "id"}, MARKET)
    undated = guarded({"a": 2}, MARKET)
    assert refused == [
        ({"no": "id"}, MARKET, "unreadable (KeyError: 'a')"),
        ({"a": 2}, MARKET, "the time does not parse"),
    ]
    assert choked == {
        MALFORMED: "unreadable (KeyError: 'a')",
        "id": "",
        "timestamp": 0,
        "symbol": "BTC/USDT",
        "info": {"no": "id"},
    }
    assert is_placeholder(choked) and is_placeholder(undated)
    assert not is_placeholder({"id": "1"}) and not is_placeholder([0, 1])


def test_without_a_check_only_a_failing_parse_is_refused() -> None:
    guarded = guard(
        _parse,
        unreadable=str,
        refuse=lambda record, market, reason: "refused",
    )
    assert guarded({"a": 3}, None) == {"id": 3, "timestamp": None, "symbol": "BTC/USDT"}
    assert guarded({}, None) == "refused"


def test_a_placeholder_candle_is_still_a_sortable_candle() -> None:
    candle = placeholder_candle()
    assert isinstance(candle, PlaceholderCandle) and isinstance(candle, list)
    assert candle == [0, None, None, None, None, None]
    assert sorted([[60_000, 1, 1, 1, 1, 1], candle], key=lambda c: c[0])[0] is candle
    assert placeholder({"x": 1}, None, "why")["symbol"] is None


def test_ccxt_keeps_the_rest_of_an_answer_and_filters_the_placeholder_by_time() -> None:
    """ccxt's own parse_trades around a guarded parse_trade: the bad record does not fail the
    list, sorts first, and a `since` filter drops it."""
    exchange = ccxt.binance()
    refused: list[str] = []

    def refuse(record: Any, market: Any, reason: str) -> Any:
        refused.append(reason)
        return placeholder(record, market, reason)

    install(
        exchange,
        {
            "parse_trade": lambda parse: guard(
                parse, unreadable=lambda exc: type(exc).__name__, refuse=refuse, check=_undated
            )
        },
    )
    market = exchange.safe_market("BTCUSDT", None, None, "spot")
    good = {"a": 26129, "p": "67504.00", "q": "0.001", "T": 1717243200000, "m": True}
    bad = {"a": 26130, "p": "67504.00", "q": "0.001", "T": "yesterday", "m": True}
    trades = exchange.parse_trades([good, bad], market)
    assert [is_placeholder(t) for t in trades] == [True, False]
    assert trades[1]["id"] == "26129" and refused == ["the time does not parse"]
    assert len(exchange.parse_trades([good, bad], market, 1717243200000)) == 1


def test_guarding_again_wraps_ccxts_parser_not_the_earlier_guard() -> None:
    class Exchange:
        def parse_trade(self, record: Any, market: Any = None) -> Any:
            return ("ccxt", record)

    exchange = Exchange()
    for label in ("first", "second"):
        install(
            exchange,
            {"parse_trade": lambda parse, label=label: lambda r, m=None: (label, parse(r, m))},
        )
    assert exchange.parse_trade(1) == ("second", ("ccxt", 1))
