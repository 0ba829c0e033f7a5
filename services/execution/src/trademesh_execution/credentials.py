"""Exchange API credentials at rest: sealed by trademesh_keystore, opened only for a call.

A record is one SealedSecret of the key and the secret together, bound (AAD) to the account id
and the exchange, so a record copied to another account or exchange does not open. The master
key is a local keyring from settings, or Vault/OpenBao transit. Vault calls block (hvac), so
they run in a thread. Plaintext exists only in the Credentials handed to the venue for a call:
SecretStr values, never logged, returned or put in an event.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from pydantic import SecretStr
from trademesh_events.ids import AccountId
from trademesh_keystore import (
    Keystore,
    SealedSecret,
)


class NoKeystore(RuntimeError):
    """No master key is configured: exchange credentials cannot be stored."""


@dataclass(frozen=True)
class Credentials:
    api_key: SecretStr
    secret: SecretStr


class CredentialVault:
    """Seals, opens and rewraps the credentials of exchange accounts."""

    def __init__(self, keystore: Keystore | None) -> None:
        self._keystore = keystore

    @property
    def configured(self) -> bool:
        return self._keystore is not None

    def _ks(self) -> Keystore:
        if self._keystore is None:
            raise NoKeystore("no keystore master key is configured (TRADEMESH_KEYSTORE_*)")
        return self._keystore

    @staticmethod
    def _aad(account_id: AccountId, exchange: str) -> dict[str, str]:
        return {"account_id": str(account_id), "exchange": exchange}

    async def seal(self, account_id: AccountId, exchange: str, credentials: Credentials) -> str:
        plain = SecretStr(
            json.dumps(
                {
                    "api_key": credentials.api_key.get_secret_value(),
                    "secret": credentials.secret.get_secret_value(),
                }
            )
        )
        sealed = await asyncio.to_thread(
            self._ks().seal, plain, aad=self._aad(account_id, exchange)
        )
        return sealed.to_json()

    async def open(self, account_id: AccountId, exchange: str, record: str) -> Credentials:
        plain = await asyncio.to_thread(
            self._ks().open, SealedSecret.from_json(record), aad=self._aad(account_id, exchange)
        )
        values = json.loads(plain.get_secret_value())
        return Credentials(SecretStr(values["api_key"]), SecretStr(values["secret"]))

    async def rewrap(self, account_id: AccountId, exchange: str, record: str) -> str | None:
        """The record under the current master key, or None when it is already there."""
        keystore = self._ks()
        sealed = SealedSecret.from_json(record)
        if not await asyncio.to_thread(keystore.needs_rewrap, sealed):
            return None
        moved = await asyncio.to_thread(
            keystore.rewrap, sealed, aad=self._aad(account_id, exchange)
        )
        return moved.to_json()
