"""Every service in services/ keeps the shape of a freshly generated one (service-template/shape.toml)."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import pytest
from trademesh_cli.project import discover_services
from trademesh_cli.scaffold import ServiceSpec, check, render
from trademesh_cli.shape import drift, load_manifest, shape, shared_drift

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "service-template"
MANIFEST = load_manifest(TEMPLATE)


def _generate_like(service: Path, into: Path) -> Path:
    """A fresh service from the template with `service`'s options (name, port, topics, schema)."""
    table = tomllib.loads((service / "pyproject.toml").read_text())["tool"]["trademesh"]["service"]
    spec = ServiceSpec(
        slug=str(table["name"]),
        port=int(table["port"]),
        consumes=tuple(table.get("consumes", ())),
        produces=tuple(table.get("produces", ())),
        owns_schema=bool(table.get("schema")),
    )
    # Checked against an empty services folder: the real service would clash with itself.
    empty = into / "ws"
    (empty / "services").mkdir(parents=True)
    (empty / "libs").mkdir()
    return render(check(spec, empty), TEMPLATE, into / "generated")


def test_every_service_has_the_template_shape(tmp_path: Path) -> None:
    # One test over all services rather than one per service, so that it runs (and passes
    # trivially) before the first service exists instead of being skipped for want of cases.
    problems: list[str] = []
    for n, entry in enumerate(discover_services(ROOT)):
        assert entry.path is not None
        fresh = _generate_like(entry.path, tmp_path / str(n))
        problems += [
            f"services/{entry.path.name}: {p}"
            for p in drift(shape(fresh, MANIFEST), shape(entry.path, MANIFEST))
            + shared_drift(entry.path, MANIFEST)
        ]
        problems += [f"fresh {entry.path.name}: {p}" for p in shared_drift(fresh, MANIFEST)]
    assert not problems, "services drifted from the template:\n" + "\n".join(problems)
    assert (ROOT / "services" / "Dockerfile").is_file()  # the one image recipe they share


@pytest.mark.parametrize("schema", [True, False])
def test_a_fresh_service_has_every_file_and_section_the_manifest_names(
    tmp_path: Path, schema: bool
) -> None:
    spec = ServiceSpec(slug="shape-probe", consumes=("md.bars.v1",), owns_schema=schema)
    (tmp_path / "ws" / "services").mkdir(parents=True)
    fresh = render(check(spec, tmp_path / "ws"), TEMPLATE, tmp_path / "out")
    found = shape(fresh, MANIFEST)
    expected = {p.format(package="{package}") for p in MANIFEST["required"]}
    expected |= {f"{folder}/{glob}" for folder, glob in MANIFEST["folders"].items()}
    if schema:
        expected |= {f"{folder}/{glob}" for folder, glob in MANIFEST["schema_folders"].items()}
    assert found.files == expected
    for rel, names in MANIFEST["python"].items():
        assert found.sections[rel] == set(names), rel
    assert {"Contract", "Run", "Settings", "Layout", "Tests"} <= found.sections["README.md"]
    assert "tool.trademesh.service" in found.sections["pyproject.toml"]
    assert "Dockerfile" not in found.sections  # every image is services/Dockerfile's


def test_drift_is_reported_file_by_file_and_section_by_section(tmp_path: Path) -> None:
    spec = ServiceSpec(slug="drifter", consumes=("md.bars.v1",))
    (tmp_path / "ws" / "services").mkdir(parents=True)
    fresh = render(check(spec, tmp_path / "ws"), TEMPLATE, tmp_path / "fresh")
    real = tmp_path / "real" / "drifter"
    shutil.copytree(fresh, real)
    package = real / "src" / "trademesh_drifter"
    assert drift(shape(fresh, MANIFEST), shape(real, MANIFEST)) == []

    (package / "handlers.py").unlink()
    (package / "app.py").write_text("def make_app() -> None: ...\n")
    readme = real / "README.md"
    readme.write_text(readme.read_text().replace("## Settings", "## Configuration"))
    for sql in (package / "migrations").glob("*.sql"):
        sql.unlink()
    problems = drift(shape(fresh, MANIFEST), shape(real, MANIFEST))
    assert problems == [
        "missing src/{package}/handlers.py",
        "missing src/{package}/migrations/*.sql",
        "README.md: missing Settings",
        "src/{package}/app.py: missing create_app",
    ]


def test_extra_files_and_sections_are_not_drift(tmp_path: Path) -> None:
    spec = ServiceSpec(slug="grower", produces=("bots.events.v1",), owns_schema=False)
    (tmp_path / "ws" / "services").mkdir(parents=True)
    fresh = render(check(spec, tmp_path / "ws"), TEMPLATE, tmp_path / "fresh")
    real = tmp_path / "real" / "grower"
    shutil.copytree(fresh, real)
    package = real / "src" / "trademesh_grower"
    (package / "venues.py").write_text("VENUES = ()\n")
    with (package / "engine.py").open("a") as engine:
        engine.write("\n\ndef decide() -> None: ...\n")
    (real / "README.md").write_text((real / "README.md").read_text() + "\n## Feeds\n")
    assert drift(shape(fresh, MANIFEST), shape(real, MANIFEST)) == []


def test_a_copy_of_a_shared_piece_is_reported(tmp_path: Path) -> None:
    spec = ServiceSpec(slug="copier", consumes=("md.bars.v1",))
    (tmp_path / "ws" / "services").mkdir(parents=True)
    fresh = render(check(spec, tmp_path / "ws"), TEMPLATE, tmp_path / "fresh")
    assert shared_drift(fresh, MANIFEST) == []
    package = fresh / "src" / "trademesh_copier"
    (fresh / "Dockerfile").write_text("FROM python:3.11-slim AS runtime\n")
    (package / "api" / "about.py").write_text("router = None\n")
    (package / "pyproject.toml").unlink()
    (package / "pyproject.toml").write_text((fresh / "pyproject.toml").read_text())
    app = package / "app.py"
    app.write_text(app.read_text().replace("service_lifespan(", "my_lifespan("))
    test_config = fresh / "tests" / "unit" / "test_config.py"
    test_config.write_text("class TestSettings:\n    pass\n")
    assert shared_drift(fresh, MANIFEST) == [
        "Dockerfile: a copy of what is shared",
        "src/{package}/api/about.py: a copy of what is shared",
        "src/{package}/pyproject.toml: not a link to ../../pyproject.toml",
        "src/{package}/app.py: does not call service_lifespan",
        "tests/unit/test_config.py: no test class of SettingsContract",
    ]
