"""The settings: defaults, environment, validation, immutability."""

from __future__ import annotations

import pytest
from trademesh_testing.contract import SettingsContract

from trademesh_notify.config import Settings

pytestmark = pytest.mark.unit


class TestSettings(SettingsContract):
    """Defaults, environment, the common constraints, immutability (trademesh_testing.contract)."""

    settings_class = Settings
