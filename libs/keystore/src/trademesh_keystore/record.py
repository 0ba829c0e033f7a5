"""The stored form of one encrypted secret: ``SealedSecret`` and its JSON and bytes encodings.

A record holds the secret's AES-256-GCM ciphertext (tag included) under a data key of its own,
the nonce of that encryption, and the data key wrapped by a master key together with the id of
that master key. Nothing in it is secret: it is safe to store, copy and back up. Without the
master key and the exact AAD it was sealed with, it opens to nothing.

Two encodings are provided for a Postgres column:

- ``to_json``/``from_json`` for ``jsonb``: ``{"version": 1, "key_id": "...", "wrapped_key":
  "<base64>", "nonce": "<base64>", "ciphertext": "<base64>"}`` (compact separators);
- ``to_bytes``/``from_bytes`` for ``bytea``: ``b"TMKS"``, the format version (1 byte), the key id
  length (1 byte) and key id (ASCII), the wrapped key length (2 bytes, big endian) and wrapped
  key, the 12-byte nonce, then the ciphertext to the end.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trademesh_keystore.errors import InvalidRecordError

#: The format version written by this code; the only one it reads.
FORMAT_VERSION = 1
#: AES-GCM nonce size: 96 bits, the size GCM is designed for.
NONCE_SIZE = 12
#: AES-GCM authentication tag size; every ciphertext is at least this long.
TAG_SIZE = 16

_MAGIC = b"TMKS"
_HEADER = struct.Struct(">4sBB")  # magic, format version, key id length
_WRAPPED_LENGTH = struct.Struct(">H")
# Master key ids are printable ASCII without spaces so that they are safe in logs and messages.
_KEY_ID = re.compile(r"[\x21-\x7e]{1,255}")
_MAX_WRAPPED = 0xFFFF


@dataclass(frozen=True, slots=True, repr=False)
class SealedSecret:
    """One secret encrypted at rest (envelope encryption), as stored.

    ``key_id`` names the master key that wrapped ``wrapped_key`` (a local keyring id such as
    ``k2``, or ``transit:<key name>:v<version>`` for Vault transit); it changes on rewrap while
    ``nonce`` and ``ciphertext`` do not. ``version`` is the record format version.

    The repr shows ids and sizes only.
    """

    key_id: str
    wrapped_key: bytes
    nonce: bytes
    ciphertext: bytes
    version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.version != FORMAT_VERSION:
            raise InvalidRecordError(
                f"unsupported sealed record format version {self.version!r} "
                f"(this keystore reads version {FORMAT_VERSION})"
            )
        if not isinstance(self.key_id, str) or not _KEY_ID.fullmatch(self.key_id):
            raise InvalidRecordError(
                "a sealed record's key id must be 1 to 255 printable ASCII characters"
            )
        for name in ("wrapped_key", "nonce", "ciphertext"):
            if not isinstance(getattr(self, name), bytes):
                raise InvalidRecordError(f"a sealed record's {name} must be bytes")
        if not 0 < len(self.wrapped_key) <= _MAX_WRAPPED:
            raise InvalidRecordError(
                f"a sealed record's wrapped key must be 1 to {_MAX_WRAPPED} bytes"
            )
        if len(self.nonce) != NONCE_SIZE:
            raise InvalidRecordError(f"a sealed record's nonce must be {NONCE_SIZE} bytes")
        if len(self.ciphertext) < TAG_SIZE:
            raise InvalidRecordError(
                f"a sealed record's ciphertext must be at least {TAG_SIZE} bytes (the GCM tag)"
            )

    def __repr__(self) -> str:
        return (
            f"SealedSecret(version={self.version}, key_id={self.key_id!r}, "
            f"wrapped_key=<{len(self.wrapped_key)} bytes>, nonce=<{len(self.nonce)} bytes>, "
            f"ciphertext=<{len(self.ciphertext)} bytes>)"
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON object form (bytes as standard base64), e.g. for a jsonb codec."""
        return {
            "version": self.version,
            "key_id": self.key_id,
            "wrapped_key": base64.b64encode(self.wrapped_key).decode("ascii"),
            "nonce": base64.b64encode(self.nonce).decode("ascii"),
            "ciphertext": base64.b64encode(self.ciphertext).decode("ascii"),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SealedSecret:
        """Read the form ``to_dict`` writes; raises InvalidRecordError if it is malformed."""
        if not isinstance(data, Mapping):
            raise InvalidRecordError("a sealed record must be a JSON object")
        expected = {"version", "key_id", "wrapped_key", "nonce", "ciphertext"}
        if set(data) != expected:
            missing = sorted(expected - set(data))
            extra = sorted(str(k) for k in set(data) - expected)
            raise InvalidRecordError(
                f"a sealed record has the fields {sorted(expected)} (missing {missing}, "
                f"unexpected {extra})"
            )
        version = data["version"]
        if not isinstance(version, int) or isinstance(version, bool):
            raise InvalidRecordError("a sealed record's version must be an integer")
        return cls(
            version=version,
            key_id=data["key_id"],
            wrapped_key=_b64_field(data, "wrapped_key"),
            nonce=_b64_field(data, "nonce"),
            ciphertext=_b64_field(data, "ciphertext"),
        )

    def to_json(self) -> str:
        """Compact JSON, for a ``jsonb`` (or ``text``) column."""
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> SealedSecret:
        """Read what ``to_json`` writes; raises InvalidRecordError if it is malformed."""
        try:
            data = json.loads(text)
        except (ValueError, TypeError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise InvalidRecordError("a sealed record is not valid JSON") from None
        return cls.from_dict(data)

    def to_bytes(self) -> bytes:
        """The binary form, for a ``bytea`` column (see the module docstring for the layout)."""
        key_id = self.key_id.encode("ascii")
        return b"".join(
            (
                _HEADER.pack(_MAGIC, self.version, len(key_id)),
                key_id,
                _WRAPPED_LENGTH.pack(len(self.wrapped_key)),
                self.wrapped_key,
                self.nonce,
                self.ciphertext,
            )
        )

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> SealedSecret:
        """Read what ``to_bytes`` writes; raises InvalidRecordError if it is malformed."""
        raw = bytes(data)
        if len(raw) < _HEADER.size or raw[: len(_MAGIC)] != _MAGIC:
            raise InvalidRecordError("not a sealed record (missing the TMKS header)")
        _, version, key_id_length = _HEADER.unpack_from(raw)
        if version != FORMAT_VERSION:
            raise InvalidRecordError(
                f"unsupported sealed record format version {version} "
                f"(this keystore reads version {FORMAT_VERSION})"
            )
        offset = _HEADER.size
        key_id_bytes = raw[offset : offset + key_id_length]
        offset += key_id_length
        if len(key_id_bytes) != key_id_length or len(raw) < offset + _WRAPPED_LENGTH.size:
            raise InvalidRecordError("a sealed record is truncated")
        (wrapped_length,) = _WRAPPED_LENGTH.unpack_from(raw, offset)
        offset += _WRAPPED_LENGTH.size
        if len(raw) < offset + wrapped_length + NONCE_SIZE + TAG_SIZE:
            raise InvalidRecordError("a sealed record is truncated")
        wrapped_key = raw[offset : offset + wrapped_length]
        offset += wrapped_length
        nonce = raw[offset : offset + NONCE_SIZE]
        offset += NONCE_SIZE
        return cls(
            version=version,
            key_id=key_id_bytes.decode("latin-1"),  # validated as printable ASCII by the model
            wrapped_key=wrapped_key,
            nonce=nonce,
            ciphertext=raw[offset:],
        )


def _b64_field(data: Mapping[str, Any], name: str) -> bytes:
    value = data[name]
    if not isinstance(value, str):
        raise InvalidRecordError(f"a sealed record's {name} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRecordError(f"a sealed record's {name} is not valid base64") from None
