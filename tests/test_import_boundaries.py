"""Architecture rules over the real import graph (grimp, import-linter's engine), for every package
in libs/ and services/: a new service is covered without editing this test."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import grimp
import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
IO_PACKAGES = {
    "aiokafka", "asyncpg", "faststream", "fastapi", "httpx", "uvicorn", "hvac", "psycopg",
    "socket", "ssl", "subprocess", "requests", "urllib3",
}  # fmt: skip


def _packages(kind: str) -> list[str]:
    names = []
    for pyproject in sorted((ROOT / kind).glob("*/pyproject.toml")):
        name = tomllib.loads(pyproject.read_text())["project"]["name"]
        names.append(name.replace("-", "_"))
    return names


LIBS = _packages("libs")
SERVICES = _packages("services")


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(*LIBS, *SERVICES, include_external_packages=True)


def _imports(graph: grimp.ImportGraph, importer: str, imported: str) -> list[str]:
    chains = graph.find_shortest_chains(importer=importer, imported=imported)
    return [" -> ".join(chain) for chain in chains]


def test_there_are_libraries_to_check() -> None:
    assert "trademesh_events" in LIBS and "trademesh_bus" in LIBS


@pytest.mark.parametrize("lib", LIBS)
def test_libraries_never_import_services(graph: grimp.ImportGraph, lib: str) -> None:
    for service in SERVICES:
        assert not _imports(graph, lib, service), f"{lib} imports the service {service}"


def test_the_chain_finder_sees_real_imports(graph: grimp.ImportGraph) -> None:
    """The checks below rely on this: a known library-to-library import is found."""
    assert _imports(graph, "trademesh_bus", "trademesh_events")


def test_services_never_import_each_other(graph: grimp.ImportGraph) -> None:
    offending = [
        f"{service} -> {other}"
        for service in SERVICES
        for other in SERVICES
        if other != service and _imports(graph, service, other)
    ]
    assert offending == []


def test_events_library_imports_no_io_package(graph: grimp.ImportGraph) -> None:
    external = {
        m.split(".")[0] for m in graph.find_modules_directly_imported_by("trademesh_events")
    }
    for module in graph.find_children("trademesh_events"):
        external |= {m.split(".")[0] for m in graph.find_modules_directly_imported_by(module)}
    assert not external & IO_PACKAGES
    assert not {m for m in external if m.startswith("trademesh_")} - {"trademesh_events"}


# The layers of a service (docs/decisions/0111-use-case-layer.md): handlers and api/ call
# usecases/, which runs the pure engine on what store.py keeps.
ENGINE_MAY_NOT_IMPORT = ("store", "usecases", "handlers", "api")
USECASES_MAY_NOT_IMPORT = ("api", "handlers")
WEB_PACKAGES = {"fastapi", "starlette"}


def _layer_chains(
    graph: grimp.ImportGraph, service: str, importer: str, layers: tuple[str, ...]
) -> list[str]:
    return [
        chain
        for layer in layers
        if f"{service}.{layer}" in graph.modules
        for chain in _imports(graph, f"{service}.{importer}", f"{service}.{layer}")
    ]


@pytest.mark.parametrize("service", SERVICES)
def test_the_engine_imports_no_other_layer_and_no_io(
    graph: grimp.ImportGraph, service: str
) -> None:
    assert f"{service}.engine" in graph.modules, f"{service} has no engine module"
    offending = _layer_chains(graph, service, "engine", ENGINE_MAY_NOT_IMPORT)
    offending += [
        chain
        for package in sorted(IO_PACKAGES & graph.modules)
        for chain in _imports(graph, f"{service}.engine", package)
    ]
    assert offending == []


@pytest.mark.parametrize("service", SERVICES)
def test_use_cases_import_neither_routes_nor_handlers_nor_the_web_framework(
    graph: grimp.ImportGraph, service: str
) -> None:
    """Use cases may raise a ProblemError (trademesh_http, which renders it with FastAPI), but
    never touch a request, a response or a route themselves: no direct web import."""
    usecases = f"{service}.usecases"
    assert usecases in graph.modules, f"{service} has no usecases package"
    offending = _layer_chains(graph, service, "usecases", USECASES_MAY_NOT_IMPORT)
    for module in sorted({usecases} | graph.find_descendants(usecases)):
        offending += [
            f"{module} -> {imported}"
            for imported in sorted(graph.find_modules_directly_imported_by(module))
            if imported.split(".")[0] in WEB_PACKAGES
        ]
    assert offending == []


def test_the_layer_rules_see_a_real_chain(graph: grimp.ImportGraph) -> None:
    """The rules above rely on this: a handler's import of its use cases is found."""
    service = "trademesh_risk"
    assert _layer_chains(graph, service, "handlers", ("usecases",))


def _allowed_ccxt_importers() -> list[str]:
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    [ccxt] = [c for c in contracts["contracts"] if c.get("protected_modules") == ["ccxt"]]
    return list(ccxt["allowed_importers"])


def test_only_the_modules_the_contract_names_import_ccxt(graph: grimp.ImportGraph) -> None:
    """The import-linter contract on ccxt, over every package in libs/ and services/: a service
    added after the contract's root packages were listed is held to it too."""
    allowed = _allowed_ccxt_importers()
    importers = graph.find_modules_that_directly_import("ccxt")
    assert importers, "no module imports ccxt: the check would see nothing"
    offending = sorted(
        module
        for module in importers
        if not any(module == a or module.startswith(f"{a}.") for a in allowed)
    )
    assert offending == []


def test_import_linter_contracts_hold() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
