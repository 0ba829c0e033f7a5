"""A real Prometheus (the version the deployment checks use) scrapes every process of the running
platform while a small trading load runs, with the alert rules loaded: every metric a dashboard
or a rule reads is exported by some service, every dashboard panel's query returns data, and
every rule evaluates."""

from __future__ import annotations

import math
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from trademesh_testing.platform import Platform
from trademesh_testing.promql import RULES, dashboard_queries, fill_variables, queried_names

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# What Grafana's variables stand for here: every service.
VARIABLES = {"service": ".*"}
# A small load: one bot on a replay of 20 bars a second, enough for every rate to move.
LOAD: dict[str, Any] = {
    "instruments": 1,
    "bots_per_instrument": 1,
    "bars_per_s": 20.0,
    "file": "GOOG-head.csv",
    "bars": 1050,
}
WINDOW_S = 12.0  # of scrapes (every second) with the load running, after its first fill


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def scrape_config(platform: Platform) -> dict[str, Any]:
    """The convention the rules rely on: job "trademesh", the metrics' own labels honoured, and
    each target labelled with its service. Each process is scraped where it serves /metrics:
    the gateway on its metrics port, never on its public one."""
    targets = [
        {
            "targets": [str(row["metrics_url"]).removeprefix("http://")],
            "labels": {"service": str(row["service"])},
        }
        for row in platform.processes().values()
    ]
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {"job_name": "trademesh", "honor_labels": True, "static_configs": targets}
        ],
    }


@pytest.fixture
def prometheus(
    platform: Platform, require_tool: Callable[[str, str], str], tmp_path: Path
) -> Iterator[httpx.Client]:
    binary = require_tool("prometheus", "the server, from Debian's prometheus package")
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(scrape_config(platform)))
    port = _free_port()
    log = (tmp_path / "prometheus.log").open("w")
    server = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10.0) as http:
            deadline = time.monotonic() + 30
            while True:
                assert server.poll() is None, (tmp_path / "prometheus.log").read_text()
                try:
                    if http.get("/-/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "Prometheus not ready in 30 s"
                time.sleep(0.2)
            yield http
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)
        log.close()


def query(http: httpx.Client, expr: str) -> list[dict[str, Any]]:
    answer = http.get("/api/v1/query", params={"query": expr})
    assert answer.status_code == 200, (expr, answer.text)
    result: list[dict[str, Any]] = answer.json()["data"]["result"]
    return result


def _stop_feeds(platform: Platform, admin: dict[str, str], instruments: list[str]) -> None:
    """The load's replay stops here, so that it does not run on into the next suite."""
    with httpx.Client(base_url=platform.url(8000), timeout=30.0) as http:
        feeds = http.get("/api/v1/feeds", params={"limit": 1000}, headers=admin)
        assert feeds.status_code == 200, feeds.text
        for feed in feeds.json()["items"]:
            if feed["instrument_id"] in instruments:
                stopped = http.post(f"/api/v1/feeds/{feed['feed_id']}/stop", headers=admin)
                assert stopped.status_code == 200, stopped.text


@pytest.mark.timeout(300)
def test_prometheus_scrapes_every_service_and_every_panel_has_data(
    platform: Platform, trading: Any, prometheus: httpx.Client
) -> None:
    http = prometheus
    began = time.monotonic()
    load = trading.start(platform, **LOAD)
    try:
        # The first fill of this load says the pipeline runs end to end; then the feed list,
        # asked through the gateway now and then, is API traffic for the HTTP panels.
        with httpx.Client(base_url=platform.url(8000), timeout=30.0) as gateway:
            trading.eventually(
                lambda: query(http, "sum(increase(trademesh_execution_fills_total[5m])) > 0"),
                90,
                "a fill of this load, scraped",
            )
            until = time.monotonic() + WINDOW_S
            while time.monotonic() < until:
                gateway.get("/api/v1/feeds", headers=load.admin)
                time.sleep(0.5)
    finally:
        _stop_feeds(platform, load.admin, load.instruments)

    targets = http.get("/api/v1/targets").json()["data"]["activeTargets"]
    assert {t["labels"]["service"] for t in targets} == {
        str(row["service"]) for row in platform.processes().values()
    }
    # The gateway's public port serves no metrics: its own metrics port is what was scraped.
    (gateway,) = [row for row in platform.processes().values() if row["service"] == "gateway"]
    assert gateway["metrics_url"] != gateway["url"]
    with httpx.Client(timeout=10.0) as public:
        assert public.get(f"{gateway['url']}/metrics").status_code == 404
    assert [t["lastError"] for t in targets if t["health"] != "up"] == []

    exported = set(http.get("/api/v1/label/__name__/values").json()["data"])
    assert queried_names() <= exported, (
        f"queried, exported by no service: {queried_names() - exported}"
    )

    empty, nan_only = [], []
    for panel in dashboard_queries():
        expr = fill_variables(panel.expr, VARIABLES)
        result = query(http, expr)
        if not result:
            empty.append(f"{panel.where}: {expr}")
        elif all(math.isnan(float(r["value"][1])) for r in result):
            nan_only.append(f"{panel.where}: {expr}")
    assert empty == [], "queries without data:\n" + "\n".join(empty)
    assert nan_only == [], "queries with only NaN:\n" + "\n".join(nan_only)

    groups = http.get("/api/v1/rules").json()["data"]["groups"]
    on_file = {g["name"]: len(g["rules"]) for g in yaml.safe_load(RULES.read_text())["groups"]}
    assert {g["name"]: len(g["rules"]) for g in groups} == on_file
    unhealthy = [
        (r["name"], r.get("health"), r.get("lastError"))
        for g in groups
        for r in g["rules"]
        if r.get("health") != "ok"
    ]
    assert unhealthy == []
    print(f"Prometheus checks took {time.monotonic() - began:.1f} s")
