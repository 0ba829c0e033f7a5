"""The forward path on the network (aiohttp, as deployed) against the same calls through httpx's
ASGI transport (as the other gateway tests reach the services): the service sees the same
request and the gateway gets the same answer, the pool keeps no cookie, and failures come out as
the errors the proxy maps to 502 and 504."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from trademesh_testing.http import served

from trademesh_gateway.config import Settings
from trademesh_gateway.proxy import Answer, Upstreams

pytestmark = pytest.mark.integration

SEEN_HEADERS = ("authorization", "content-type", "x-forwarded-for", "cookie", "x-custom")


class Echo:
    """An upstream that records what reached it and answers with two values of one header, a
    cookie and a non-200 status; `/slow` answers after a second."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["path"] == "/slow":
            await asyncio.sleep(1.0)
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.seen.append(
            {
                "method": scope["method"],
                "raw_path": scope["raw_path"].decode(),
                "query": scope["query_string"].decode(),
                "body": body.decode(),
                "headers": {n: headers.get(n) for n in SEEN_HEADERS},
            }
        )
        await send(
            {
                "type": "http.response.start",
                "status": 207,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"x-multi", b"one"),
                    (b"x-multi", b"two"),
                    (b"set-cookie", b"session=leaked; Path=/"),
                ],
            }
        )
        await send(
            {"type": "http.response.body", "body": json.dumps({"n": len(self.seen)}).encode()}
        )


@pytest.fixture
async def echo_url() -> AsyncIterator[tuple[Echo, str]]:
    echo = Echo()
    async with served(echo) as url:
        yield echo, url


def _upstreams(url: str, transport: httpx.AsyncBaseTransport | None = None) -> Upstreams:
    settings = Settings(execution_url=url, upstream_timeout_s=0.3)
    return Upstreams(settings, {"execution": transport} if transport else None)


CASES = [
    ("GET", "/api/v1/accounts/a%2Fb%20c/pnl", "limit=5&tag=a+b&tag=%26x&empty=", b""),
    ("GET", "/api/v1/instruments/%C3%A9t%C3%A9%3F", "", b""),
    ("POST", "/api/v1/orders", "", b'{"qty": "1.5"}'),
    ("DELETE", "/api/v1/keys/k1", "reason=rotated%20out", b""),
]


@pytest.mark.parametrize(("method", "path", "query", "body"), CASES)
async def test_the_network_path_sends_and_answers_as_the_asgi_path_does(
    echo_url: tuple[Echo, str], method: str, path: str, query: str, body: bytes
) -> None:
    echo, url = echo_url
    headers = [
        ("Authorization", "Bearer t0ken"),
        ("Content-Type", "application/json"),
        ("X-Forwarded-For", "203.0.113.7"),
        ("X-Custom", "a"),
    ]
    network, in_process = _upstreams(url), _upstreams(url, httpx.ASGITransport(app=echo))
    try:
        answers: list[Answer] = []
        for upstreams in (network, in_process):
            answers.append(
                await upstreams.send(
                    "execution", method, path, query=query, headers=headers, body=body
                )
            )
    finally:
        await network.aclose()
        await in_process.aclose()
    by_network, by_asgi = echo.seen
    assert by_network == by_asgi
    assert by_network["raw_path"] == path
    assert by_network["query"] == query
    assert by_network["body"] == body.decode()
    assert by_network["headers"]["authorization"] == "Bearer t0ken"
    net, asgi = answers
    assert net.status == asgi.status == 207
    assert json.loads(net.body) == {"n": 1}
    assert json.loads(asgi.body) == {"n": 2}

    def multi(answer: Answer) -> list[str]:
        return [v for n, v in answer.headers if n.lower() == "x-multi"]

    assert multi(net) == multi(asgi) == ["one", "two"]


async def test_a_services_cookie_is_never_sent_with_the_next_request(
    echo_url: tuple[Echo, str],
) -> None:
    echo, url = echo_url
    # By name, as services are reached in a deployment (a cookie jar would skip an IP address).
    upstreams = _upstreams(url.replace("127.0.0.1", "localhost"))
    try:
        for _ in range(2):
            await upstreams.send("execution", "GET", "/a", query="", headers=[], body=b"")
    finally:
        await upstreams.aclose()
    assert [seen["headers"]["cookie"] for seen in echo.seen] == [None, None]


async def test_a_service_slower_than_the_timeout_is_a_timeout(
    echo_url: tuple[Echo, str],
) -> None:
    _, url = echo_url
    upstreams = _upstreams(url)
    try:
        with pytest.raises(httpx.TimeoutException):
            await upstreams.send("execution", "GET", "/slow", query="", headers=[], body=b"")
    finally:
        await upstreams.aclose()


async def test_a_service_that_is_down_is_a_transport_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    upstreams = _upstreams(f"http://127.0.0.1:{closed}")
    try:
        with pytest.raises(httpx.TransportError):
            await upstreams.send("execution", "GET", "/a", query="", headers=[], body=b"")
    finally:
        await upstreams.aclose()
