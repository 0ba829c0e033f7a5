"""checkov on terraform/, the services' Dockerfile, k8s/ and the chart rendered with dev and prod
values: no failed check, every skip justified."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.integration

CHECKOV = ".trademesh/tools/checkov/bin/checkov"
# Framework to the folder it scans (the Dockerfile framework finds services/Dockerfile).
TARGETS = {"terraform": "terraform", "dockerfile": "services", "kubernetes": "k8s"}
# One process for the three folders: checkov spends most of its time starting (~5 s here).
BUDGET_S = 60.0
# A skip must say why; checkov fills this in when a skip comment gives no reason.
NO_REASON = {"", "no comment provided"}


@functools.cache
def run(checkov: str, root: Path) -> tuple[dict[str, dict[str, Any]], float]:
    """checkov's JSON report per framework, and how long the run took."""
    # No network: --skip-download keeps the checks and guidelines local, and without an API key
    # (BC_API_KEY and the Prisma settings removed) nothing is sent to Bridgecrew/Prisma Cloud.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BC_", "PRISMA_", "CKV_", "CHECKOV_"))
    }
    with tempfile.TemporaryDirectory() as out:
        command = [checkov]
        for folder in TARGETS.values():
            command += ["-d", folder]
        # The chart as dev and prod install it (k8s/base is its default values): checkov's Helm
        # framework needs the helm binary, so the renders are checked as Kubernetes manifests.
        command += ["-d", str(render_values(root, Path(out) / "rendered"))]
        command += ["--framework", *TARGETS, "--compact", "-o", "json"]
        command += ["--output-file-path", out, "--skip-download"]
        command += ["--download-external-modules", "false"]
        started = time.monotonic()
        done = subprocess.run(
            command, cwd=root, env=env, capture_output=True, text=True, timeout=300, check=False
        )
        elapsed = time.monotonic() - started
        report = Path(out) / "results_json.json"
        assert report.is_file(), f"checkov wrote no report (exit {done.returncode}): {done.stderr}"
        documents = json.loads(report.read_text())
    if isinstance(documents, dict):
        documents = [documents]
    return {d["check_type"]: d for d in documents}, elapsed


def render_values(root: Path, folder: Path) -> Path:
    """The umbrella chart rendered with values-dev.yaml and values-prod.yaml into `folder`,
    without the `helm test` pods (k8s/base leaves them out too)."""
    from trademesh_cli.deploy import is_hook, render_chart

    folder.mkdir(parents=True)
    for layer in ("dev", "prod"):
        values = root / "charts" / "trademesh" / f"values-{layer}.yaml"
        objects = [o for o in render_chart(root, [values]) if not is_hook(o)]
        (folder / f"trademesh-{layer}.yaml").write_text(yaml.safe_dump_all(objects))
    return folder


def where(check: dict[str, Any], root: Path) -> str:
    """The checked file, relative to the repository (checkov's own relative paths vary by framework)."""
    path = Path(check.get("file_abs_path") or check["file_path"])
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


@pytest.fixture
def report(
    require_tool: Callable[[str, str], str], root: Path
) -> tuple[dict[str, dict[str, Any]], float]:
    assert (root / "k8s").is_dir(), (
        "k8s/ does not exist: its rendered manifests (k8s/base, made by `make manifests`) are "
        "what checkov checks for the charts"
    )
    return run(require_tool(CHECKOV, "the IaC security scanner"), root)


@pytest.mark.parametrize("framework", list(TARGETS))
def test_no_check_fails(
    report: tuple[dict[str, dict[str, Any]], float], framework: str, root: Path
) -> None:
    documents, _ = report
    assert framework in documents, f"checkov found nothing to check in {TARGETS[framework]}/"
    document = documents[framework]
    summary = document["summary"]
    assert summary["parsing_errors"] == 0, document["results"].get("parsing_errors")
    assert summary["resource_count"] > 0
    failed = [
        f"{c['check_id']} {c['resource']} ({where(c, root)}): {c['check_name']}"
        for c in document["results"]["failed_checks"]
    ]
    assert not failed, f"{len(failed)} failed checks:\n" + "\n".join(sorted(set(failed)))
    if framework == "kubernetes":
        checked = {
            Path(c.get("file_abs_path") or c["file_path"]).name
            for c in document["results"]["passed_checks"]
        }
        assert {"trademesh-dev.yaml", "trademesh-prod.yaml", "trademesh.yaml"} <= checked


@pytest.mark.parametrize("framework", list(TARGETS))
def test_every_skip_says_why(
    report: tuple[dict[str, dict[str, Any]], float], framework: str, root: Path
) -> None:
    documents, _ = report
    unjustified = [
        f"{c['check_id']} {c['resource']} ({where(c, root)})"
        for c in documents[framework]["results"].get("skipped_checks", [])
        if str(c["check_result"].get("suppress_comment", "")).strip().lower() in NO_REASON
    ]
    assert not unjustified, "skips without a reason:\n" + "\n".join(sorted(set(unjustified)))


def test_checkov_is_fast(report: tuple[dict[str, dict[str, Any]], float]) -> None:
    _, elapsed = report
    assert elapsed < BUDGET_S, f"checkov took {elapsed:.1f} s (budget {BUDGET_S} s)"
