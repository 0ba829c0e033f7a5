"""The manifest: read from a pyproject's [tool.trademesh.service] table, and from a package."""

from __future__ import annotations

from pathlib import Path

import pytest
from trademesh_service import ServiceManifest, service_manifest

pytestmark = pytest.mark.unit

PYPROJECT = """
[project]
name = "trademesh-pricing"
description = "Prices things."

[tool.trademesh.service]
name = "pricing"
module = "trademesh_pricing"
port = 8700
replicas = 2
schema = "pricing"
consumes = ["md.bars.v1"]
produces = []
"""


def test_the_table_and_the_project_make_the_manifest() -> None:
    manifest = ServiceManifest.parse(PYPROJECT)
    assert manifest == ServiceManifest(
        name="pricing",
        module="trademesh_pricing",
        project="trademesh-pricing",
        description="Prices things.",
        port=8700,
        consumes=("md.bars.v1",),
        produces=(),
        schema="pricing",
        replicas=2,
    )


def test_a_pyproject_without_the_table_is_refused_by_name(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    with pytest.raises(ValueError, match=r"pyproject.toml has no \[tool.trademesh.service\]"):
        ServiceManifest.from_folder(tmp_path)


def test_a_package_reads_the_manifest_it_ships(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "trademesh_pricing"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "pyproject.toml").write_text(PYPROJECT)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert service_manifest("trademesh_pricing.app") == ServiceManifest.parse(PYPROJECT)


def test_a_package_shipping_another_services_manifest_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "trademesh_other"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "pyproject.toml").write_text(PYPROJECT)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match="declares the module trademesh_pricing"):
        service_manifest("trademesh_other")
