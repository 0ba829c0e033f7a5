"""Envelope encryption of secrets at rest: AES-256-GCM data keys wrapped by a master key.

A ``Keystore`` seals each secret under a data key of its own, bound to a context (AAD such as an
account id and exchange), and wraps that data key with a master key: ``LocalMasterKeys`` (a
keyring of base64 AES-256 keys from settings) or ``VaultTransitMasterKey`` (Vault/OpenBao
transit through hvac). ``Keystore.rewrap`` moves records to a rotated master key without
decrypting the secret. ``SealedSecret`` is the stored record (JSON or bytes); ``mask`` shows a
secret in lists.

    keystore = Keystore(LocalMasterKeys({"k1": settings.master_key}, current="k1"))
    sealed = keystore.seal(api_secret, aad={"account_id": str(account.id), "exchange": "kraken"})
    row.secret = sealed.to_bytes()
    ...
    secret = keystore.open(SealedSecret.from_bytes(row.secret), aad={...})  # a SecretStr
"""

from trademesh_keystore.errors import DecryptionError, InvalidRecordError, KeystoreError
from trademesh_keystore.keystore import Keystore, canonical_aad
from trademesh_keystore.masking import mask
from trademesh_keystore.master import LocalMasterKeys, MasterKey, new_master_key
from trademesh_keystore.record import FORMAT_VERSION, SealedSecret
from trademesh_keystore.settings import KeystoreSettings, keystore_from
from trademesh_keystore.vault import VaultTransitMasterKey

__all__ = [
    "FORMAT_VERSION",
    "DecryptionError",
    "InvalidRecordError",
    "Keystore",
    "KeystoreError",
    "KeystoreSettings",
    "LocalMasterKeys",
    "MasterKey",
    "SealedSecret",
    "VaultTransitMasterKey",
    "canonical_aad",
    "keystore_from",
    "mask",
    "new_master_key",
]
