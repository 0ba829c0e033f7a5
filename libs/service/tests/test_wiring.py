"""wire and service_app: the platform parts a service's manifest calls for, and its HTTP app."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter
from trademesh_config import SchemaName, ServiceSettings
from trademesh_service import service_app, service_lifespan, wire

pytestmark = pytest.mark.unit

PYPROJECT = """
[project]
name = "trademesh-{slug}"
description = "Probes the wiring."

[tool.trademesh.service]
name = "{slug}"
module = "trademesh_{package}"
port = 8700
{schema}
consumes = []
produces = []
"""


class Settings(ServiceSettings):
    service_name: str = "wire-probe"
    database_schema: SchemaName = "wire_probe"


def _package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slug: str, schema: bool) -> str:
    package = f"trademesh_{slug.replace('-', '_')}"
    folder = tmp_path / package
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    (folder / "pyproject.toml").write_text(
        PYPROJECT.format(
            slug=slug,
            package=package.removeprefix("trademesh_"),
            schema=f'schema = "{package.removeprefix("trademesh_")}"' if schema else "",
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return f"{package}.app"


def test_a_service_with_a_schema_gets_its_database_and_both_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wiring = wire(Settings(), _package(tmp_path, monkeypatch, "wire-probe", schema=True))
    assert wiring.database.schema == "wire_probe"  # the settings' schema
    assert list(wiring.readiness) == ["kafka", "postgres"]
    assert wiring.tokens is not None
    assert wiring.manifest.name == "wire-probe"


def test_a_service_without_a_schema_has_no_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wiring = wire(
        Settings(),
        _package(tmp_path, monkeypatch, "wire-bare", schema=False),
        verify_tokens=False,
    )
    assert wiring.db is None and wiring.tokens is None
    assert list(wiring.readiness) == ["kafka"]
    with pytest.raises(RuntimeError, match="owns no schema"):
        wiring.database  # noqa: B018


async def test_the_app_holds_the_runtime_the_about_route_and_the_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings()
    wiring = wire(settings, _package(tmp_path, monkeypatch, "wire-app", schema=True))
    api = APIRouter()

    @api.get("/ping")
    async def ping() -> dict[str, str]:
        return {"pong": "yes"}

    runtime: Any = object()
    lifespan = service_lifespan(settings, log=wiring.log, bus=wiring.bus)
    app = service_app(settings, wiring, lifespan=lifespan, runtime=runtime, api=api)
    assert app.state.runtime is runtime
    assert app.title == "trademesh wire-app"
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        about = (await client.get("/api/v1/about")).json()
        assert (about["service"], about["schema_name"]) == ("wire-probe", "wire_probe")
        assert about["description"] == "Probes the wiring."
        assert (await client.get("/api/v1/ping")).json() == {"pong": "yes"}
