"""`trademesh new-service` registers what discovery cannot find: the import-linter's root
packages in the root pyproject.toml, so that its contracts hold the new package too."""

from __future__ import annotations

import textwrap
import tomllib
from pathlib import Path

import pytest
from trademesh_cli import scaffold
from trademesh_cli.scaffold import ScaffoldError, ServiceSpec, new_service, with_root_package

from ..conftest import snapshot

pytestmark = pytest.mark.unit

PYPROJECT = textwrap.dedent("""\
    [tool.importlinter]
    # Libraries first, then the services by name.
    root_packages = [
        "trademesh_events",
        "trademesh_cli",
        "trademesh_audit",
        "trademesh_risk",
    ]
    include_external_packages = true
    """)
SERVICES = {"trademesh_audit", "trademesh_risk"}


def _root_packages(text: str) -> list[str]:
    packages: list[str] = tomllib.loads(text)["tool"]["importlinter"]["root_packages"]
    return packages


def test_a_new_package_goes_among_the_services_in_name_order() -> None:
    assert _root_packages(with_root_package(PYPROJECT, "trademesh_notify", SERVICES)) == [
        "trademesh_events",
        "trademesh_cli",
        "trademesh_audit",
        "trademesh_notify",
        "trademesh_risk",
    ]
    assert _root_packages(with_root_package(PYPROJECT, "trademesh_zeta", SERVICES))[-1] == (
        "trademesh_zeta"
    )


def test_the_edit_keeps_the_files_comments_and_adds_one_line() -> None:
    edited = with_root_package(PYPROJECT, "trademesh_notify", SERVICES)
    assert edited.replace('    "trademesh_notify",\n', "", 1) == PYPROJECT
    assert with_root_package(edited, "trademesh_notify", SERVICES) == edited


def test_a_root_pyproject_without_the_list_is_refused() -> None:
    with pytest.raises(ScaffoldError, match="root_packages"):
        with_root_package("[project]\nname = 'x'\n", "trademesh_notify", SERVICES)


def test_new_service_lists_its_package_in_the_import_linter_root_packages(
    workspace: Path,
) -> None:
    before = (workspace / "pyproject.toml").read_text()
    assert "trademesh_pricing_demo" not in _root_packages(before)
    new_service(ServiceSpec(slug="pricing-demo"), workspace, update_lock=False)
    after = (workspace / "pyproject.toml").read_text()
    assert "trademesh_pricing_demo" in _root_packages(after)
    assert after.replace('    "trademesh_pricing_demo",\n', "", 1) == before


def test_a_failed_lock_leaves_the_root_pyproject_as_it_was(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_lock(root: Path) -> None:
        raise ScaffoldError("uv lock failed")

    monkeypatch.setattr(scaffold, "lock", failing_lock)
    before = snapshot(workspace)
    with pytest.raises(ScaffoldError, match="uv lock failed"):
        new_service(ServiceSpec(slug="pricing-demo"), workspace)
    assert snapshot(workspace) == before
