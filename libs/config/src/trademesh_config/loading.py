"""Fail-fast settings loading: a wrong or missing setting stops the process with one clear line."""

from __future__ import annotations

import sys
from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings

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
        parts.append(f"{_env_name(settings_cls, item['loc'])}: {item['msg']}")
    return "invalid settings: " + "; ".join(parts)


def load_settings(settings_cls: type[S], *, exit_on_error: bool = True, **overrides: Any) -> S:
    """Build settings from the environment (and any overrides).

    On a validation error print one line to stderr naming each bad setting (its value is never
    printed: it may be a secret) and raise SettingsError, a SystemExit with status 2, so the
    process stops at start instead of failing later.
    """
    try:
        return settings_cls(**overrides)
    except ValidationError as exc:
        message = describe_error(settings_cls, exc)
        if exit_on_error:
            print(f"trademesh: {message}", file=sys.stderr)  # noqa: T201 - before logging exists
        raise SettingsError(message) from None
