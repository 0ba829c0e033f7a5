"""Input guard cost: what trademesh_http.inputs adds to every request of every service.

- checks_us: the body checks alone (refused characters, JSON depth) on a typical 220-byte JSON
  body (a bot's creation);
- added_us: a POST with that body through the InputGuard middleware around a bare ASGI app that
  reads it, less the same request to the bare app (both called in process, no server: the
  difference is the guard's own work per request);
- worst_ms: the checks on the costliest 1 MiB bodies (wide nesting, strings full of brackets,
  60,000 deep), which are the most the default limit lets through.

Last line: BENCH input_guard checks_us=... added_us=... worst_ms=...
(targets: a few microseconds per typical request; a worst body costs about as much as parsing it)
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from trademesh_http.inputs import InputGuard, json_has_refused_characters, json_too_deep

BODY = json.dumps(
    {
        "strategy": "sma_cross",
        "params": {"fast": 10, "slow": 30},
        "instrument_id": "binance:BTC/USDT",
        "timeframe": "1h",
        "account_id": "0190a0c2-5f3e-7cc1-9d2a-1b2c3d4e5f60",
        "sizing": {"kind": "quantity", "value": "0.01"},
    }
).encode()
WORST = {
    "wide": b"[" + b"[]," * 349_000 + b"[]]",
    "bracketed strings": b"[" + b'"[[[[",' * 149_000 + b'""]',
    "deep": b'{"a":' * 60_000 + b"1" + b"}" * 60_000,
}
N = 200_000


def _checks_us() -> float:
    started = time.perf_counter()
    for _ in range(N):
        json_has_refused_characters(BODY)
        json_too_deep(BODY)
    return (time.perf_counter() - started) / N * 1e6


async def _bare(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def _per_request_us(app: Any, n: int) -> float:
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/v1/bots",
        "query_string": b"",
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(BODY)).encode()),
        ],
    }
    message = {"type": "http.request", "body": BODY, "more_body": False}

    async def receive() -> dict[str, Any]:
        return message

    async def send(_: Any) -> None:
        return None

    started = time.perf_counter()
    for _ in range(n):
        await app(dict(scope), receive, send)
    return (time.perf_counter() - started) / n * 1e6


def _worst_ms() -> float:
    worst = 0.0
    for body in WORST.values():
        started = time.perf_counter()
        json_has_refused_characters(body)
        json_too_deep(body)
        worst = max(worst, (time.perf_counter() - started) * 1e3)
    return worst


def main() -> None:
    checks = _checks_us()
    guarded = InputGuard(_bare)
    bare = asyncio.run(_per_request_us(_bare, N))
    through = asyncio.run(_per_request_us(guarded, N))
    worst = _worst_ms()
    print(f"body: {len(BODY)} bytes; bare app {bare:.2f} us, through the guard {through:.2f} us")
    print(
        f"BENCH input_guard checks_us={checks:.2f} added_us={through - bare:.2f} worst_ms={worst:.1f}"
    )


if __name__ == "__main__":
    main()
