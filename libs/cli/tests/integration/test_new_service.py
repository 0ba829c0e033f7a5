"""Generating services from the template: every option combination lints and type-checks; the
generated test suites pass on the real engines; the lock file registers and forgets a service."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from trademesh_cli.project import discover_services
from trademesh_cli.scaffold import ServiceSpec, check, lock, new_service, render, uv_binary
from trademesh_events.topics import TOPICS

from ..conftest import snapshot

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BIN = Path(sys.executable).parent
COMBOS = list(itertools.product([True, False], repeat=3))  # consumes, produces, owns a schema


def _spec(consumes: bool, produces: bool, schema: bool) -> ServiceSpec:
    tag = "".join(
        flag if on else "x" for flag, on in zip("cps", (consumes, produces, schema), strict=True)
    )
    return ServiceSpec(
        slug=f"combo-{tag}",
        consumes=("md.ticks.v1", "orders.events.v1") if consumes else (),
        produces=("orders.intents.v1",) if produces else (),
        owns_schema=schema,
    )


def _run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TRADEMESH_", "PYTEST_"))}
    return subprocess.run(
        args, cwd=cwd, env={**clean, **env}, capture_output=True, text=True, timeout=900
    )


def _ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, (
        f"{result.args}\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}"
    )


def test_every_option_combination_passes_lint_and_type_check(workspace: Path) -> None:
    services = workspace / "services"
    packages: list[str] = []
    for combo in COMBOS:
        spec = check(_spec(*combo), workspace)
        render(spec, workspace / "service-template", services)
        packages += ["-p", spec.package]
    generated = sorted(p.name for p in services.iterdir() if p.is_dir())
    assert len(generated) == len(COMBOS)
    assert not (services / "combo-xxx" / "src" / "trademesh_combo_xxx" / "migrations").exists()
    assert not (
        services / "combo-cxs" / "src" / "trademesh_combo_cxs" / "api" / "events.py"
    ).exists()
    assert (services / "combo-cps" / "src" / "trademesh_combo_cps" / "migrations").is_dir()
    _ok(_run([str(BIN / "ruff"), "check", "--no-cache", "services"], workspace))
    _ok(_run([str(BIN / "ruff"), "format", "--check", "--no-cache", "services"], workspace))
    mypy_path = os.pathsep.join(str(services / name / "src") for name in generated)
    _ok(
        _run(
            [str(BIN / "mypy"), "--no-incremental", "--cache-dir", os.devnull, *packages],
            workspace,
            MYPYPATH=mypy_path,
        )
    )


@pytest.mark.parametrize(
    "consumes",
    [
        ("orders.events.v1", "orders.denied.v1", "risk.events.v1"),
        tuple(sorted((topic.name for topic in TOPICS), reverse=True)),
    ],
    ids=["out-of-order", "every-topic-reversed"],
)
def test_handlers_import_the_consumed_topics_in_ruffs_order(
    workspace: Path, consumes: tuple[str, ...]
) -> None:
    # The options' order is the user's; the generated imports must still pass ruff's isort (I001).
    spec = check(ServiceSpec(slug="consumer", consumes=consumes, owns_schema=True), workspace)
    target = render(spec, workspace / "service-template", workspace / "services")
    handlers = target / "src" / spec.package / "handlers.py"
    _ok(_run([str(BIN / "ruff"), "check", "--no-cache", str(handlers)], workspace))
    _ok(_run([str(BIN / "ruff"), "format", "--check", "--no-cache", str(handlers)], workspace))
    assert "RISK_EVENTS_TOPIC," in handlers.read_text()


@pytest.mark.parametrize("combo", [(True, True, True), (False, False, False), (True, True, False)])
def test_a_generated_service_passes_its_own_tests(
    workspace: Path, combo: tuple[bool, bool, bool]
) -> None:
    spec = check(_spec(*combo), workspace)
    target = render(spec, workspace / "service-template", workspace / "services")
    result = _run(
        [str(BIN / "python"), "-m", "pytest", "-p", "no:cacheprovider", "-q", str(target)],
        workspace,
        PYTHONPATH=str(target / "src"),
    )
    _ok(result)
    assert " passed" in result.stdout and "skipped" not in result.stdout


def test_new_service_registers_installs_and_deleting_it_restores_the_repo(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock(workspace)  # the copied lock may name services of the repository that are not copied
    # The copy's virtualenv, as `make install` leaves one (hard links from uv's cache: fast).
    monkeypatch.setenv("UV_LINK_MODE", "hardlink")
    _ok(_run([uv_binary(workspace), "sync", "--all-packages", "--quiet"], workspace))
    python = str(workspace / ".venv" / "bin" / "python")
    before = snapshot(workspace)
    started = time.monotonic()
    target = new_service(
        ServiceSpec(slug="pricing-demo", description="Prices things", consumes=("md.bars.v1",)),
        workspace,
    )
    elapsed = time.monotonic() - started
    assert target == workspace / "services" / "pricing-demo"
    assert 'name = "trademesh-pricing-demo"' in (workspace / "uv.lock").read_text()
    _ok(_run([uv_binary(workspace), "lock", "--check"], workspace))
    # Installed at once: it imports, and pytest collects its whole suite (every test module
    # imports the package) and passes its unit tests, with no sync in between. (The whole suite
    # passing, engines and all, is the test above.)
    _ok(_run([python, "-I", "-c", "import trademesh_pricing_demo.app"], workspace))
    tests = _run(
        [
            python,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "-m",
            "unit",
            "services/pricing-demo",
        ],
        workspace,
    )
    _ok(tests)
    assert re.search(r"\d+ passed, \d+ deselected", tests.stdout), tests.stdout
    assert "error" not in tests.stdout and "skipped" not in tests.stdout, tests.stdout
    [entry] = discover_services(workspace)
    assert (entry.name, entry.module, entry.port, entry.schema) == (
        "pricing-demo",
        "trademesh_pricing_demo",
        8100,
        "pricing_demo",
    )
    pyproject = workspace / "pyproject.toml"
    listed = tomllib.loads(pyproject.read_text())["tool"]["importlinter"]["root_packages"]
    assert "trademesh_pricing_demo" in listed
    print(f"new-service took {elapsed:.1f}s")  # its budget is a minute: shown, not asserted

    # Removing a service is deleting its folder and its import-linter root package, then locking.
    shutil.rmtree(target)
    pyproject.write_text(pyproject.read_text().replace('    "trademesh_pricing_demo",\n', "", 1))
    lock(workspace)
    assert snapshot(workspace) == before
