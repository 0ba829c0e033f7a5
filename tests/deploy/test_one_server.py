"""Every service runs on the same HTTP server, however it is started: `make run`'s supervisor,
the image (compose and the chart run it as built) and a process started by hand all run
`python -m <package>`, whose `main` serves through `trademesh_http.server.serve` (uvicorn,
httptools, uvloop, start-up frozen out of full collections). No deploy file overrides the
command, so a server setting changes in one place (docs/decisions/0123)."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("helm_python", reason="the deploy dependency group")

from trademesh_cli import supervisor
from trademesh_cli.deploy import render_chart
from trademesh_cli.project import discover_services
from trademesh_http import server

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
SERVICES = discover_services(ROOT)
UMBRELLA = ROOT / "charts" / "trademesh"


@pytest.mark.parametrize("entry", SERVICES, ids=lambda e: e.name)
def test_a_services_main_serves_through_the_shared_server(entry: Any) -> None:
    main = importlib.import_module(f"{entry.module}.__main__").main
    assert main.__globals__.get("serve") is server.serve, (
        f"{entry.module}.__main__ must serve with trademesh_http.server.serve"
    )


def test_make_run_starts_each_service_as_python_dash_m_its_package() -> None:
    source = inspect.getsource(supervisor)
    assert '[sys.executable, "-m", entry.module]' in source


def test_the_image_runs_python_dash_m_the_services_package() -> None:
    dockerfile = (ROOT / "services" / "Dockerfile").read_text()
    assert "exec python -m %s" in dockerfile
    assert dockerfile.rstrip().splitlines()[-1] == 'CMD ["trademesh-service"]'
    assert "ENTRYPOINT" not in dockerfile


def test_compose_never_overrides_a_services_command() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for entry in SERVICES:
        block = services[entry.name]
        assert "command" not in block and "entrypoint" not in block, entry.name


@pytest.mark.parametrize("values", [[], [UMBRELLA / "values-prod.yaml"]], ids=["default", "prod"])
def test_the_chart_never_overrides_a_services_command(values: list[Path]) -> None:
    objects = render_chart(ROOT, values)
    deployments = {
        o["metadata"]["name"]: o for o in objects if o["kind"] in ("Deployment", "StatefulSet")
    }
    for entry in SERVICES:
        spec = deployments[entry.name]["spec"]["template"]["spec"]
        for container in spec["containers"]:
            assert "command" not in container and "args" not in container, entry.name
