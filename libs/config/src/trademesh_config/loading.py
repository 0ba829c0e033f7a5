"""Fail-fast settings loading: a wrong or missing setting stops the process with one clear line."""

from __future__ import annotations

import sys
from typing import Any, TypeVar, cast

from pydantic import ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from trademesh_config.secrets import (
    EnvSecrets,
    SecretsError,
    SecretsProvider,
    SecretsProviderSource,
    SecretsSettings,
    secrets_provider_from_settings,
)

S = TypeVar("S", bound=BaseSettings)


class SettingsError(SystemExit):
    """Raised (as a SystemExit with code 2) when settings are invalid; its text names the setting."""

    def __init__(self, message: str) -> None:
        super().__init__(2)
        self.message = message

    def __str__(self) -> str:
        return self.message


def _env_name(settings_cls: type[BaseSettings], loc: tuple[int | str, ...]) -> str:
    prefix = str(settings_cls.model_config.get("env_prefix") or "")
    field = str(loc[0]) if loc else "?"
    return f"{prefix}{field}".upper()


def describe_error(settings_cls: type[BaseSettings], error: ValidationError) -> str:
    """One line naming every invalid setting by its environment variable, without its value."""
    parts = []
    for item in error.errors(include_input=False, include_url=False):
        if item["loc"]:
            parts.append(f"{_env_name(settings_cls, item['loc'])}: {item['msg']}")
        else:  # a model-level check; its message names the settings itself
            parts.append(str(item["msg"]).removeprefix("Value error, "))
    return "invalid settings: " + "; ".join(parts)


def with_secrets_provider(settings_cls: type[S], provider: SecretsProvider) -> type[S]:
    """A subclass of settings_cls that reads the environment first, then the provider."""

    class _WithProvider(settings_cls):  # type: ignore[valid-type,misc]
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (
                init_settings,
                env_settings,
                SecretsProviderSource(settings_cls, provider),
                dotenv_settings,
                file_secret_settings,
            )

    _WithProvider.__name__ = settings_cls.__name__
    _WithProvider.__qualname__ = settings_cls.__qualname__
    return cast("type[S]", _WithProvider)


def _fail(message: str, exit_on_error: bool) -> SettingsError:
    if exit_on_error:
        print(f"trademesh: {message}", file=sys.stderr)  # noqa: T201 - before logging exists
    return SettingsError(message)


def load_settings(
    settings_cls: type[S],
    *,
    secrets: SecretsProvider | None = None,
    exit_on_error: bool = True,
    **overrides: Any,
) -> S:
    """Build settings from overrides, the environment and a secrets provider, in that order.

    Without ``secrets`` the provider is the one ``TRADEMESH_SECRETS_PROVIDER`` names (env by
    default; dotenv or vault). On any error print one line to stderr naming each bad setting (a
    value is never printed: it may be a secret) and raise SettingsError, a SystemExit with status
    2, so the process stops at start instead of failing later.
    """
    try:
        if secrets is None:
            secrets = secrets_provider_from_settings(SecretsSettings())
    except ValidationError as exc:
        raise _fail(describe_error(SecretsSettings, exc), exit_on_error) from None
    except SecretsError as exc:
        raise _fail(f"secrets provider: {exc}", exit_on_error) from None
    plain_env = isinstance(secrets, EnvSecrets) and secrets.is_process_environment
    cls = settings_cls if plain_env else with_secrets_provider(settings_cls, secrets)
    try:
        return cls(**overrides)
    except ValidationError as exc:
        message = describe_error(settings_cls, exc)
        if not plain_env:
            message += f" (settings read from the environment, then {secrets.description})"
        raise _fail(message, exit_on_error) from None
