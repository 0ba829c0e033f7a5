"""Fixtures of the repository-wide tests: the repository root and the external tools some run."""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The deploy dependency group, which the deployment tests import (and skip without, outside
# `make test`). Under `make test` a missing one stops the run here instead of skipping them.
DEPLOY_MODULES = (
    "helm_python",
    "kubernetes_validate",
    "hcl2",
    "detect_secrets",
    "jsonschema",
    "check_jsonschema",
    "starlark",
)
if os.environ.get("TRADEMESH_REQUIRE_TOOLS") == "1":
    _missing = [m for m in DEPLOY_MODULES if importlib.util.find_spec(m) is None]
    if _missing:
        raise pytest.UsageError(
            f"the deploy dependency group is not installed ({', '.join(_missing)} missing): "
            "`make deploy-tools` installs it"
        )


def find_tool(path_or_name: str, why: str) -> str:
    """The tool's path: a path relative to the repository root, or a command on PATH.

    A missing tool skips the test with `why`, except under `make test`
    (TRADEMESH_REQUIRE_TOOLS=1), which installs every tool first: there it fails, so that a check
    cannot silently stop running.
    """
    candidate = ROOT / path_or_name
    if "/" in path_or_name and candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which(path_or_name) if "/" not in path_or_name else None
    if found:
        return found
    message = f"{path_or_name} is not installed ({why}); `make deploy-tools` installs it"
    if os.environ.get("TRADEMESH_REQUIRE_TOOLS") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def require_tool() -> Callable[[str, str], str]:
    """`require_tool(path_or_name, why)`: the tool's path, or a skip (a failure under make test)."""
    return find_tool


@pytest.fixture(scope="session")
def root() -> Path:
    """The repository root."""
    return ROOT
