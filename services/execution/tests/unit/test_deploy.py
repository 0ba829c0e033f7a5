"""The image and the Helm values entry agree with the service's pyproject, and pass hadolint."""

from __future__ import annotations

from pathlib import Path

import pytest
from trademesh_testing.service import (
    check_dockerfile,
    check_helm_values,
    check_manifest,
    run_hadolint,
)

pytestmark = pytest.mark.unit

SERVICE = Path(__file__).parents[2]


def test_the_package_ships_its_manifest_of_registered_topics() -> None:
    check_manifest(SERVICE)


def test_helm_values_entry_matches_the_service() -> None:
    check_helm_values(SERVICE)


def test_dockerfile_is_multi_stage_uv_and_non_root() -> None:
    check_dockerfile(SERVICE)


def test_dockerfile_passes_hadolint() -> None:
    run_hadolint(SERVICE)
