"""Secrets providers: where a setting's value may come from besides the process environment.

A provider answers ``get(name)`` for a setting name without the ``TRADEMESH_`` prefix
(``database_url``) and returns a ``SecretStr`` or ``None``. Three exist:

- ``EnvSecrets``: the process environment (``TRADEMESH_DATABASE_URL``);
- ``DotenvSecrets``: a dotenv file with the same variable names, read with python-dotenv;
- ``VaultSecrets``: one KV version 2 secret in Vault or OpenBao, read with hvac, whose keys are
  the setting names (``database_url``). Token and AppRole logins are supported.

``settings_source`` turns a provider into a pydantic-settings source; ``load_settings`` puts it
after the environment, so an explicit environment variable always wins over the provider.
No provider ever logs or returns a value other than as ``SecretStr``, and their reprs never show
a token or a value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import hvac
import hvac.exceptions
import requests
from dotenv import dotenv_values
from pydantic import Field, SecretStr, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from trademesh_config.settings import ENV_PREFIX, TrademeshSettings


class SecretsError(RuntimeError):
    """A secrets provider could not be read; the message never contains a secret."""


@runtime_checkable
class SecretsProvider(Protocol):
    """Answers setting names (without prefix, lower case) with secret values."""

    @property
    def description(self) -> str:
        """Where values come from, safe to print (no token, no value)."""
        ...

    def get(self, name: str) -> SecretStr | None:
        """The value for ``name`` or None when this provider does not have it."""
        ...


class EnvSecrets:
    """Secrets from environment variables ``TRADEMESH_<NAME>``."""

    def __init__(self, environ: Mapping[str, str] | None = None, prefix: str = ENV_PREFIX) -> None:
        self._environ = os.environ if environ is None else environ
        self._prefix = prefix
        #: True when this reads os.environ, which pydantic-settings' own env source covers.
        self.is_process_environment = environ is None and prefix == ENV_PREFIX

    @property
    def description(self) -> str:
        return f"environment ({self._prefix}*)"

    def get(self, name: str) -> SecretStr | None:
        value = self._environ.get(f"{self._prefix}{name}".upper())
        return None if value is None else SecretStr(value)

    def __repr__(self) -> str:
        return f"EnvSecrets(prefix={self._prefix!r})"


class DotenvSecrets:
    """Secrets from a dotenv file with ``TRADEMESH_<NAME>=value`` lines (python-dotenv syntax)."""

    def __init__(self, path: str | Path, prefix: str = ENV_PREFIX) -> None:
        self.path = Path(path)
        self._prefix = prefix
        if not self.path.is_file():
            raise SecretsError(f"dotenv secrets file {self.path} does not exist")
        values = dotenv_values(self.path)
        self._values = {k.upper(): v for k, v in values.items() if v is not None}

    @property
    def description(self) -> str:
        return f"dotenv file {self.path}"

    def get(self, name: str) -> SecretStr | None:
        value = self._values.get(f"{self._prefix}{name}".upper())
        return None if value is None else SecretStr(value)

    def __repr__(self) -> str:
        return f"DotenvSecrets(path={str(self.path)!r})"


_TRANSIENT_VAULT_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    hvac.exceptions.VaultDown,
    hvac.exceptions.InternalServerError,
    hvac.exceptions.BadGateway,
)


class VaultSecrets:
    """Secrets from one KV v2 secret in Vault/OpenBao, e.g. mount ``secret``, path ``trademesh``.

    The secret is read once, at construction (with a few retries if the server is unreachable,
    as it may still be starting next to the service), and kept in memory. Keys are setting names
    such as ``database_url``; upper-case keys and keys with the ``TRADEMESH_`` prefix are accepted
    too so that one secret can also be used as an env file by other tools.
    """

    def __init__(
        self,
        url: str,
        *,
        token: SecretStr | None = None,
        role_id: str | None = None,
        secret_id: SecretStr | None = None,
        mount: str = "secret",
        path: str = "trademesh",
        namespace: str | None = None,
        timeout_s: float = 5.0,
        attempts: int = 3,
        verify: bool | str = True,
    ) -> None:
        self.url = url
        self.mount = mount
        self.path = path
        self._client = hvac.Client(
            url=url,
            token=token.get_secret_value() if token else None,
            namespace=namespace,
            timeout=timeout_s,
            verify=verify,
        )
        self._attempts = max(1, attempts)
        try:
            if role_id is not None:
                if secret_id is None:
                    raise SecretsError("Vault AppRole login needs a secret id")
                self._call(
                    lambda: self._client.auth.approle.login(
                        role_id=role_id, secret_id=secret_id.get_secret_value()
                    )
                )
            elif token is None:
                raise SecretsError("Vault needs a token or an AppRole role id and secret id")
            response = self._call(
                lambda: self._client.secrets.kv.v2.read_secret_version(
                    path=path, mount_point=mount, raise_on_deleted_version=True
                )
            )
        except SecretsError:
            raise
        except hvac.exceptions.Forbidden:
            raise SecretsError(
                f"Vault at {url} refused access to {mount}/{path} (check the token or role)"
            ) from None
        except hvac.exceptions.InvalidPath:
            raise SecretsError(f"Vault at {url} has no KV v2 secret at {mount}/{path}") from None
        except hvac.exceptions.InvalidRequest as exc:
            # The message is the server's; it names paths and reasons, never the token.
            raise SecretsError(f"Vault at {url} rejected the request: {exc}") from None
        except _TRANSIENT_VAULT_ERRORS as exc:
            raise SecretsError(
                f"Vault at {url} is unreachable after {self._attempts} attempts "
                f"({type(exc).__name__})"
            ) from None
        data = response.get("data", {}).get("data") or {}
        self._values: dict[str, str] = {}
        for key, value in data.items():
            if value is None:
                continue
            normal = key.lower()
            if normal.startswith(ENV_PREFIX.lower()):
                normal = normal[len(ENV_PREFIX) :]
            self._values[normal] = value if isinstance(value, str) else str(value)

    def _call(self, fn: Any) -> Any:
        retrying = retry(
            retry=retry_if_exception_type(_TRANSIENT_VAULT_ERRORS),
            stop=stop_after_attempt(self._attempts),
            wait=wait_exponential_jitter(multiplier=0.2, max=2.0, jitter=0.2),
            reraise=True,
        )
        return retrying(fn)()

    @property
    def client(self) -> hvac.Client:
        """The authenticated hvac client, for providers of other secret engines (e.g. transit)."""
        return self._client

    @property
    def description(self) -> str:
        return f"Vault KV v2 {self.mount}/{self.path} at {self.url}"

    def keys(self) -> list[str]:
        """The setting names this secret holds (names only, never values)."""
        return sorted(self._values)

    def get(self, name: str) -> SecretStr | None:
        value = self._values.get(name.lower())
        return None if value is None else SecretStr(value)

    def __repr__(self) -> str:
        return f"VaultSecrets(url={self.url!r}, mount={self.mount!r}, path={self.path!r})"


class ChainSecrets:
    """Asks several providers in order; the first one with a value wins."""

    def __init__(self, providers: Sequence[SecretsProvider]) -> None:
        self.providers = list(providers)

    @property
    def description(self) -> str:
        return " then ".join(p.description for p in self.providers)

    def get(self, name: str) -> SecretStr | None:
        for provider in self.providers:
            value = provider.get(name)
            if value is not None:
                return value
        return None


class SecretsSettings(TrademeshSettings):
    """Which secrets provider a process uses; read from the environment before anything else."""

    secrets_provider: Literal["env", "dotenv", "vault"] = Field(
        "env", description="Where settings and secrets come from besides the environment."
    )
    secrets_dotenv_path: Path = Field(
        Path(".env"), description="The dotenv file read when secrets_provider=dotenv."
    )
    vault_addr: str | None = Field(None, description="Vault/OpenBao URL, e.g. https://vault:8200.")
    vault_token: SecretStr | None = Field(None, description="Vault token (or use AppRole).")
    vault_role_id: str | None = Field(None, description="AppRole role id.")
    vault_secret_id: SecretStr | None = Field(None, description="AppRole secret id.")
    vault_namespace: str | None = None
    vault_kv_mount: str = Field("secret", description="KV version 2 mount point.")
    vault_kv_path: str = Field("trademesh", description="Path of the secret within the mount.")
    vault_timeout_s: float = Field(5.0, gt=0, le=60)
    vault_attempts: int = Field(3, ge=1, le=20, description="Tries when Vault is unreachable.")
    vault_ca_cert: Path | None = Field(None, description="CA bundle to verify Vault's TLS.")

    @model_validator(mode="after")
    def _vault_complete(self) -> SecretsSettings:
        if self.secrets_provider == "vault":
            if not self.vault_addr:
                raise ValueError("TRADEMESH_VAULT_ADDR is required when secrets_provider=vault")
            if self.vault_token is None and not (self.vault_role_id and self.vault_secret_id):
                raise ValueError(
                    "secrets_provider=vault needs TRADEMESH_VAULT_TOKEN or "
                    "TRADEMESH_VAULT_ROLE_ID and TRADEMESH_VAULT_SECRET_ID"
                )
        return self


def secrets_provider_from_settings(settings: SecretsSettings) -> SecretsProvider:
    """Build the provider the settings name. Raises SecretsError if it cannot be read."""
    if settings.secrets_provider == "dotenv":
        return DotenvSecrets(settings.secrets_dotenv_path)
    if settings.secrets_provider == "vault":
        assert settings.vault_addr is not None  # checked by SecretsSettings
        return VaultSecrets(
            settings.vault_addr,
            token=settings.vault_token,
            role_id=settings.vault_role_id,
            secret_id=settings.vault_secret_id,
            mount=settings.vault_kv_mount,
            path=settings.vault_kv_path,
            namespace=settings.vault_namespace,
            timeout_s=settings.vault_timeout_s,
            attempts=settings.vault_attempts,
            verify=str(settings.vault_ca_cert) if settings.vault_ca_cert else True,
        )
    return EnvSecrets()


class SecretsProviderSource(PydanticBaseSettingsSource):
    """A pydantic-settings source that asks a SecretsProvider for every field of the settings."""

    def __init__(self, settings_cls: type[BaseSettings], provider: SecretsProvider) -> None:
        super().__init__(settings_cls)
        self.provider = provider

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        value = self.provider.get(field_name)
        return value, field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for field_name, field in self.settings_cls.model_fields.items():
            value, key, _ = self.get_field_value(field, field_name)
            if value is None:
                continue
            # Secret fields keep the SecretStr; other fields get the plain text to validate.
            values[key] = value if _is_secret(field) else value.get_secret_value()
        return values

    def __repr__(self) -> str:
        return f"SecretsProviderSource({self.provider!r})"


def _is_secret(field: FieldInfo) -> bool:
    annotation = field.annotation
    if annotation is SecretStr:
        return True
    return SecretStr in getattr(annotation, "__args__", ())
