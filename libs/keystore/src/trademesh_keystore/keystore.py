"""The keystore: seal, open and rewrap secrets with envelope encryption.

Sealing a secret:

1. a fresh 256-bit data key is generated for this record alone (``AESGCM.generate_key``);
2. the secret (UTF-8) is encrypted with AES-256-GCM under that data key, a random 96-bit nonce
   and the record AAD (the format version and the caller's context, see ``canonical_aad``);
3. the data key is wrapped by the master key with the context as AAD, and dropped.

A data key encrypts exactly one plaintext, once: a secret that changes is sealed again, under a
new data key, and a rewrap changes the wrap only. So a (data key, nonce) pair can never repeat,
whatever the nonce; the nonce is random anyway, as GCM expects.

Plaintext lives only in the call's local variables and in the returned ``SecretStr``, whose
``repr`` and ``str`` are masked. Python cannot wipe memory (``str`` and ``bytes`` are immutable),
so "only in memory" means: never stored, cached, logged or put in an exception here.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

from trademesh_keystore.errors import DecryptionError
from trademesh_keystore.master import KEY_SIZE, MasterKey
from trademesh_keystore.record import FORMAT_VERSION, NONCE_SIZE, SealedSecret

_log = logging.getLogger(__name__)


def canonical_aad(aad: Mapping[str, str]) -> bytes:
    """The AAD bytes of a context mapping: JSON with sorted keys, no spaces, ASCII escapes.

    The same mapping always gives the same bytes, whatever its order. Keys and values must be
    ``str`` (convert ids yourself, e.g. ``str(account_id)``, so that the bytes do not depend on a
    type's formatting) and are compared exactly: no case folding or Unicode normalisation.
    """
    for key, value in aad.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(
                f"AAD keys and values must be str, got {type(key).__name__} key "
                f"{key if isinstance(key, str) else '?'!r} with a {type(value).__name__} value"
            )
    return json.dumps(dict(aad), sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode(
        "ascii"
    )


def _secret_aad(version: int, context: bytes) -> bytes:
    """The AAD of the secret's own encryption: the format version, then the context.

    The version is bound so that a record cannot be read as another format. The master key id
    is not bound: a rewrap changes it while the ciphertext stays as it is.
    """
    return b"trademesh-keystore/v%d\x00" % version + context


class Keystore:
    """Envelope encryption of secrets under one master key (local keyring or Vault transit).

    ``aad`` is the context a secret belongs to, e.g. ``{"account_id": ..., "exchange": ...}``:
    a record opens only with the same mapping, so a ciphertext copied onto another account's
    row does not decrypt. Both layers are bound to it: the secret's AES-GCM encryption always,
    and the data-key wrap where the master key supports it (see the master key's docstring).
    """

    def __init__(self, master: MasterKey) -> None:
        self._master = master

    @property
    def master(self) -> MasterKey:
        return self._master

    def seal(self, plaintext: SecretStr | str, *, aad: Mapping[str, str]) -> SealedSecret:
        """Encrypt ``plaintext`` for the context ``aad`` under a fresh data key."""
        context = canonical_aad(aad)
        value = plaintext.get_secret_value() if isinstance(plaintext, SecretStr) else plaintext
        if not isinstance(value, str):
            raise TypeError(
                f"a secret to seal must be str or SecretStr, not {type(value).__name__}"
            )
        data_key = AESGCM.generate_key(bit_length=KEY_SIZE * 8)
        nonce = os.urandom(NONCE_SIZE)
        ciphertext = AESGCM(data_key).encrypt(
            nonce, value.encode("utf-8"), _secret_aad(FORMAT_VERSION, context)
        )
        key_id, wrapped = self._master.wrap(data_key, context)
        _log.debug("sealed a secret under master key %s", key_id)
        return SealedSecret(
            key_id=key_id,
            wrapped_key=wrapped,
            nonce=nonce,
            ciphertext=ciphertext,
            version=FORMAT_VERSION,
        )

    def open(self, sealed: SealedSecret, *, aad: Mapping[str, str]) -> SecretStr:
        """The secret of ``sealed``, given the context it was sealed with.

        Raises DecryptionError when the AAD differs, any byte of the record was changed, or its
        master key (version) is gone; the error names the key id only.
        """
        context = canonical_aad(aad)
        data_key = self._master.unwrap(sealed.key_id, sealed.wrapped_key, context)
        try:
            plaintext = AESGCM(data_key).decrypt(
                sealed.nonce, sealed.ciphertext, _secret_aad(sealed.version, context)
            )
        except InvalidTag:
            raise DecryptionError(
                f"the secret sealed under master key {sealed.key_id!r} failed authentication "
                "(the AAD differs from the one it was sealed with, or the record was changed)"
            ) from None
        try:
            value = plaintext.decode("utf-8")
        except UnicodeDecodeError:
            # Authenticated, so written by something other than seal(); say nothing about bytes.
            raise DecryptionError(
                f"the secret sealed under master key {sealed.key_id!r} is not UTF-8 text"
            ) from None
        _log.debug("opened a secret sealed under master key %s", sealed.key_id)
        return SecretStr(value)

    def rewrap(self, sealed: SealedSecret, *, aad: Mapping[str, str]) -> SealedSecret:
        """The same record with its data key wrapped by the current master key.

        The secret is not decrypted and its nonce and ciphertext are kept as they are; only
        ``key_id`` and ``wrapped_key`` change. The old wrap must authenticate with ``aad`` (a
        rewrap cannot move a record to another context), so the old master key (version) must
        still be available. Store the result in place of ``sealed``.
        """
        key_id, wrapped = self._master.rewrap(sealed.key_id, sealed.wrapped_key, canonical_aad(aad))
        _log.debug("rewrapped a record from master key %s to %s", sealed.key_id, key_id)
        return dataclasses.replace(sealed, key_id=key_id, wrapped_key=wrapped)

    def needs_rewrap(self, sealed: SealedSecret) -> bool:
        """Whether ``sealed`` was wrapped by another master key (version) than the current one,
        for a rotation sweep. For Vault transit this reads the key (one request)."""
        return sealed.key_id != self._master.current_key_id()

    def __repr__(self) -> str:
        return f"Keystore({self._master!r})"
