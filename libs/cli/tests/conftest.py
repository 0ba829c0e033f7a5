"""A throwaway copy of the workspace for tests that generate services into it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
# What is not the repository's: the virtualenv, scratch, and what tools and tests leave behind.
_NOT_SOURCE = (
    ".venv", ".trademesh", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis"
)  # fmt: skip
_IGNORE = shutil.ignore_patterns(*_NOT_SOURCE)


def copy_workspace(target: Path) -> Path:
    """What generation reads and writes: the root pyproject and lock, the libraries (their
    sources, for clash checks and locking), the template, and a services folder with the
    services' one Dockerfile and no service."""
    target.mkdir(parents=True, exist_ok=True)
    for name in ("pyproject.toml", "uv.lock", ".python-version"):
        shutil.copy2(ROOT / name, target / name)
    for name in ("libs", "service-template"):
        shutil.copytree(ROOT / name, target / name, ignore=_IGNORE)
    # Without the repository's own services: the tests generate and count their own.
    (target / "services").mkdir()
    shutil.copy2(ROOT / "services" / "Dockerfile", target / "services" / "Dockerfile")
    return target


def snapshot(root: Path) -> dict[str, bytes]:
    """Every source file under root (not the virtualenv, scratch or caches) and its bytes."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not set(_NOT_SOURCE) & set(p.relative_to(root).parts)
    }


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return copy_workspace(tmp_path / "ws")
