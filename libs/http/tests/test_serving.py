"""Whose X-Forwarded-For an app believes (trusted proxies as CIDRs), and /metrics on a port of its
own; and that the server believes nobody's by itself."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_network

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI, Request
from prometheus_client import CollectorRegistry, Gauge
from trademesh_http import create_http_app
from trademesh_http.server import server

pytestmark = pytest.mark.unit


@dataclass(frozen=True)
class Serving:
    """The three settings create_http_app reads (trademesh_config.HttpSettings has them)."""

    trusted_proxies: list[IPv4Network | IPv6Network] = field(default_factory=list)
    metrics_port: int | None = None
    http_host: str = "127.0.0.1"


def _trusting(service: str, *cidrs: str) -> FastAPI:
    app = create_http_app(
        service=service, http=Serving(trusted_proxies=[ip_network(c) for c in cidrs])
    )

    @app.get("/whoami")
    async def whoami(request: Request) -> dict[str, str | None]:
        host = request.client.host if request.client else None
        return {"client": host, "scheme": request.url.scheme}

    return app


async def _whoami(app: FastAPI, peer: str, headers: dict[str, str] | None = None) -> dict[str, str]:
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as http:
        answer = await http.get("/whoami", headers=headers)
    assert answer.status_code == 200
    body: dict[str, str] = answer.json()
    return body


async def test_a_proxy_in_a_trusted_network_names_the_client(service: str) -> None:
    app = _trusting(service, "10.42.0.0/16", "fd00::/8")
    forwarded = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}

    assert await _whoami(app, "10.42.7.3", forwarded) == {
        "client": "203.0.113.9",
        "scheme": "https",
    }
    assert (await _whoami(app, "fd00::1", forwarded))["client"] == "203.0.113.9"


async def test_the_header_is_walked_from_the_right_past_trusted_hops_only(service: str) -> None:
    app = _trusting(service, "10.42.0.0/16")
    # A client's own left-most entry, then the address the first trusted proxy saw, then a
    # second trusted hop: the client is the right-most address that is not a trusted proxy.
    chain = {"X-Forwarded-For": "198.51.100.66, 203.0.113.9, 10.42.0.8"}

    assert (await _whoami(app, "10.42.1.1", chain))["client"] == "203.0.113.9"


async def test_anyone_else_is_their_own_address_whatever_they_send(service: str) -> None:
    app = _trusting(service, "10.42.0.0/16")
    forged = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}

    assert await _whoami(app, "192.0.2.10", forged) == {"client": "192.0.2.10", "scheme": "http"}


async def test_without_trusted_proxies_nobody_is_believed_loopback_included(service: str) -> None:
    app = _trusting(service)

    for peer in ("127.0.0.1", "10.42.7.3"):
        forged = {"X-Forwarded-For": "203.0.113.9"}
        assert (await _whoami(app, peer, forged))["client"] == peer


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@asynccontextmanager
async def _served(app: FastAPI) -> AsyncIterator[str]:
    """`app` behind the server every service runs (trademesh_http.server), on loopback."""
    port = _free_port()
    running = server(app, "127.0.0.1", port)
    task = asyncio.create_task(running.serve())
    try:
        while not running.started:
            assert not task.done(), task
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        running.should_exit = True
        await task


async def test_the_server_itself_believes_no_forwarded_header_from_loopback(service: str) -> None:
    """uvicorn's default trusts X-Forwarded-For from 127.0.0.1: a local client could then name
    anyone as itself."""
    async with _served(_trusting(service)) as url, httpx.AsyncClient(base_url=url) as http:
        answer = await http.get("/whoami", headers={"X-Forwarded-For": "203.0.113.9"})

    assert answer.json()["client"] == "127.0.0.1"


async def test_metrics_on_a_port_of_their_own_and_not_on_the_api(service: str) -> None:
    registry = CollectorRegistry()
    Gauge("only_on_the_metrics_port", "A gauge of this test.", registry=registry).set(3)
    started: list[str] = []

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        started.append("service")
        yield

    app = create_http_app(
        service=service, registry=registry, lifespan=lifespan, http=Serving(metrics_port=0)
    )
    async with LifespanManager(app):
        assert started == ["service"]  # the service's own lifespan still runs
        port = app.state.metrics_port
        assert isinstance(port, int) and port > 0
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as api:
            assert (await api.get("/metrics")).status_code == 404
            assert (await api.get("/health")).status_code == 200
        async with httpx.AsyncClient() as scraper:
            scraped = await scraper.get(f"http://127.0.0.1:{port}/metrics")
        assert scraped.status_code == 200
        assert "only_on_the_metrics_port 3.0" in scraped.text

    async with httpx.AsyncClient() as scraper:
        with pytest.raises(httpx.ConnectError):  # stopped with the app
            await scraper.get(f"http://127.0.0.1:{port}/metrics")


async def test_without_a_metrics_port_the_api_serves_metrics(service: str) -> None:
    app = create_http_app(service=service, http=Serving())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as api:
        assert (await api.get("/metrics")).status_code == 200


def test_ctrl_c_stops_a_service_cleanly_without_a_traceback() -> None:
    """SIGINT (Ctrl-C on `make run`) shuts the app down with its lifespan, then the process ends
    with 130, as an interrupted command does; uvicorn's re-raised KeyboardInterrupt must not end
    the service's log with a traceback."""
    port = _free_port()
    script = (
        "import sys\n"
        "from fastapi import FastAPI\n"
        "from contextlib import asynccontextmanager\n"
        "from trademesh_http.server import serve\n"
        "@asynccontextmanager\n"
        "async def life(app):\n"
        "    print('up', flush=True)\n"
        "    yield\n"
        "    print('shut down', flush=True)\n"
        f"serve(FastAPI(lifespan=life), '127.0.0.1', {port})\n"
    )
    # SIGINT as a terminal delivers it: a runner (make, an xdist worker) may have left it
    # ignored, and uvicorn re-raises the signal with the disposition it found.
    child = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "the server did not start"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/docs", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=30)
    finally:
        child.kill()
    assert child.returncode == 130, (child.returncode, err)
    assert "shut down" in out
    assert "Traceback" not in err, err


def test_a_service_process_runs_on_uvloop_with_its_startup_frozen_out_of_gc() -> None:
    """`serve` (a service's own process): uvloop, and what startup made is in the permanent
    generation, which full collections skip."""
    port = _free_port()
    script = (
        "import asyncio, gc\n"
        "from fastapi import FastAPI\n"
        "from trademesh_http.server import serve\n"
        "app = FastAPI()\n"
        "@app.get('/inside')\n"
        "async def inside():\n"
        "    loop = type(asyncio.get_running_loop()).__module__\n"
        "    return {'loop': loop, 'frozen': gc.get_freeze_count()}\n"
        f"serve(app, '127.0.0.1', {port})\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "the server did not start"
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/inside", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.05)
    finally:
        child.terminate()
        child.communicate(timeout=30)
    assert answer.status_code == 200
    assert answer.json()["loop"].startswith("uvloop")
    assert answer.json()["frozen"] > 10_000  # the modules and the app, at least
