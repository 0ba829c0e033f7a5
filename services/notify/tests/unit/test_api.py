"""The API's pure parts: pagination cursors."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest
from trademesh_http import ProblemError

from trademesh_notify.api.activity import _cursor, _position
from trademesh_notify.engine import Activity

pytestmark = pytest.mark.unit


def test_a_cursor_gives_back_its_position() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    activity = Activity("binance:BTC/USDT", "out", 3, uuid4(), "t", "md.ticks.v1", now, now)
    assert _position(_cursor(activity)) == ("binance:BTC/USDT", "out")


@pytest.mark.parametrize("cursor", ["%%%", "bm90IGpzb24", "WzEsMl0", "WyJrIiwic2lkZXdheXMiXQ"])
def test_a_forged_cursor_is_a_400_problem(cursor: str) -> None:
    with pytest.raises(ProblemError) as raised:
        _position(cursor)
    assert raised.value.status == 400
