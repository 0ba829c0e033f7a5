"""Settings: pydantic-settings base with the TRADEMESH_ prefix, fail-fast loading, and secrets providers."""

from trademesh_config.loading import SettingsError, load_settings, with_secrets_provider
from trademesh_config.secrets import (
    ChainSecrets,
    DotenvSecrets,
    EnvSecrets,
    SecretsError,
    SecretsProvider,
    SecretsProviderSource,
    SecretsSettings,
    VaultSecrets,
    secrets_provider_from_settings,
)
from trademesh_config.settings import (
    DatabaseSettings,
    HttpSettings,
    KafkaSettings,
    ServiceSettings,
    TrademeshSettings,
)

__all__ = [
    "ChainSecrets",
    "DatabaseSettings",
    "DotenvSecrets",
    "EnvSecrets",
    "HttpSettings",
    "KafkaSettings",
    "SecretsError",
    "SecretsProvider",
    "SecretsProviderSource",
    "SecretsSettings",
    "ServiceSettings",
    "SettingsError",
    "TrademeshSettings",
    "VaultSecrets",
    "load_settings",
    "secrets_provider_from_settings",
    "with_secrets_provider",
]
