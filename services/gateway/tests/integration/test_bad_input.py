"""Bad input through the gateway, with the real services behind it: deeply nested JSON is the
client's error (a 4xx problem), never a 500."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.integration

DEPTH = 60_000
DEEP = {
    "array": b"[" * DEPTH + b"]" * DEPTH,
    "object": b'{"a":' * DEPTH + b"1" + b"}" * DEPTH,
}


async def test_deeply_nested_json_on_bots_and_orders_is_a_4xx_problem(platform: Any) -> None:
    _, headers = await platform.register()
    headers = {**headers, "Content-Type": "application/json"}
    answers = {}
    for path in ("/api/v1/bots", "/api/v1/orders"):
        for shape, body in DEEP.items():
            response = await platform.gateway.post(path, content=body, headers=headers)
            answers[path, shape] = (response.status_code, response.headers["content-type"])
    assert all(
        400 <= status < 500 and content_type == "application/problem+json"
        for status, content_type in answers.values()
    ), answers
