"""Master keys: what wraps (encrypts) the per-record data keys.

``MasterKey`` is the interface the ``Keystore`` needs. Two implementations exist:
``LocalMasterKeys`` here (a keyring of AES-256 keys held by the process, e.g. from settings) and
``VaultTransitMasterKey`` in ``trademesh_keystore.vault`` (the key never leaves Vault/OpenBao).
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

from trademesh_keystore.errors import DecryptionError, KeystoreError
from trademesh_keystore.record import NONCE_SIZE, TAG_SIZE

#: Size of every key here, master or data: AES-256.
KEY_SIZE = 32

_log = logging.getLogger(__name__)

# Local key ids are stored in every record and appear in logs and messages, so they are short
# and plain. No ":" keeps them apart from transit ids ("transit:<name>:v<n>").
_LOCAL_KEY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_WRAPPED_SIZE = NONCE_SIZE + KEY_SIZE + TAG_SIZE


@runtime_checkable
class MasterKey(Protocol):
    """Wraps and unwraps data keys, binding each wrap to associated data (AAD).

    A key id names the master key (and version) a wrap was made with; it is stored in the record
    next to the wrapped key and given back to ``unwrap`` and ``rewrap``, so that a master key
    keeps opening what its older versions wrapped until those are rewrapped.
    """

    def current_key_id(self) -> str:
        """The id new wraps get; a record with another id is due for ``rewrap``."""
        ...

    def wrap(self, data_key: bytes, aad: bytes) -> tuple[str, bytes]:
        """Encrypt ``data_key`` under the current master key: (key id, wrapped key)."""
        ...

    def unwrap(self, key_id: str, wrapped: bytes, aad: bytes) -> bytes:
        """The data key; raises DecryptionError if the id is unknown, ``wrapped`` was changed
        or ``aad`` differs from the wrap's (when this master key binds AAD)."""
        ...

    def rewrap(self, key_id: str, wrapped: bytes, aad: bytes) -> tuple[str, bytes]:
        """Re-encrypt a wrapped data key under the current master key: (key id, wrapped key).
        Raises like ``unwrap`` when the old wrap does not authenticate."""
        ...


def new_master_key() -> SecretStr:
    """A fresh local master key: 32 random bytes (from the OS CSPRNG), base64, as a SecretStr.

    For provisioning, e.g. ``python -c "from trademesh_keystore import new_master_key as k;
    print(k().get_secret_value())"`` into a secrets store; ``LocalMasterKeys`` reads this form.
    """
    return SecretStr(base64.b64encode(AESGCM.generate_key(bit_length=KEY_SIZE * 8)).decode())


class LocalMasterKeys:
    """A keyring of local AES-256 master keys ``{key_id: base64 key}`` with one current id.

    New wraps use ``current``; any key of the ring unwraps what it wrapped, so rotation is: add
    a new key and make it current, ``rewrap`` the records, then drop the old key. Ids are 1 to 64
    characters of letters, digits, ``.``, ``_`` and ``-``.

    A data key is wrapped with AES-256-GCM, not AES key wrap (RFC 3394/5649): key wrap takes no
    associated data, while GCM authenticates the AAD too, so a wrapped data key moved to another
    record's context does not unwrap. The wrapped form is a random 96-bit nonce, then the GCM
    ciphertext and tag (12 + 32 + 16 = 60 bytes). Random nonces are safe for up to 2**32 wraps
    under one master key (NIST SP 800-38D); rotate long before that.

    The keys are decoded once and held by ``cryptography``'s AESGCM objects in this process;
    the repr names the ids only.
    """

    def __init__(self, keys: Mapping[str, SecretStr], current: str) -> None:
        if not keys:
            raise KeystoreError("the local master keyring is empty")
        self._ciphers: dict[str, AESGCM] = {}
        for key_id, encoded in keys.items():
            if not isinstance(key_id, str) or not _LOCAL_KEY_ID.fullmatch(key_id):
                raise KeystoreError(
                    f"local master key id {key_id!r} is invalid: use 1 to 64 letters, digits, "
                    "'.', '_' or '-', starting with a letter or digit"
                )
            self._ciphers[key_id] = AESGCM(_decode_master_key(key_id, encoded))
        if current not in self._ciphers:
            raise KeystoreError(
                f"the current master key id {current!r} is not in the keyring {self.key_ids}"
            )
        self._current = current

    @property
    def key_ids(self) -> list[str]:
        """The ids of the keyring, sorted."""
        return sorted(self._ciphers)

    def current_key_id(self) -> str:
        return self._current

    def wrap(self, data_key: bytes, aad: bytes) -> tuple[str, bytes]:
        if len(data_key) != KEY_SIZE:
            raise KeystoreError(f"a data key must be {KEY_SIZE} bytes")
        nonce = os.urandom(NONCE_SIZE)
        wrapped = nonce + self._ciphers[self._current].encrypt(nonce, data_key, aad)
        return self._current, wrapped

    def unwrap(self, key_id: str, wrapped: bytes, aad: bytes) -> bytes:
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise DecryptionError(
                f"master key {key_id!r} is not in the keyring {self.key_ids} "
                "(was it dropped before its records were rewrapped?)"
            )
        if len(wrapped) != _WRAPPED_SIZE:
            raise DecryptionError(
                f"the data key wrapped by {key_id!r} has the wrong size "
                f"(a local wrap is {_WRAPPED_SIZE} bytes)"
            )
        try:
            data_key = cipher.decrypt(wrapped[:NONCE_SIZE], wrapped[NONCE_SIZE:], aad)
        except InvalidTag:
            raise DecryptionError(
                f"the data key wrapped by master key {key_id!r} failed authentication "
                "(the AAD differs from the one it was sealed with, or the record was changed)"
            ) from None
        return data_key

    def rewrap(self, key_id: str, wrapped: bytes, aad: bytes) -> tuple[str, bytes]:
        """Unwrap with ``key_id`` and wrap again with the current key (a fresh nonce even when
        ``key_id`` is already current). The data key is in this process's memory meanwhile;
        the secret it protects is not decrypted."""
        new_id, rewrapped = self.wrap(self.unwrap(key_id, wrapped, aad), aad)
        _log.debug("rewrapped a data key from master key %s to %s", key_id, new_id)
        return new_id, rewrapped

    def __repr__(self) -> str:
        return f"LocalMasterKeys(key_ids={self.key_ids!r}, current={self._current!r})"


def _decode_master_key(key_id: str, encoded: SecretStr) -> bytes:
    if not isinstance(encoded, SecretStr):
        raise KeystoreError(f"local master key {key_id!r} must be given as a pydantic SecretStr")
    try:
        key = base64.b64decode(encoded.get_secret_value().strip(), validate=True)
    except (binascii.Error, ValueError):
        raise KeystoreError(f"local master key {key_id!r} is not valid base64") from None
    if len(key) != KEY_SIZE:
        raise KeystoreError(
            f"local master key {key_id!r} must decode to {KEY_SIZE} bytes (AES-256), "
            f"not {len(key)}; make one with new_master_key()"
        )
    return key
