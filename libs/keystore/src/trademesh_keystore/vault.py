"""A master key in Vault/OpenBao's transit engine, used through hvac.

The transit key never leaves Vault: data keys are sent to ``<mount>/encrypt/<key>`` and come back
wrapped, ``<mount>/decrypt/<key>`` unwraps them, and ``<mount>/rewrap/<key>`` re-encrypts a
wrapped data key under the key's latest version inside Vault, so a rotation
(``<mount>/keys/<key>/rotate``) followed by rewraps never brings a data key into this process.

The token needs ``update`` on ``<mount>/encrypt/<key>``, ``<mount>/decrypt/<key>`` and
``<mount>/rewrap/<key>``, and ``read`` on ``<mount>/keys/<key>`` for ``current_key_id`` (used by
``Keystore.needs_rewrap``). Do not grant ``create`` on the encrypt path: with it, Vault silently
creates a missing key on first encrypt (e.g. after a typo in the key name).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import re
from collections.abc import Callable
from typing import Any, Literal

import hvac
import hvac.exceptions
import requests

from trademesh_keystore.errors import DecryptionError, KeystoreError
from trademesh_keystore.master import KEY_SIZE

_log = logging.getLogger(__name__)

# Transit's ciphertext: "vault:v<key version>:<base64 of nonce, ciphertext and tag>".
_TRANSIT_CIPHERTEXT = re.compile(r"vault:v(?P<version>[1-9][0-9]*):(?P<body>[A-Za-z0-9+/=]+)")
# Key ids stored in records: "transit:<key name>:v<key version>".
_TRANSIT_KEY_ID = re.compile(r"transit:(?P<name>[^:\s]+):v(?P<version>[1-9][0-9]*)")
# Vault's transit key names: word characters, "-", "." and "@" (no ":" or "/").
_KEY_NAME = re.compile(r"\w(?:[\w.@-]*\w)?")

_Operation = Literal["encrypt", "decrypt", "rewrap", "read"]


class VaultTransitMasterKey:
    """The transit key ``key_name`` at ``mount`` as a ``MasterKey``.

    Records name their key as ``transit:<key_name>:v<version>`` and store the raw bytes of
    transit's ciphertext (its ``vault:v<n>:`` prefix is rebuilt from the id), so any change to a
    wrapped key fails Vault's GCM authentication. The mount is not part of the id: records stay
    valid if the key is restored under another mount.

    How the AAD binds the wrap: the keystore's AAD is sent as transit's ``context``. For a key
    created with ``derived=true`` Vault derives the encryption key from that context (HKDF), so
    the data-key wrap itself is bound to the record's context in both layers. For a key without
    derivation Vault ignores the context, and the binding is the record's own AES-GCM AAD alone:
    the data key unwraps under any context, but the secret does not open. Transit's
    ``associated_data`` is deliberately not used: ``rewrap`` does not accept it (Vault and
    OpenBao 2.x), so a wrap bound that way could only be rotated through this process. Create
    keys with ``derived=true`` (aes256-gcm96) to get both layers.

    Transport errors, permission errors and a missing key raise KeystoreError; a wrap Vault
    refuses to decrypt (changed bytes, another context, a version below the key's
    ``min_decryption_version``) raises DecryptionError. There are no retries here: the
    caller's hvac client sets the timeout, and the caller decides whether to try again.

    Every method is one blocking HTTP request through hvac (``requests``); from async code, call
    the keystore through ``asyncio.to_thread``.
    """

    def __init__(self, client: hvac.Client, key_name: str, mount: str = "transit") -> None:
        if not _KEY_NAME.fullmatch(key_name):
            raise KeystoreError(f"{key_name!r} is not a valid transit key name")
        if not mount or mount.startswith("/") or mount.endswith("/"):
            raise KeystoreError(f"{mount!r} is not a valid mount point (no leading or trailing /)")
        self._client = client
        self.key_name = key_name
        self.mount = mount

    def current_key_id(self) -> str:
        """The id of the key's latest version, read from ``<mount>/keys/<key>`` (needs
        ``read`` there); a transit encrypt always uses the latest version."""
        response = self._call(
            "read",
            lambda: self._client.secrets.transit.read_key(
                name=self.key_name, mount_point=self.mount
            ),
        )
        version = _field(response, "latest_version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise KeystoreError(
                f"Vault returned no latest version for transit key {self.key_name!r}"
            )
        return self._key_id(version)

    def wrap(self, data_key: bytes, aad: bytes) -> tuple[str, bytes]:
        if len(data_key) != KEY_SIZE:
            raise KeystoreError(f"a data key must be {KEY_SIZE} bytes")
        response = self._call(
            "encrypt",
            lambda: self._client.secrets.transit.encrypt_data(
                name=self.key_name,
                plaintext=_b64(data_key),
                context=_b64(aad),
                mount_point=self.mount,
            ),
        )
        return self._parse_ciphertext(_field(response, "ciphertext"))

    def unwrap(self, key_id: str, wrapped: bytes, aad: bytes) -> bytes:
        ciphertext = self._ciphertext(key_id, wrapped)
        response = self._call(
            "decrypt",
            lambda: self._client.secrets.transit.decrypt_data(
                name=self.key_name,
                ciphertext=ciphertext,
                context=_b64(aad),
                mount_point=self.mount,
            ),
            key_id=key_id,
        )
        plaintext = _field(response, "plaintext")
        data_key = b""
        if isinstance(plaintext, str):
            with contextlib.suppress(binascii.Error, ValueError):
                data_key = base64.b64decode(plaintext, validate=True)
        if len(data_key) != KEY_SIZE:
            raise DecryptionError(
                f"Vault transit returned no {KEY_SIZE}-byte data key for {key_id}"
            )
        return data_key

    def rewrap(self, key_id: str, wrapped: bytes, aad: bytes) -> tuple[str, bytes]:
        """Re-encrypt under the key's latest version inside Vault (``<mount>/rewrap/<key>``);
        the data key never comes to this process."""
        ciphertext = self._ciphertext(key_id, wrapped)
        response = self._call(
            "rewrap",
            lambda: self._client.secrets.transit.rewrap_data(
                name=self.key_name,
                ciphertext=ciphertext,
                context=_b64(aad),
                mount_point=self.mount,
            ),
            key_id=key_id,
        )
        new_id, rewrapped = self._parse_ciphertext(_field(response, "ciphertext"))
        _log.debug("rewrapped a data key from %s to %s", key_id, new_id)
        return new_id, rewrapped

    def _key_id(self, version: int) -> str:
        return f"transit:{self.key_name}:v{version}"

    def _ciphertext(self, key_id: str, wrapped: bytes) -> str:
        """Transit's ciphertext for a stored (key id, wrapped key)."""
        match = _TRANSIT_KEY_ID.fullmatch(key_id)
        if match is None:
            raise DecryptionError(f"{key_id!r} is not a Vault transit key id")
        if match["name"] != self.key_name:
            raise DecryptionError(
                f"the record was wrapped by transit key {match['name']!r}, not by {self.key_name!r}"
            )
        return f"vault:v{match['version']}:{_b64(wrapped)}"

    def _parse_ciphertext(self, ciphertext: object) -> tuple[str, bytes]:
        """(key id, raw wrapped bytes) from transit's ciphertext string."""
        match = _TRANSIT_CIPHERTEXT.fullmatch(ciphertext) if isinstance(ciphertext, str) else None
        if match is None:
            raise KeystoreError(
                f"Vault transit key {self.key_name!r} returned a ciphertext in an unknown format"
            )
        try:
            wrapped = base64.b64decode(match["body"], validate=True)
        except (binascii.Error, ValueError):
            raise KeystoreError(
                f"Vault transit key {self.key_name!r} returned a ciphertext in an unknown format"
            ) from None
        return self._key_id(int(match["version"])), wrapped

    def _call(
        self, operation: _Operation, request: Callable[[], Any], *, key_id: str | None = None
    ) -> Any:
        """Run one transit request, turning hvac's and requests' errors into ours. Server
        messages are not copied: only the operation, key name, mount and key id are named."""
        where = f"{self.mount}/{'keys' if operation == 'read' else operation}/{self.key_name}"
        try:
            return request()
        except hvac.exceptions.InvalidRequest:
            if operation in ("decrypt", "rewrap"):
                raise DecryptionError(
                    f"Vault transit refused to {operation} the data key wrapped by {key_id} "
                    "(the AAD differs from the one it was sealed with, the record was changed, "
                    "or that key version is no longer allowed to decrypt)"
                ) from None
            raise KeystoreError(f"Vault rejected the request to {where}") from None
        except hvac.exceptions.Forbidden:
            raise KeystoreError(
                f"Vault denied {where}: the token is invalid or its policy does not allow it"
            ) from None
        except hvac.exceptions.InvalidPath:
            raise KeystoreError(
                f"Vault has no {where}: check the transit mount and key name"
            ) from None
        except hvac.exceptions.VaultError as exc:
            raise KeystoreError(f"Vault failed on {where} ({type(exc).__name__})") from None
        except requests.RequestException as exc:
            raise KeystoreError(
                f"Vault is unreachable for {where} ({type(exc).__name__})"
            ) from None

    def __repr__(self) -> str:
        return f"VaultTransitMasterKey(key_name={self.key_name!r}, mount={self.mount!r})"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _field(response: Any, name: str) -> object:
    """``response["data"][name]`` of an hvac response, or None."""
    data = response.get("data") if isinstance(response, dict) else None
    return data.get(name) if isinstance(data, dict) else None
