"""The keystore's exceptions.

Every message is built from ids only (master key ids, transit key names and versions, mount
points, AAD field names): never a plaintext, a key, a wrapped key, a nonce or ciphertext bytes.
Exceptions raised by ``cryptography`` or hvac are not chained (``raise ... from None``), so a
traceback cannot carry them either.
"""

from __future__ import annotations


class KeystoreError(Exception):
    """The keystore cannot do its work: a bad master key configuration, or Vault refused or is
    unreachable. Retrying may help for the latter; the record itself is not known to be bad."""


class DecryptionError(KeystoreError):
    """A sealed record cannot be opened or rewrapped: the AAD differs from the one it was sealed
    with, a byte of it was changed, or its master key (id or transit key version) is gone."""


class InvalidRecordError(DecryptionError, ValueError):
    """A stored record is malformed (bad JSON or bytes, a wrong field size, an unknown format
    version), so it cannot be opened. Also a ``ValueError`` for code that builds records."""
