"""Settings: pydantic-settings base with the TRADEMESH_ prefix, fail-fast loading, and secrets providers."""

from trademesh_config.loading import SettingsError, load_settings
from trademesh_config.settings import (
    DatabaseSettings,
    HttpSettings,
    KafkaSettings,
    ServiceSettings,
    TrademeshSettings,
)

__all__ = [
    "DatabaseSettings",
    "HttpSettings",
    "KafkaSettings",
    "ServiceSettings",
    "SettingsError",
    "TrademeshSettings",
    "load_settings",
]
