"""The settings: defaults, environment, validation, immutability."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from trademesh_market_data.config import Settings

pytestmark = pytest.mark.unit


def test_defaults_name_the_service_and_its_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRADEMESH_HTTP_PORT", raising=False)
    monkeypatch.delenv("TRADEMESH_SERVICE_NAME", raising=False)
    settings = Settings()
    assert settings.service_name == "market-data"
    assert settings.http_port == 8100
    assert settings.database_schema == "marketdata"


def test_environment_overrides_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEMESH_HTTP_PORT", "18123")
    assert Settings().http_port == 18123


@pytest.mark.parametrize("field", ["http_port", "consumer_group"])
def test_invalid_values_are_refused(field: str) -> None:
    bad = {"http_port": 70000, "consumer_group": "Not A Group"}[field]
    with pytest.raises(ValidationError, match=field):
        Settings(**{field: bad})


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.http_port = 1  # type: ignore[misc]


def test_questdb_needs_its_addresses() -> None:
    with pytest.raises(ValidationError, match="questdb_ilp_conf and questdb_pg_dsn"):
        Settings(tick_store="questdb")
    settings = Settings(
        tick_store="questdb",
        questdb_ilp_conf="http::addr=questdb:9000;",
        questdb_pg_dsn="postgresql://admin:quest@questdb:8812/qdb",
    )
    assert "quest@" not in repr(settings)  # the DSN's password is a secret
