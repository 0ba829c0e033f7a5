"""The API's pure parts: pagination cursors."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest
from trademesh_http import ProblemError

from trademesh_strategy.api.pagination import decode_cursor, encode_cursor

pytestmark = pytest.mark.unit


def test_a_cursor_gives_back_its_position() -> None:
    now = datetime(2026, 1, 1, 12, 30, tzinfo=UTC)
    item = uuid4()
    assert decode_cursor(encode_cursor(now, item)) == (now, item)


@pytest.mark.parametrize(
    "cursor",
    ["%%%", "bm90IGpzb24", "WzEsMl0", "WyJrIiwic2lkZXdheXMiXQ", "WyIyMDI2LTAxLTAxIiwieCJd"],
)
def test_a_forged_cursor_is_a_400_problem(cursor: str) -> None:
    with pytest.raises(ProblemError) as raised:
        decode_cursor(cursor)
    assert raised.value.status == 400
