"""The service as declared, packaged and deployed: its manifest, the image the shared Dockerfile
builds of it, its Helm values entry (trademesh_testing.contract)."""

from __future__ import annotations

from pathlib import Path

from trademesh_testing.contract import PackagingContract


class TestPackaging(PackagingContract):
    service = Path(__file__).parents[2]
