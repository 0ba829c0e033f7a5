"""The settings: defaults, environment, validation, immutability."""

from __future__ import annotations

import pytest
from trademesh_testing.contract import SettingsContract

from trademesh_notify.config import Settings

pytestmark = pytest.mark.unit


class TestSettings(SettingsContract):
    """Defaults, environment, the common constraints, immutability (trademesh_testing.contract)."""

    settings_class = Settings


def test_rate_limits_per_channel_kind_are_read_from_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "TRADEMESH_DELIVERY_RATE_LIMITS", '{"webhook": "5/second", "default": "1/minute"}'
    )
    settings = Settings()
    assert settings.delivery_rate_limits == {"webhook": "5/second", "default": "1/minute"}
    assert Settings.model_fields["delivery_rate_limits"].default_factory is not None


@pytest.mark.parametrize(
    "limits",
    [{"webhook": "fast"}, {"webhook": ""}, {"Web Hook": "5/second"}],
)
def test_a_rate_limit_not_in_the_limits_notation_is_refused(limits: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="delivery_rate_limits"):
        Settings(delivery_rate_limits=limits)


def test_a_rate_limit_storage_of_another_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="delivery_rate_limit_storage_uri"):
        Settings(delivery_rate_limit_storage_uri="http://127.0.0.1:6379")
