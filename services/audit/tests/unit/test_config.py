"""The settings: defaults, environment, validation, immutability."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from trademesh_audit.config import Settings

pytestmark = pytest.mark.unit


def test_defaults_name_the_service_and_its_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRADEMESH_HTTP_PORT", raising=False)
    monkeypatch.delenv("TRADEMESH_SERVICE_NAME", raising=False)
    settings = Settings()
    assert settings.service_name == "audit"
    assert settings.http_port == 8600
    assert settings.database_schema == "audit"


def test_environment_overrides_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEMESH_HTTP_PORT", "18123")
    assert Settings().http_port == 18123


@pytest.mark.parametrize("field", ["http_port", "consumer_group", "checkpoint_interval_s"])
def test_invalid_values_are_refused(field: str) -> None:
    bad = {"http_port": 70000, "consumer_group": "Not A Group", "checkpoint_interval_s": 0}[field]
    with pytest.raises(ValidationError, match=field):
        Settings(**{field: bad})


def test_the_master_key_is_audits_own_transit_key_unless_told(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TRADEMESH_KEYSTORE_TRANSIT_KEY", raising=False)
    assert Settings().keystore_transit_key == "trademesh-audit"
    monkeypatch.setenv("TRADEMESH_KEYSTORE_TRANSIT_KEY", "elsewhere")
    assert Settings().keystore_transit_key == "elsewhere"


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.http_port = 1  # type: ignore[misc]
