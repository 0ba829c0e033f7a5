"""The tests every service passes, written once: a service subclasses these classes in its own
test modules and gives them its fixtures (as FastStream's brokers share one test suite).

    # services/risk/tests/unit/test_deploy.py
    class TestPackaging(PackagingContract):
        service = Path(__file__).parents[2]

    # services/risk/tests/unit/test_config.py
    class TestSettings(SettingsContract):
        settings_class = Settings

    # services/risk/tests/integration/test_service.py
    class TestService(ServiceContract):
        @pytest.fixture
        def private_app(self, private_infra: Any) -> FastAPI:
            return create_app(private_infra.settings(Settings, ready_timeout_s=1.0))

`ServiceContract` runs on the real engines and needs the service's `client` (its running app)
and `settings` fixtures, and `private_app`: the app on `private_infra`, engines of its own that
the test stops and starts. A service with other readiness checks, or /metrics elsewhere, sets
the class attributes or overrides one test; its own tests stay beside the class.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from pydantic import ValidationError
from trademesh_service import service_manifest

from trademesh_testing.http import app_client
from trademesh_testing.service import (
    check_declared_metrics,
    check_dockerfile,
    check_helm_values,
    check_manifest,
    run_hadolint,
)
from trademesh_testing.waiting import eventually

#: The metrics every service exports once it has answered a request and a readiness check.
REQUIRED_METRICS = frozenset({"trademesh_http_requests_total", "trademesh_ready"})


class PackagingContract:
    """How the service is declared, packaged and deployed: its manifest, image and Helm values."""

    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.unit]
    #: The service folder (services/<name>).
    service: ClassVar[Path]

    def test_the_package_ships_its_manifest_of_registered_topics(self) -> None:
        check_manifest(self.service)

    def test_helm_values_entry_matches_the_service(self) -> None:
        check_helm_values(self.service)

    def test_the_shared_dockerfile_builds_it_multi_stage_with_uv_and_non_root(self) -> None:
        check_dockerfile(self.service)

    def test_the_shared_dockerfile_passes_hadolint(self) -> None:
        run_hadolint(self.service)


class SettingsContract:
    """The service's settings: defaults as its manifest declares them, the environment over them,
    the common fields' constraints, immutability."""

    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.unit]
    #: The service's Settings class.
    settings_class: ClassVar[type[Any]]
    #: Values of the service's own fields that its settings refuse, by field.
    invalid: ClassVar[Mapping[str, object]] = {}

    def test_defaults_are_the_declared_name_port_schema_and_group(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for name in (
            "SERVICE_NAME",
            "HTTP_PORT",
            "METRICS_PORT",
            "DATABASE_SCHEMA",
            "CONSUMER_GROUP",
        ):
            monkeypatch.delenv(f"TRADEMESH_{name}", raising=False)
        settings = self.settings_class()
        manifest = service_manifest(self.settings_class.__module__)
        assert (settings.service_name, settings.http_port) == (manifest.name, manifest.port)
        assert settings.consumer_group == manifest.name
        assert getattr(settings, "database_schema", None) == manifest.schema
        assert settings.metrics_port == manifest.metrics_port

    def test_the_environment_overrides_the_defaults(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("TRADEMESH_HTTP_PORT", "18123")
        assert self.settings_class().http_port == 18123

    def test_invalid_values_are_refused_by_name(self) -> None:
        common = {"http_port": 70000, "consumer_group": "Not A Group", "service_name": "Risk!"}
        for field, bad in {**common, **self.invalid}.items():
            with pytest.raises(ValidationError, match=field):
                self.settings_class(**{field: bad})

    def test_the_settings_are_frozen(self) -> None:
        settings = self.settings_class()
        with pytest.raises(ValidationError):
            settings.http_port = 1


class ServiceContract:
    """The running service on the real broker and Postgres: /health, /ready and what it checks,
    /metrics, the about route."""

    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.integration]
    #: The readiness checks /ready runs, by name.
    readiness: ClassVar[tuple[str, ...]] = ("kafka", "postgres")

    @pytest.fixture
    def private_app(self, private_infra: Any) -> Any:
        """The service's app on `private_infra`, with a short readiness timeout."""
        raise NotImplementedError("a service's ServiceContract subclass gives private_app")

    async def test_health_and_ready_check_the_real_dependencies(
        self, client: httpx.AsyncClient
    ) -> None:
        assert (await client.get("/health")).json()["status"] == "ok"
        response = await client.get("/ready")
        assert response.status_code == 200, response.text
        assert response.json()["checks"] == dict.fromkeys(self.readiness, "ok")

    async def test_ready_follows_its_dependencies(
        self, private_app: Any, private_infra: Any
    ) -> None:
        engines = [
            (name, getattr(private_infra, name))
            for name in ("kafka", "postgres")
            if name in self.readiness
        ]
        async with app_client(private_app) as http:

            async def ready_is(status: int) -> dict[str, Any] | None:
                response = await http.get("/ready")
                return response.json() if response.status_code == status else None

            await eventually(lambda: ready_is(200))
            for name, engine in engines:
                engine.stop()
                assert (await eventually(lambda: ready_is(503)))["checks"][name] != "ok"
                assert (await http.get("/health")).status_code == 200  # alive, only not ready
                engine.start()
                await eventually(lambda: ready_is(200))

    async def scrape(self, client: httpx.AsyncClient, app: Any) -> httpx.Response:
        """The service's /metrics answer (on the API's port unless the service says otherwise)."""
        return await client.get("/metrics")

    async def test_metrics_export_the_declared_metrics(
        self, client: httpx.AsyncClient, app: Any
    ) -> None:
        await client.get("/ready")
        await client.get("/api/v1/about")
        response = await self.scrape(client, app)
        assert response.status_code == 200
        check_declared_metrics(response.text, required=REQUIRED_METRICS)

    async def test_about_states_the_contract(
        self, client: httpx.AsyncClient, settings: Any
    ) -> None:
        # The settings' class is the service's own: its package ships the manifest.
        manifest = service_manifest(type(settings).__module__)
        body = (await client.get("/api/v1/about")).json()
        assert body == {
            "service": manifest.name,
            "description": manifest.description,
            "consumes": list(manifest.consumes),
            "produces": list(manifest.produces),
            "schema_name": settings.database_schema if manifest.schema else None,
        }
