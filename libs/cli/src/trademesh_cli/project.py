"""Where the project is, and which services it registers (each service's pyproject declares itself)."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ServiceEntry:
    """A runnable service, from `[tool.trademesh.service]` in services/<name>/pyproject.toml."""

    name: str
    module: str
    port: int
    replicas: int = 1
    path: Path | None = None
    schema: str | None = None
    #: The port /metrics is served on when not the HTTP port (the gateway's is public).
    metrics_port: int | None = None


def find_root(start: Path | None = None) -> Path:
    """The workspace root: the nearest folder upwards whose pyproject.toml declares the uv workspace."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        pyproject = folder / "pyproject.toml"
        if pyproject.exists():
            data = tomllib.loads(pyproject.read_text())
            if "workspace" in data.get("tool", {}).get("uv", {}):
                return folder
    raise FileNotFoundError(
        f"no trademesh workspace (pyproject.toml with [tool.uv.workspace]) above {here}"
    )


def cli_command(root: Path | None = None) -> str:
    """How a person runs this command line from the current folder, for the hints it prints: the
    workspace's wrapper (`./trademesh` at its root), which needs nothing on PATH (uv included)."""
    try:
        wrapper = (root or find_root()) / "trademesh"
    except FileNotFoundError:
        return "trademesh"
    if not wrapper.is_file():
        return "trademesh"
    relative = os.path.relpath(wrapper, Path.cwd())
    return relative if relative.startswith((".", os.sep)) else f".{os.sep}{relative}"


def discover_services(root: Path) -> list[ServiceEntry]:
    """Every service folder that declares `[tool.trademesh.service]`, sorted by name."""
    entries = []
    for pyproject in sorted((root / "services").glob("*/pyproject.toml")):
        data = tomllib.loads(pyproject.read_text())
        table = data.get("tool", {}).get("trademesh", {}).get("service")
        if not table:
            continue
        entries.append(
            ServiceEntry(
                name=str(table["name"]),
                module=str(table["module"]),
                port=int(table["port"]),
                replicas=int(table.get("replicas", 1)),
                path=pyproject.parent,
                schema=str(table["schema"]) if table.get("schema") else None,
                metrics_port=int(table["metrics_port"]) if table.get("metrics_port") else None,
            )
        )
    return entries


def service_migrations(entry: ServiceEntry) -> tuple[Path, str | None]:
    """The service's migrations folder (src/<package>/migrations) and the schema it owns."""
    assert entry.path is not None
    package = entry.module.split(".")[0]
    return entry.path / "src" / package / "migrations", entry.schema


def run_file(home: Path) -> Path:
    """Where `trademesh up` lists the processes it runs (name, service, port, pid), for
    `trademesh status` and for whoever wants to signal one of them."""
    return home / "run" / "services.json"
