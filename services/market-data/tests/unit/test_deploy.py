"""The image and the Helm values entry agree with the service's pyproject, and pass hadolint."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from dockerfile_parse import DockerfileParser

pytestmark = pytest.mark.unit

SERVICE = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def declared() -> dict[str, Any]:
    pyproject = tomllib.loads((SERVICE / "pyproject.toml").read_text())
    table: dict[str, Any] = pyproject["tool"]["trademesh"]["service"]
    table["project"] = pyproject["project"]["name"]
    return table


def test_helm_values_entry_matches_the_service(declared: dict[str, Any]) -> None:
    values = yaml.safe_load((SERVICE / "deploy" / "values.yaml").read_text())
    assert list(values) == [declared["name"]]
    entry = values[declared["name"]]
    assert (entry["port"], entry["module"]) == (declared["port"], declared["module"])
    assert entry["schema"] == declared.get("schema")
    assert entry["replicaCount"] == declared["replicas"]
    assert entry["image"]["repository"].endswith(f"/{declared['name']}")
    assert (entry["probes"]["liveness"], entry["probes"]["readiness"]) == ("/health", "/ready")


def test_dockerfile_is_multi_stage_uv_and_non_root(declared: dict[str, Any]) -> None:
    parser = DockerfileParser(path=str(SERVICE / "Dockerfile"))
    instructions = [(i["instruction"], i["value"]) for i in parser.structure]
    froms = [value for kind, value in instructions if kind == "FROM"]
    assert len(froms) >= 3 and froms[-1].endswith(" AS runtime")
    runs = " ".join(value for kind, value in instructions if kind == "RUN")
    package = declared["project"]
    assert f"uv sync --frozen --no-dev --no-install-workspace --package {package}" in runs
    final_stage = instructions[max(i for i, (k, _) in enumerate(instructions) if k == "FROM") :]
    users = [value for kind, value in final_stage if kind == "USER"]
    assert users and not users[-1].startswith(("0", "root"))
    assert ("EXPOSE", str(declared["port"])) in instructions
    assert parser.cmd == f'["python", "-m", "{declared["module"]}"]'
    assert any(kind == "HEALTHCHECK" for kind, _ in final_stage)


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    assert hadolint, "hadolint not found: it comes with the workspace's dev dependencies"
    result = subprocess.run(
        [hadolint, "--no-color", str(SERVICE / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
