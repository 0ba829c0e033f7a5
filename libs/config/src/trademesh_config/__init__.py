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
    AuthSettings,
    DatabaseSettings,
    HttpSettings,
    KafkaSettings,
    ServiceSettings,
    TrademeshSettings,
    parse_jwks,
)

__all__ = [
    "AuthSettings",
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
    "parse_jwks",
    "secrets_provider_from_settings",
    "with_secrets_provider",
]
