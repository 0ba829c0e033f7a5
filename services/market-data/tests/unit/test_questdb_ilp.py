"""The QuestDB store's ILP payloads, byte for byte, and its SAMPLE BY interval: no server needed.

Expected bytes are written from the ILP spec. Protocol 2 and later (what QuestDB 9+ agrees to)
send a double as `name==` then type byte 0x10 and the 8 IEEE 754 bytes, little-endian, and the
designated timestamp as microseconds with a `t` suffix. Protocol 1 (older servers) writes doubles
as text and the timestamp as bare nanoseconds. Symbols come first, after the table name and commas; columns after a space.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from trademesh_events.marketdata import Bar, Tick
from trademesh_trading.timeframes import Timeframe

from trademesh_market_data.questdb import ilp_bars, ilp_ticks, sample_interval

pytestmark = pytest.mark.unit

BTC = "binance:BTC/USDT"
T0 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)  # 20458 days and 9.5 h after the epoch
T0_MICROS = b"1767605400000000"
T0_NANOS = b"1767605400000000000"


def tick(price: str, size: str, **fields: object) -> Tick:
    return Tick.model_validate(
        {"instrument_id": BTC, "ts": T0, "price": price, "size": size, **fields}
    )


def bar(*, final: bool = True) -> Bar:
    return Bar(
        instrument_id=BTC,
        timeframe="1m",
        open_time=T0,
        close_time=T0 + timedelta(minutes=1),
        open=Decimal("100"),
        high=Decimal("101"),
        low=Decimal("99.5"),
        close=Decimal("100.25"),
        volume=Decimal("12.5"),
        trades=42,
        final=final,
    )


@pytest.mark.parametrize("version", [2, 3])
def test_tick_with_side_and_trade_id_is_one_line_with_binary_doubles(version: int) -> None:
    payload = ilp_ticks(
        [tick("64000.5", "0.5", side="buy", trade_id="t-1")], protocol_version=version
    )
    assert bytes(payload) == (
        b"ticks,instrument_id=binance:BTC/USDT,side=buy "
        b"price==\x10\x00\x00\x00\x00\x10\x40\xef\x40"  # 64000.5 = 0x40EF401000000000
        b",size==\x10\x00\x00\x00\x00\x00\x00\xe0\x3f"  # 0.5 = 0x3FE0000000000000
        b',trade_id="t-1" '
        b"1767605400000000t\n"
    )


def test_tick_without_side_or_trade_id_leaves_both_out() -> None:
    later = tick("100.25", "2", ts=T0 + timedelta(milliseconds=250))
    assert bytes(ilp_ticks([later], protocol_version=2)) == (
        b"ticks,instrument_id=binance:BTC/USDT "
        b"price==\x10\x00\x00\x00\x00\x00\x10\x59\x40"  # 100.25 = 0x4059100000000000
        b",size==\x10\x00\x00\x00\x00\x00\x00\x00\x40"  # 2.0 = 0x4000000000000000
        b" 1767605400250000t\n"
    )


def test_price_with_more_digits_than_a_double_holds_is_rounded_to_the_nearest_double() -> None:
    # 2.5 + 1e-20 is 2.5 to a double (which resolves 2.5 to about 4.4e-16).
    precise = tick("2.50000000000000000001", "1")
    assert bytes(ilp_ticks([precise], protocol_version=2)) == (
        b"ticks,instrument_id=binance:BTC/USDT "
        b"price==\x10\x00\x00\x00\x00\x00\x00\x04\x40"  # 2.5 = 0x4004000000000000
        b",size==\x10\x00\x00\x00\x00\x00\x00\xf0\x3f"  # 1.0 = 0x3FF0000000000000
        b" " + T0_MICROS + b"t\n"
    )
    assert bytes(ilp_ticks([precise], protocol_version=1)) == (
        b"ticks,instrument_id=binance:BTC/USDT price=2.5,size=1.0 " + T0_NANOS + b"\n"
    )


def test_ticks_are_one_line_each_in_order() -> None:
    first = tick("64000.5", "0.5", side="sell")
    second = tick("100.25", "2", ts=T0 + timedelta(milliseconds=250), trade_id="x y,z=\\")
    assert bytes(ilp_ticks([first, second], protocol_version=1)) == (
        b"ticks,instrument_id=binance:BTC/USDT,side=sell price=64000.5,size=0.5 " + T0_NANOS + b"\n"
        # Inside a quoted string only `"` and `\` are escaped.
        b'ticks,instrument_id=binance:BTC/USDT price=100.25,size=2.0,trade_id="x y,z=\\\\" '
        b"1767605400250000000\n"
    )


@pytest.mark.parametrize("version", [2, 3])
def test_final_bar_is_a_row_at_its_open_time_with_a_long_trade_count(version: int) -> None:
    assert bytes(ilp_bars([bar()], protocol_version=version)) == (
        b"bars,instrument_id=binance:BTC/USDT,timeframe=1m "
        b"open==\x10\x00\x00\x00\x00\x00\x00\x59\x40"  # 100.0 = 0x4059000000000000
        b",high==\x10\x00\x00\x00\x00\x00\x40\x59\x40"  # 101.0 = 0x4059400000000000
        b",low==\x10\x00\x00\x00\x00\x00\xe0\x58\x40"  # 99.5 = 0x4058E00000000000
        b",close==\x10\x00\x00\x00\x00\x00\x10\x59\x40"  # 100.25 = 0x4059100000000000
        b",volume==\x10\x00\x00\x00\x00\x00\x00\x29\x40"  # 12.5 = 0x4029000000000000
        b",trades=42i "
        b"1767605400000000t\n"
    )


def test_in_progress_bar_is_not_written() -> None:
    assert bytes(ilp_bars([bar(final=False)], protocol_version=2)) == b""
    assert bytes(ilp_bars([bar(final=False), bar()], protocol_version=1)) == (
        b"bars,instrument_id=binance:BTC/USDT,timeframe=1m "
        b"open=100.0,high=101.0,low=99.5,close=100.25,volume=12.5,trades=42i " + T0_NANOS + b"\n"
    )


@pytest.mark.parametrize("label", ["1s", "5m", "1h", "4h", "1d", "1w", "2w"])
def test_sample_interval_is_the_timeframe_label(label: str) -> None:
    assert sample_interval(Timeframe.parse(label)) == label


@pytest.mark.parametrize("label", ["1m; DROP TABLE ticks", "1M", "60"])
def test_sample_interval_refuses_a_timeframe_whose_label_does_not_parse(label: str) -> None:
    with pytest.raises(ValueError, match="timeframe"):
        sample_interval(Timeframe(60, label))


def test_sample_interval_refuses_a_label_that_does_not_match_the_length() -> None:
    with pytest.raises(ValueError, match="does not match"):
        sample_interval(Timeframe(300, "1m"))
