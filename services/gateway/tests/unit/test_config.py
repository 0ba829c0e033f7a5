"""The settings: defaults, environment, validation, immutability."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from trademesh_gateway.config import Settings
from trademesh_gateway.engine import SERVICES

pytestmark = pytest.mark.unit


def test_defaults_name_the_service_and_its_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRADEMESH_HTTP_PORT", raising=False)
    monkeypatch.delenv("TRADEMESH_SERVICE_NAME", raising=False)
    monkeypatch.delenv("TRADEMESH_METRICS_PORT", raising=False)
    monkeypatch.delenv("TRADEMESH_TRUSTED_PROXIES", raising=False)
    settings = Settings()
    assert settings.service_name == "gateway"
    assert settings.http_port == 8000
    assert settings.rate_limit_storage_uri == "memory://"
    # The API port is public: /metrics is served on a port of its own, and no proxy is trusted.
    assert settings.metrics_port == 8090
    assert settings.trusted_proxies == []
    ports = {s: int(settings.upstream_url(s).rsplit(":", 1)[1]) for s in SERVICES}
    assert ports == {
        "auth": 8500,
        "market-data": 8100,
        "strategy": 8200,
        "risk": 8300,
        "execution": 8400,
        "audit": 8600,
    }


def test_environment_overrides_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEMESH_HTTP_PORT", "18123")
    monkeypatch.setenv("TRADEMESH_RATE_LIMIT_USER", "5/second")
    settings = Settings()
    assert (settings.http_port, settings.rate_limit_user) == (18123, "5/second")


@pytest.mark.parametrize(
    "field",
    [
        "http_port",
        "consumer_group",
        "rate_limit_user",
        "rate_limit_ip",
        "rate_limit_storage_uri",
        "auth_url",
        "max_body_bytes",
    ],
)
def test_invalid_values_are_refused(field: str) -> None:
    bad = {
        "http_port": 70000,
        "consumer_group": "Not A Group",
        "rate_limit_user": "lots",
        "rate_limit_ip": "20 per fortnight please",
        "rate_limit_storage_uri": "mongodb://x",
        "auth_url": "auth:8500",
        "max_body_bytes": 0,
    }[field]
    with pytest.raises(ValidationError, match=field):
        Settings(**{field: bad})


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.http_port = 1  # type: ignore[misc]
