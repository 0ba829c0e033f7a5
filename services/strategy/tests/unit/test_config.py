"""The settings: defaults, environment, validation, immutability."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from trademesh_testing.contract import SettingsContract

from trademesh_strategy.config import Settings

pytestmark = pytest.mark.unit


class TestSettings(SettingsContract):
    """Defaults, environment, the common constraints, immutability (trademesh_testing.contract)."""

    settings_class = Settings


def test_approval_links_are_off_without_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRADEMESH_APPROVAL_LINK_KEY", raising=False)

    assert Settings().approval_link_key is None


def test_an_approval_link_key_is_read_as_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    key = "k3y-" * 10
    monkeypatch.setenv("TRADEMESH_APPROVAL_LINK_KEY", key)

    settings = Settings()

    assert settings.approval_link_key is not None
    assert settings.approval_link_key.get_secret_value() == key
    assert key not in repr(settings) and key not in str(settings.model_dump())


def test_a_short_approval_link_key_is_refused_without_showing_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRADEMESH_APPROVAL_LINK_KEY", "too-short-a-key")

    with pytest.raises(ValidationError, match="approval_link_key") as refused:
        Settings()

    assert "too-short-a-key" not in str(refused.value)
