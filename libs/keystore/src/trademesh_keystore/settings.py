"""Where a service's master key comes from: settings fields to mix into its Settings class, and
the Keystore they describe. Shared by every service that seals secrets at rest (execution's
exchange credentials, auth's token signing keys), so they are configured the same way."""

from __future__ import annotations

import json
from typing import Self

import hvac
from pydantic import BaseModel, Field, SecretStr, model_validator

from trademesh_keystore.keystore import Keystore
from trademesh_keystore.master import LocalMasterKeys
from trademesh_keystore.vault import VaultTransitMasterKey


class KeystoreSettings(BaseModel):
    """The master key: a local keyring (`keystore_keys` + `keystore_current_key`), or Vault or
    OpenBao transit (`keystore_vault_url` + `keystore_vault_token`), or none."""

    keystore_keys: SecretStr | None = Field(
        None,
        description='Local master keys: a JSON object {"key id": "base64 of 32 random '
        'bytes", ...} (trademesh_keystore.new_master_key makes one).',
    )
    keystore_current_key: str | None = Field(
        None,
        description="The key id of keystore_keys that seals new secrets (rotation: add a "
        "key, make it current, then rewrap).",
    )
    keystore_vault_url: str | None = Field(
        None, description="Vault or OpenBao address, to use its transit engine as master key."
    )
    keystore_vault_token: SecretStr | None = Field(None, description="Token for the transit key.")
    keystore_transit_key: str = Field(
        "trademesh", description="The transit key (created with derived=true)."
    )
    keystore_transit_mount: str = Field("transit", description="Where transit is mounted.")

    @model_validator(mode="after")
    def _one_master_key(self) -> Self:
        if self.keystore_keys is not None and self.keystore_current_key is None:
            raise ValueError("keystore_keys needs keystore_current_key")
        if self.keystore_keys is not None and self.keystore_vault_url is not None:
            raise ValueError("set keystore_keys or keystore_vault_url, not both")
        if self.keystore_vault_url is not None and self.keystore_vault_token is None:
            raise ValueError("keystore_vault_url needs keystore_vault_token")
        if self.keystore_keys is not None:
            keys = json.loads(self.keystore_keys.get_secret_value())
            if not isinstance(keys, dict) or not all(isinstance(v, str) for v in keys.values()):
                raise ValueError('keystore_keys must be a JSON object {"key id": "base64 key"}')
            if self.keystore_current_key not in keys:
                raise ValueError("keystore_current_key is not one of keystore_keys")
        return self


def keystore_from(settings: KeystoreSettings) -> Keystore | None:
    """The keystore the settings describe, or None when they name no master key."""
    if settings.keystore_keys is not None:
        assert settings.keystore_current_key is not None
        keys = json.loads(settings.keystore_keys.get_secret_value())
        return Keystore(
            LocalMasterKeys(
                {k: SecretStr(v) for k, v in keys.items()}, current=settings.keystore_current_key
            )
        )
    if settings.keystore_vault_url is not None:
        assert settings.keystore_vault_token is not None
        client = hvac.Client(
            url=settings.keystore_vault_url, token=settings.keystore_vault_token.get_secret_value()
        )
        return Keystore(
            VaultTransitMasterKey(
                client, settings.keystore_transit_key, mount=settings.keystore_transit_mount
            )
        )
    return None
