"""The settings: defaults, environment, validation, immutability."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from trademesh_testing.contract import SettingsContract

from trademesh_market_data.config import Settings

pytestmark = pytest.mark.unit


class TestSettings(SettingsContract):
    """Defaults, environment, the common constraints, immutability (trademesh_testing.contract)."""

    settings_class = Settings


def test_questdb_needs_its_addresses() -> None:
    with pytest.raises(ValidationError, match="questdb_ilp_conf and questdb_pg_dsn"):
        Settings(tick_store="questdb")
    settings = Settings(
        tick_store="questdb",
        questdb_ilp_conf="http::addr=questdb:9000;",
        questdb_pg_dsn="postgresql://admin:quest@questdb:8812/qdb",
    )
    assert "quest@" not in repr(settings)  # the DSN's password is a secret
