"""The settings: defaults, environment, validation, immutability."""

from __future__ import annotations

import pytest
from trademesh_testing.contract import SettingsContract

from trademesh_audit.config import Settings

pytestmark = pytest.mark.unit


class TestSettings(SettingsContract):
    """Defaults, environment, the common constraints, immutability (trademesh_testing.contract)."""

    settings_class = Settings
    invalid = {"checkpoint_interval_s": 0}


def test_the_master_key_is_audits_own_transit_key_unless_told(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TRADEMESH_KEYSTORE_TRANSIT_KEY", raising=False)
    assert Settings().keystore_transit_key == "trademesh-audit"
    monkeypatch.setenv("TRADEMESH_KEYSTORE_TRANSIT_KEY", "elsewhere")
    assert Settings().keystore_transit_key == "elsewhere"
