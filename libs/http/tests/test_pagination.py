"""The shared page shape: cursors give back their position and refuse forgeries, the cap is
enforced and documented, and a page says whether another follows."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from uuid import UUID, uuid4

import httpx
import pytest
from fastapi import FastAPI
from trademesh_http import ProblemError, install_problem_handlers
from trademesh_http.pagination import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    Page,
    PageDep,
    PageRequest,
    decode_cursor,
    encode_cursor,
    paginate,
)

pytestmark = pytest.mark.unit


def test_a_cursor_gives_back_its_position() -> None:
    now = datetime(2026, 1, 1, 12, 30, tzinfo=UTC)
    item = uuid4()
    assert decode_cursor(encode_cursor(now, item), datetime, UUID) == (now, item)
    assert decode_cursor(encode_cursor(42, "binance:BTC/USDT"), int, str) == (
        42,
        "binance:BTC/USDT",
    )


def test_a_cursor_from_strategys_former_encoding_still_reads() -> None:
    """Clients holding a next_cursor from before the shared module keep paging."""
    import base64

    now, item = datetime(2026, 1, 1, tzinfo=UTC), uuid4()
    old = base64.urlsafe_b64encode(json.dumps([now.isoformat(), str(item)]).encode())
    assert decode_cursor(old.decode().rstrip("="), datetime, UUID) == (now, item)


@pytest.mark.parametrize(
    "cursor",
    [
        "%%%",
        "bm90IGpzb24",  # not json
        "WzEsMl0",  # [1,2]: not a time and an id
        "WyJrIiwic2lkZXdheXMiXQ",  # ["k","sideways"]
        "WyIyMDI2LTAxLTAxIiwieCJd",  # ["2026-01-01","x"]: not a UUID
        encode_cursor(datetime(2026, 1, 1, tzinfo=UTC)),  # one part, two expected
    ],
)
def test_a_forged_cursor_is_a_400_problem(cursor: str) -> None:
    with pytest.raises(ProblemError) as raised:
        decode_cursor(cursor, datetime, UUID)
    assert raised.value.status == 400


def test_an_integer_part_refuses_a_string_and_a_boolean() -> None:
    for forged in (encode_cursor("7"), "W3RydWVd"):  # ["7"], [true]
        with pytest.raises(ProblemError):
            decode_cursor(forged, int)


def test_paginate_names_the_last_item_only_when_more_follow() -> None:
    request = PageRequest(limit=2)
    assert request.fetch == 3
    items, cursor = paginate([1, 2, 3], request, lambda n: (n,))
    assert items == [1, 2] and cursor is not None
    assert decode_cursor(cursor, int) == (2,)
    assert paginate([1, 2], request, lambda n: (n,)) == ([1, 2], None)
    assert paginate([], request, lambda n: (n,)) == ([], None)


class NumberPage(Page[int]):
    pass


def _app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    numbers = list(range(1, 1001))

    @app.get("/numbers")
    async def numbers_page(request: PageDep) -> NumberPage:
        after = request.after(int)
        start = after[0] if after else 0
        rows = [n for n in numbers if n > start][: request.fetch]
        items, cursor = paginate(rows, request, lambda n: (n,))
        return NumberPage(items=items, next_cursor=cursor)

    return app


async def test_a_route_pages_through_everything_and_enforces_the_cap() -> None:
    app = _app()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        first = (await http.get("/numbers")).json()
        assert first["items"] == list(range(1, DEFAULT_LIMIT + 1))
        seen, cursor = [], None
        while True:
            params = {"limit": MAX_LIMIT} | ({"cursor": cursor} if cursor else {})
            page = (await http.get("/numbers", params=params)).json()
            seen += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == list(range(1, 1001))
        too_many = await http.get("/numbers", params={"limit": MAX_LIMIT + 1})
        assert too_many.status_code == 422
        forged = await http.get("/numbers", params={"cursor": "%%%"})
        assert forged.status_code == 400
        assert forged.headers["content-type"].startswith("application/problem+json")
    limit = next(
        p for p in app.openapi()["paths"]["/numbers"]["get"]["parameters"] if p["name"] == "limit"
    )
    assert limit["schema"]["maximum"] == MAX_LIMIT and limit["schema"]["default"] == DEFAULT_LIMIT
