"""The shape of a service folder (files and sections, per service-template/shape.toml) and its drift.

A service generated from the template and a service in services/ have the same shape when every
file the manifest requires exists in both and holds the same sections: Markdown `##` headings,
pyproject tables, Dockerfile stage names, the keys of the Helm values entry, and the listed
top-level Python names. Sections are compared as sets: a service may add, not drop.

What every service takes from a library (the manifest's `[shared]` table) is compared by content:
files no service may have, links, calls a file must make and base classes its tests must use.
"""

from __future__ import annotations

import ast
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_STAGE = re.compile(r"^FROM\s+\S+\s+AS\s+(\S+)", re.IGNORECASE | re.MULTILINE)
_HEADING = re.compile(r"^##\s+(.+?)\s*$", re.MULTILINE)


@dataclass
class Shape:
    """Files (relative, with the package folder written `{package}`) and each one's sections."""

    files: set[str] = field(default_factory=set)
    sections: dict[str, set[str]] = field(default_factory=dict)


def load_manifest(template: Path) -> dict[str, Any]:
    return tomllib.loads((template / "shape.toml").read_text())


def _package(service: Path) -> str:
    data = tomllib.loads((service / "pyproject.toml").read_text())
    return str(data["tool"]["trademesh"]["service"]["module"]).split(".")[0]


def owns_schema(service: Path) -> bool:
    data = tomllib.loads((service / "pyproject.toml").read_text())
    return bool(data["tool"]["trademesh"]["service"].get("schema"))


def _toml_tables(data: dict[str, Any], prefix: str = "") -> set[str]:
    tables = set()
    for key, value in data.items():
        if isinstance(value, dict):
            name = f"{prefix}{key}"
            tables.add(name)
            tables |= _toml_tables(value, f"{name}.")
    return tables


def _python_names(text: str) -> set[str]:
    names: set[str] = set()
    for node in ast.parse(text).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def _sections(path: Path, rel: str, manifest: dict[str, Any]) -> set[str]:
    text = path.read_text()
    if rel.endswith(".md"):
        return set(_HEADING.findall(text))
    if rel == "pyproject.toml":
        return _toml_tables(tomllib.loads(text))
    if rel == "Dockerfile":
        return set(_STAGE.findall(text))
    if rel == "deploy/values.yaml":
        values = yaml.safe_load(text) or {}
        return {key for entry in values.values() if isinstance(entry, dict) for key in entry}
    wanted = manifest.get("python", {}).get(rel)
    if wanted is not None:
        return set(wanted) & _python_names(text)
    return set()


def shape(service: Path, manifest: dict[str, Any]) -> Shape:
    """The shape of `service` as far as the manifest describes it."""
    package = _package(service)
    found = Shape()
    for pattern in manifest["required"]:
        rel = pattern.format(package="{package}")
        path = service / pattern.format(package=package)
        if path.is_file():
            found.files.add(rel)
            found.sections[rel] = _sections(path, pattern.format(package="{package}"), manifest)
    folders = dict(manifest.get("folders", {}))
    if owns_schema(service):
        folders |= manifest.get("schema_folders", {})
    for folder, glob in folders.items():
        if any((service / folder.format(package=package)).glob(glob)):
            found.files.add(f"{folder}/{glob}")
    return found


def drift(expected: Shape, actual: Shape) -> list[str]:
    """What `actual` lacks of `expected`, one line each (empty: same shape)."""
    problems = [f"missing {rel}" for rel in sorted(expected.files - actual.files)]
    for rel in sorted(expected.files & actual.files):
        missing = expected.sections.get(rel, set()) - actual.sections.get(rel, set())
        if missing:
            problems.append(f"{rel}: missing {', '.join(sorted(missing))}")
    return problems


def _called(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name):
                names.add(func.id)
            elif isinstance(func, ast.Attribute):
                names.add(func.attr)
    return names


def _bases(tree: ast.Module) -> set[str]:
    return {
        base.id if isinstance(base, ast.Name) else getattr(base, "attr", "")
        for node in tree.body
        if isinstance(node, ast.ClassDef)
        for base in node.bases
    }


def shared_drift(service: Path, manifest: dict[str, Any]) -> list[str]:
    """Where `service` holds its own copy of what every service shares (manifest's `[shared]`),
    one line each (empty: it shares all of it)."""
    shared = manifest.get("shared", {})
    package = _package(service)
    problems: list[str] = []
    for pattern in shared.get("absent", ()):
        if (service / pattern.format(package=package)).exists():
            problems.append(f"{pattern}: a copy of what is shared")
    for pattern, target in shared.get("links", {}).items():
        path = service / pattern.format(package=package)
        if not path.is_symlink() or str(path.readlink()) != target:
            problems.append(f"{pattern}: not a link to {target}")
    for pattern, names in shared.get("calls", {}).items():
        path = service / pattern.format(package=package)
        called = _called(ast.parse(path.read_text())) if path.is_file() else set()
        missing = sorted(set(names) - called)
        if missing:
            problems.append(f"{pattern}: does not call {', '.join(missing)}")
    for pattern, base in shared.get("bases", {}).items():
        path = service / pattern.format(package=package)
        if not path.is_file() or base not in _bases(ast.parse(path.read_text())):
            problems.append(f"{pattern}: no test class of {base}")
    return problems
