"""A service's declaration of itself: `[tool.trademesh.service]` of its pyproject.toml, read once.

The table is the one place a service names its topics, port and schema: `trademesh up`, the
deployment manifests and the tests read it from the service folder, and the running service reads
it from its package, which ships the same file (`src/<package>/pyproject.toml` is a link to the
service's pyproject.toml, so an installed wheel carries it too).
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

PYPROJECT = "pyproject.toml"


@dataclass(frozen=True)
class ServiceManifest:
    """What a service declares: its name, import package, what it does, port, schema and topics."""

    name: str
    module: str
    project: str
    description: str
    port: int
    consumes: tuple[str, ...] = ()
    produces: tuple[str, ...] = ()
    schema: str | None = None
    metrics_port: int | None = None
    replicas: int = 1

    @classmethod
    def parse(cls, text: str, *, source: str = PYPROJECT) -> ServiceManifest:
        """The manifest in the text of a pyproject.toml; ValueError naming `source` if it has none."""
        data: dict[str, Any] = tomllib.loads(text)
        table = data.get("tool", {}).get("trademesh", {}).get("service")
        if not isinstance(table, dict):
            raise ValueError(f"{source} has no [tool.trademesh.service] table")
        project = data.get("project", {})
        return cls(
            name=str(table["name"]),
            module=str(table["module"]),
            project=str(project["name"]),
            description=str(project.get("description", "")),
            port=int(table["port"]),
            consumes=tuple(str(t) for t in table.get("consumes", ())),
            produces=tuple(str(t) for t in table.get("produces", ())),
            schema=str(table["schema"]) if table.get("schema") else None,
            metrics_port=int(table["metrics_port"]) if table.get("metrics_port") else None,
            replicas=int(table.get("replicas", 1)),
        )

    @classmethod
    def from_folder(cls, service: Path) -> ServiceManifest:
        """The manifest of a service folder (services/<name>)."""
        path = service / PYPROJECT
        return cls.parse(path.read_text(), source=str(path))


@functools.cache
def service_manifest(module: str) -> ServiceManifest:
    """The manifest of the service whose package holds `module` (pass `__name__`), read from the
    pyproject.toml its package ships; read once per process."""
    package = module.partition(".")[0]
    text = resources.files(package).joinpath(PYPROJECT).read_text()
    manifest = ServiceManifest.parse(text, source=f"{package}/{PYPROJECT}")
    if manifest.module.partition(".")[0] != package:
        raise ValueError(f"{package}/{PYPROJECT} declares the module {manifest.module}")
    return manifest
