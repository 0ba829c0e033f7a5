"""make_client_order_id: deterministic, distinct per bot/bar/leg, short enough for any venue."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID

import pytest
from pydantic import TypeAdapter
from trademesh_events import orders
from trademesh_events.ids import ClientOrderId, make_client_order_id

pytestmark = pytest.mark.unit

BOT_A = UUID("0190a1b2-0000-7000-8000-00000000000a")
BOT_B = UUID("0190a1b2-0000-7000-8000-00000000000b")
BAR = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def test_deterministic() -> None:
    first = make_client_order_id(BOT_A, BAR, 0)
    assert first == make_client_order_id(BOT_A, BAR, 0)
    assert first == make_client_order_id(UUID(str(BOT_A)), BAR.replace(), 0)


def test_pinned_value() -> None:
    # A change of the derivation would let a restarted bot place a second order for the same intent.
    canonical = f"{BOT_A}|{BAR.timestamp():.6f}|0"
    expected = "tm-" + hashlib.sha256(canonical.encode()).hexdigest()[:29]
    assert make_client_order_id(BOT_A, BAR, 0) == expected


def test_prefix_length_and_alphabet() -> None:
    value = make_client_order_id(BOT_A, BAR, 3)
    assert value.startswith("tm-")
    assert len(value) == 32
    assert len(value) <= 36
    assert re.fullmatch(r"tm-[0-9a-f]{29}", value)
    assert TypeAdapter(ClientOrderId).validate_python(value) == value


def test_differs_per_leg() -> None:
    ids = {make_client_order_id(BOT_A, BAR, leg) for leg in range(50)}
    assert len(ids) == 50


def test_differs_per_bar() -> None:
    bars = [BAR + timedelta(minutes=i) for i in range(50)]
    bars.append(BAR + timedelta(microseconds=1))
    ids = {make_client_order_id(BOT_A, bar, 0) for bar in bars}
    assert len(ids) == len(bars)


def test_differs_per_bot() -> None:
    assert make_client_order_id(BOT_A, BAR, 0) != make_client_order_id(BOT_B, BAR, 0)


def test_same_instant_in_another_timezone_gives_the_same_id() -> None:
    cest = BAR.astimezone(timezone(timedelta(hours=2)))
    assert cest.hour == 14
    assert make_client_order_id(BOT_A, cest, 1) == make_client_order_id(BOT_A, BAR, 1)


def test_naive_bar_time_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        make_client_order_id(BOT_A, datetime(2024, 5, 1, 12, 0), 0)


def test_usable_in_a_submit_order(sample_kwargs: Callable[..., dict[str, object]]) -> None:
    coid = make_client_order_id(BOT_A, BAR, 0)
    order = orders.SubmitOrder(**sample_kwargs(orders.SubmitOrder, client_order_id=coid))
    assert order.client_order_id == coid


def test_no_collisions_over_a_grid() -> None:
    bots = [UUID(int=i) for i in range(10)]
    bars = [BAR + timedelta(minutes=m) for m in range(20)]
    ids = {make_client_order_id(b, t, leg) for b in bots for t in bars for leg in range(3)}
    assert len(ids) == 10 * 20 * 3


def test_named_legs_differ_from_each_other_and_from_numbers() -> None:
    legs: list[int | str] = ["main", "main#2", "hedge", 0, 1]
    ids = {make_client_order_id(BOT_A, BAR, leg) for leg in legs}
    assert len(ids) == len(legs)
    assert make_client_order_id(BOT_A, BAR, 7) == make_client_order_id(BOT_A, BAR, "7")
