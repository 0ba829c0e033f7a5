"""The addresses `make run` gives every service: each other's, and the public one of the gateway."""

from __future__ import annotations

from pathlib import Path

import pytest
from trademesh_cli.project import ServiceEntry
from trademesh_cli.supervisor import service_urls

pytestmark = pytest.mark.unit


def entry(name: str, port: int) -> ServiceEntry:
    return ServiceEntry(name=name, module=f"trademesh_{name}", port=port, path=Path(name))


def test_every_service_gets_each_others_url_and_the_gateway_is_the_public_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TRADEMESH_PUBLIC_URL", raising=False)
    env = service_urls([entry("gateway", 8000), entry("auth", 8500)], offset=10)
    assert env["TRADEMESH_GATEWAY_URL"] == "http://127.0.0.1:8010"
    assert env["TRADEMESH_AUTH_JWKS_URL"] == "http://127.0.0.1:8510/.well-known/jwks.json"
    assert env["TRADEMESH_PUBLIC_URL"] == "http://127.0.0.1:8010"


def test_a_public_url_from_the_environment_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEMESH_PUBLIC_URL", "https://trade.example.org")
    env = service_urls([entry("gateway", 8000)], offset=0)
    assert env["TRADEMESH_PUBLIC_URL"] == "https://trade.example.org"
