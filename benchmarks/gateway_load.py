"""Gateway load: an authenticated PnL read through the gateway, against execution direct and a
bare endpoint.

In one run on a fresh embedded Postgres and Tansu, on loopback:
- execution (`python -m trademesh_execution`) and the gateway (`python -m trademesh_gateway`)
  each in a process of its own, as deployed; the gateway verifies the access token (EdDSA,
  JWKS), counts the per-user and per-IP rate limits (memory storage, limits set out of reach),
  and forwards `GET /api/v1/accounts/{id}/pnl` (positions and PnL of a paper account) to
  execution, which verifies the token again and reads Postgres;
- a bare FastAPI endpoint in a process of its own (uvicorn, one worker, as the services run),
  answering a constant JSON body of the same shape: the floor of a Python HTTP hop.

Three targets, the same path and token: `bare`, `direct` (execution called without the gateway)
and `gateway`. The load generator (aiohttp, connections kept alive) measures each, for
`--seconds` (default 30) after a short warm-up:
- the most it serves (CONCURRENCY requests always in flight): ratio = the gateway's requests/s
  over the bare endpoint's, direct_ratio = over execution's own (what the gateway hop costs);
- at a fixed arrival rate (`--rate`, default 500 requests/s, open loop: requests leave on
  schedule whether or not earlier ones have answered, and each latency counts from its scheduled
  time, so a stall is not hidden): p50 and p99, the rate kept up, and the generator's own lag
  (how late requests left against their schedule: a lagging generator understates latency).

`--profile DIR`: py-spy samples the gateway and execution while the gateway is loaded most (raw
collapsed stacks, DIR/gateway.txt and DIR/execution.txt; `py-spy` of the dev tools).

Targets: max_rps >= 1500 through the gateway, p99 <= 25 ms at 500 rps, direct_ratio >= 0.6,
ratio >= 0.2. Everything here (load generator, gateway, execution, Postgres, Tansu) shares the
machine's cores, as the README's table says.

Last line: BENCH gateway_load rps=... p50_ms=... p99_ms=... max_rps=... ratio=... direct_ratio=...
(the gateway's: rps, p50_ms and p99_ms at the fixed rate; max_rps and the ratios from the most
served)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from statistics import quantiles

import aiohttp
import httpx
from trademesh_infra.ports import free_port
from trademesh_infra.topics import ensure_topics, topic_plan
from trademesh_testing.infra import start_embedded
from trademesh_testing.tokens import signer

CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "32"))
WARMUP_S = 3.0


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


async def load(
    url: str,
    headers: dict[str, str],
    seconds: float,
    on_start: Callable[[], object] | None = None,
) -> tuple[float, list[float]]:
    """(requests/s, latencies in ms) of CONCURRENCY workers calling `url` for `seconds`
    (`on_start` is called when the warm-up is over)."""
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
        if on_start is not None:
            on_start()
        started = time.perf_counter()
        until = started + seconds
        await asyncio.gather(*(worker(until, True) for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{errors} of {len(latencies)} requests to {url} failed")
    return len(latencies) / elapsed, latencies


async def paced(
    url: str, headers: dict[str, str], rate: float, seconds: float
) -> tuple[float, list[float], list[float]]:
    """(requests/s answered, latencies in ms from each request's scheduled time, the generator's
    lag in ms: how late each request left against its schedule) of requests sent at `rate` per
    second for `seconds` (open loop)."""
    latencies: list[float] = []
    lags: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def one(scheduled: float, keep: bool) -> None:
            nonlocal errors
            if keep:
                lags.append((time.perf_counter() - scheduled) * 1000)
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
    return answered, latencies, lags


def summary(
    name: str, rps: float, latencies: list[float], lags: list[float] | None = None
) -> tuple[float, float]:
    cuts = quantiles(latencies, n=100)
    p50, p99 = cuts[49], cuts[98]
    lag = ""
    if lags:
        lag_cuts = quantiles(lags, n=100)
        lag = f"  lag_p50_ms={lag_cuts[49]:5.2f}  lag_p99_ms={lag_cuts[98]:6.2f}"
    print(
        f"{name:8s} requests/s={rps:9.0f}  p50_ms={p50:6.2f}  p99_ms={p99:6.2f}  "
        f"n={len(latencies)}{lag}"
    )
    return p50, p99


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process `pid` so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def profile(pids: dict[str, int], into: Path, seconds: float) -> list[subprocess.Popen[bytes]]:
    """py-spy sampling each of `pids` for `seconds` (raw collapsed stacks into `into`)."""
    into.mkdir(parents=True, exist_ok=True)
    spy = Path(sys.executable).with_name("py-spy")
    return [
        subprocess.Popen(
            [
                str(spy),
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(int(seconds)),
                "--rate",
                "200",
                "--format",
                "raw",
                "--nonblocking",
                "--output",
                str(into / f"{name}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, pid in pids.items()
    ]


async def main(seconds: float, rate: float, profile_dir: Path | None) -> None:
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
        execution = spawn(
            ["-m", "trademesh_execution"],
            {
                **common,
                "TRADEMESH_HTTP_PORT": str(execution_port),
                "TRADEMESH_DATABASE_SCHEMA": "execution",
            },
        )
        processes.append(execution)
        gateway_process = spawn(
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
        processes.append(gateway_process)
        processes.append(spawn([__file__, "--bare-server", str(bare_port)], {}))
        gateway = f"http://127.0.0.1:{gateway_port}"
        direct = f"http://127.0.0.1:{execution_port}"
        bare = f"http://127.0.0.1:{bare_port}"
        await wait_up(f"{direct}/ready")
        await wait_up(f"{gateway}/health")
        await wait_up(f"{bare}/docs")
        headers = keys.bearer(uuid.uuid4(), role="trader")
        async with httpx.AsyncClient(base_url=gateway) as http:
            made = await http.post(
                "/api/v1/accounts", json={"name": "bench", "cash": "10000"}, headers=headers
            )
            made.raise_for_status()
            account = made.json()["account_id"]
        path = f"/api/v1/accounts/{account}/pnl"
        # The generator's own full collections walked every module it imported (60-80 ms each,
        # a stall of all its requests in flight): freeze them out, as the services do.
        gc.collect()
        gc.freeze()
        targets = {"bare": bare + path, "direct": direct + path, "gateway": gateway + path}
        print(f"{os.cpu_count()} cores; {seconds:g} s per measure, after {WARMUP_S:g} s of warm-up")
        print(f"most served ({CONCURRENCY} requests in flight):")
        most: dict[str, float] = {}
        pids = {"gateway": gateway_process.pid, "execution": execution.pid}
        for name, url in targets.items():
            spies: list[subprocess.Popen[bytes]] = []
            if name == "gateway" and profile_dir is not None:
                spies = profile(pids, profile_dir, WARMUP_S + seconds)
            cpu_before: dict[str, float] = {}

            def measure_cpu(into: dict[str, float] = cpu_before) -> None:
                into.update({n: cpu_seconds(pid) for n, pid in pids.items()})

            most[name], latencies = await load(url, headers, seconds, measure_cpu)
            cpu = {n: cpu_seconds(pid) - cpu_before[n] for n, pid in pids.items()}
            for spy in spies:
                spy.wait(timeout=60)
            summary(name, most[name], latencies)
            if name != "bare":
                print(
                    "         CPU ms per request: "
                    + "  ".join(f"{n}={1000 * c / len(latencies):.2f}" for n, c in cpu.items())
                )
        ratio = most["gateway"] / most["bare"]
        direct_ratio = most["gateway"] / most["direct"]
        print(f"gateway/bare ratio={ratio:.3f}  gateway/direct ratio={direct_ratio:.3f}")
        print(f"at a fixed {rate:g} requests/s (open loop, latency from the scheduled time):")
        fixed: dict[str, tuple[float, float, float]] = {}
        for name, url in targets.items():
            kept, latencies, lags = await paced(url, headers, rate, seconds)
            fixed[name] = (kept, *summary(name, kept, latencies, lags))
        kept, p50, p99 = fixed["gateway"]
        print(
            f"BENCH gateway_load rps={kept:.0f} p50_ms={p50:.2f} p99_ms={p99:.2f} "
            f"max_rps={most['gateway']:.0f} ratio={ratio:.3f} direct_ratio={direct_ratio:.3f}"
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
    parser.add_argument(
        "--profile", type=Path, default=None, help="Sample gateway and execution with py-spy."
    )
    parser.add_argument("--bare-server", type=int, default=None, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.bare_server is not None:
        bare_server(options.bare_server)
    else:
        asyncio.run(main(options.seconds, options.rate, options.profile))
