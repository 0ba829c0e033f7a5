"""The settings: defaults, environment, validation, immutability."""

from __future__ import annotations

import pytest
from trademesh_testing.contract import SettingsContract

from trademesh_gateway.config import Settings
from trademesh_gateway.engine import SERVICES

pytestmark = pytest.mark.unit


class TestSettings(SettingsContract):
    """Defaults, environment, the common constraints, immutability (trademesh_testing.contract)."""

    settings_class = Settings
    invalid = {
        "rate_limit_user": "lots",
        "rate_limit_ip": "20 per fortnight please",
        "rate_limit_storage_uri": "mongodb://x",
        "auth_url": "auth:8500",
        "max_body_bytes": 0,
    }


def test_the_public_port_keeps_metrics_apart_trusts_no_proxy_and_knows_every_service(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TRADEMESH_METRICS_PORT", raising=False)
    monkeypatch.delenv("TRADEMESH_TRUSTED_PROXIES", raising=False)
    settings = Settings()
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
        "notify": 8601,
    }


def test_the_environment_sets_the_rate_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEMESH_RATE_LIMIT_USER", "5/second")
    assert Settings().rate_limit_user == "5/second"
