"""The request-id middleware: sane incoming ids are kept, anything else is replaced."""

from __future__ import annotations

import io
import json
import re

import httpx
import pytest
from trademesh_observability.logging import configure_logging

pytestmark = pytest.mark.unit

GENERATED = re.compile(r"^[0-9a-f]{32}$")


@pytest.mark.parametrize(
    "incoming",
    ["abc-123", "A.b_c-9", "0" * 128, "01J9ZQ8X6T3M2V7Y4K5N8P0R1S"],
)
async def test_sane_request_id_is_echoed(client: httpx.AsyncClient, incoming: str) -> None:
    response = await client.get("/request-id", headers={"X-Request-ID": incoming})

    assert response.status_code == 200
    assert response.headers["x-request-id"] == incoming
    assert response.json() == {"request_id": incoming}


@pytest.mark.parametrize(
    "incoming",
    [
        "a" * 129,
        "has space",
        "semi;colon",
        "line\r\nbreak",
        "tab\there",
        "ctl\x01char",
        "del\x7f",
        "../../etc/passwd",
        "<script>alert(1)</script>",
        'quote"d',
        "",
    ],
)
async def test_insane_request_id_is_replaced(client: httpx.AsyncClient, incoming: str) -> None:
    response = await client.get("/request-id", headers={"X-Request-ID": incoming})

    assert response.status_code == 200
    replaced = response.headers["x-request-id"]
    assert replaced != incoming
    assert GENERATED.fullmatch(replaced)
    assert response.json() == {"request_id": replaced}


async def test_missing_request_id_is_generated_per_request(client: httpx.AsyncClient) -> None:
    first = await client.get("/health")
    second = await client.get("/health")

    ids = [first.headers["x-request-id"], second.headers["x-request-id"]]
    assert all(GENERATED.fullmatch(i) for i in ids)
    assert ids[0] != ids[1]


async def test_request_id_reaches_the_logs(client: httpx.AsyncClient) -> None:
    stream = io.StringIO()
    configure_logging("http-test", fmt="json", stream=stream)

    await client.get("/request-id", headers={"X-Request-ID": "req-log-1"})

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    handling = [line for line in lines if line["event"] == "handling request"]
    assert len(handling) == 1
    assert handling[0]["request_id"] == "req-log-1"
    assert handling[0]["service"] == "http-test"
