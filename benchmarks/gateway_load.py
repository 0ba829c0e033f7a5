"""Gateway load: an authenticated positions read through the gateway, against a bare endpoint.

In one run on a fresh embedded Postgres and Tansu, on loopback:
- execution (`python -m trademesh_execution`) and the gateway (`python -m trademesh_gateway`)
  each in a process of its own, as deployed; the gateway verifies the access token (EdDSA,
  JWKS), counts the per-user and per-IP rate limits (memory storage, limits set out of reach),
  and forwards `GET /api/v1/accounts/{id}/pnl` (positions and PnL of a paper account) to
  execution, which verifies the token again and reads Postgres;
- a bare FastAPI endpoint in a process of its own (uvicorn, one worker, as the services run),
  answering a constant JSON body of the same shape: the floor of a Python HTTP hop.

The load generator (aiohttp, connections kept alive) measures, each for `--seconds` (default
30) after a short warm-up:
- the most each target serves (CONCURRENCY requests always in flight): ratio = the gateway's
  requests/s over the bare endpoint's;
- the gateway at a fixed arrival rate (`--rate`, default 500 requests/s, open loop: requests
  leave on schedule whether or not earlier ones have answered, and each latency counts from its
  scheduled time, so a stall is not hidden): p50 and p99 there, and the rate it kept up.

Targets (T6): p99 <= 15 ms at 500 rps, ratio >= 0.5. Everything here (load generator, gateway,
execution, Postgres, Tansu) shares the machine's cores, as the README's table says.

Last line: BENCH gateway_load rps=... p50_ms=... p99_ms=... ratio=... max_rps=...
(rps, p50_ms and p99_ms at the fixed rate; ratio and max_rps from the most it serves)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from statistics import quantiles

import aiohttp
import httpx
from trademesh_infra.topics import ensure_topics, topic_plan
from trademesh_testing.infra import start_embedded
from trademesh_testing.tokens import signer

CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "32"))
WARMUP_S = 3.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bare_server(port: int) -> None:
    """The bare endpoint: FastAPI + uvicorn, a constant body shaped like the PnL answer."""
    import uvicorn
    from fastapi import FastAPI

    app = FastAPI()
    body: dict[str, object] = {
        "account_id": str(uuid.uuid4()),
        "cash": "10000",
        "equity": "10000",
        "realised": "0",
        "unrealised": "0",
        "positions": [],
    }

    @app.get("/api/v1/accounts/{account_id}/pnl")
    async def pnl(account_id: str) -> dict[str, object]:
        return body

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, *args],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def wait_up(url: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as http:
        while time.monotonic() < deadline:
            try:
                if (await http.get(url)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


async def load(url: str, headers: dict[str, str], seconds: float) -> tuple[float, list[float]]:
    """(requests/s, latencies in ms) of CONCURRENCY workers calling `url` for `seconds`."""
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def worker(until: float, keep: bool) -> None:
            nonlocal errors
            while time.perf_counter() < until:
                started = time.perf_counter()
                async with session.get(url) as response:
                    await response.read()
                    ok = response.status == 200
                if keep:
                    latencies.append((time.perf_counter() - started) * 1000)
                    errors += not ok

        warm = time.perf_counter() + WARMUP_S
        await asyncio.gather(*(worker(warm, False) for _ in range(CONCURRENCY)))
        started = time.perf_counter()
        until = started + seconds
        await asyncio.gather(*(worker(until, True) for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{errors} of {len(latencies)} requests to {url} failed")
    return len(latencies) / elapsed, latencies


async def paced(
    url: str, headers: dict[str, str], rate: float, seconds: float
) -> tuple[float, list[float]]:
    """(requests/s answered, latencies in ms from each request's scheduled time) of requests
    sent at `rate` per second for `seconds` (open loop)."""
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def one(scheduled: float, keep: bool) -> None:
            nonlocal errors
            async with session.get(url) as response:
                await response.read()
                ok = response.status == 200
            if keep:
                latencies.append((time.perf_counter() - scheduled) * 1000)
                errors += not ok

        async def run(duration: float, keep: bool) -> float:
            tasks: list[asyncio.Task[None]] = []
            started = time.perf_counter()
            total = int(rate * duration)
            for n in range(total):
                scheduled = started + n / rate
                delay = scheduled - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(scheduled, keep)))
            await asyncio.gather(*tasks)
            return total / (time.perf_counter() - started)

        await run(WARMUP_S, False)
        answered = await run(seconds, True)
    if errors:
        raise RuntimeError(f"{errors} of {len(latencies)} requests to {url} failed")
    return answered, latencies


def summary(name: str, rps: float, latencies: list[float]) -> tuple[float, float]:
    cuts = quantiles(latencies, n=100)
    p50, p99 = cuts[49], cuts[98]
    print(
        f"{name:8s} requests/s={rps:9.0f}  p50_ms={p50:6.2f}  p99_ms={p99:6.2f}  n={len(latencies)}"
    )
    return p50, p99


async def main(seconds: float, rate: float) -> None:
    infra = start_embedded(Path(tempfile.mkdtemp(prefix="bench-gw-")))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        await ensure_topics(infra.kafka_bootstrap, topic_plan())
        keys = signer()
        common = {
            **infra.service_env(),
            "TRADEMESH_AUTH_JWKS": keys.jwks_json(),
            "TRADEMESH_AUTH_ISSUER": keys.issuer,
            "TRADEMESH_AUTH_AUDIENCE": keys.audience,
            "TRADEMESH_LOG_LEVEL": "WARNING",
        }
        execution_port, gateway_port, bare_port = free_port(), free_port(), free_port()
        processes.append(
            spawn(
                ["-m", "trademesh_execution"],
                {
                    **common,
                    "TRADEMESH_HTTP_PORT": str(execution_port),
                    "TRADEMESH_DATABASE_SCHEMA": "execution",
                },
            )
        )
        processes.append(
            spawn(
                ["-m", "trademesh_gateway"],
                {
                    **common,
                    "TRADEMESH_HTTP_PORT": str(gateway_port),
                    "TRADEMESH_METRICS_PORT": "0",  # any free port: 8090 may be taken
                    "TRADEMESH_EXECUTION_URL": f"http://127.0.0.1:{execution_port}",
                    "TRADEMESH_RATE_LIMIT_USER": "1000000/second",
                    "TRADEMESH_RATE_LIMIT_IP": "1000000/second",
                },
            )
        )
        processes.append(spawn([__file__, "--bare-server", str(bare_port)], {}))
        gateway = f"http://127.0.0.1:{gateway_port}"
        await wait_up(f"http://127.0.0.1:{execution_port}/ready")
        await wait_up(f"{gateway}/health")
        await wait_up(f"http://127.0.0.1:{bare_port}/docs")
        headers = keys.bearer(uuid.uuid4(), role="trader")
        async with httpx.AsyncClient(base_url=gateway) as http:
            made = await http.post(
                "/api/v1/accounts", json={"name": "bench", "cash": "10000"}, headers=headers
            )
            made.raise_for_status()
            account = made.json()["account_id"]
        path = f"/api/v1/accounts/{account}/pnl"
        print(f"{os.cpu_count()} cores; {seconds:g} s per measure, after {WARMUP_S:g} s of warm-up")
        print(f"most served ({CONCURRENCY} requests in flight):")
        bare_rps, bare_lat = await load(f"http://127.0.0.1:{bare_port}{path}", headers, seconds)
        gw_rps, gw_lat = await load(gateway + path, headers, seconds)
        summary("bare", bare_rps, bare_lat)
        summary("gateway", gw_rps, gw_lat)
        ratio = gw_rps / bare_rps
        print(f"gateway/bare requests/s ratio={ratio:.3f}")
        print(f"at a fixed {rate:g} requests/s (open loop):")
        kept, paced_lat = await paced(gateway + path, headers, rate, seconds)
        p50, p99 = summary("gateway", kept, paced_lat)
        print(
            f"BENCH gateway_load rps={kept:.0f} p50_ms={p50:.2f} p99_ms={p99:.2f} "
            f"ratio={ratio:.3f} max_rps={gw_rps:.0f}"
        )
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        infra.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="Load per target, seconds.")
    parser.add_argument("--rate", type=float, default=500.0, help="Fixed rate, requests/s.")
    parser.add_argument("--bare-server", type=int, default=None, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.bare_server is not None:
        bare_server(options.bare_server)
    else:
        asyncio.run(main(options.seconds, options.rate))
