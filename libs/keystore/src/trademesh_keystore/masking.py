"""Masking of secret values for "list" APIs and logs: enough to recognise a key, not to use it."""

from __future__ import annotations

from pydantic import SecretStr

#: Values shorter than this are fully masked; longer ones show 4 leading and 2 trailing chars.
MASK_MIN_LENGTH = 16
#: The whole mask of a short value: fixed width, so that the value's length is not disclosed.
SHORT_MASK = "********"


def mask(secret: str | SecretStr) -> str:
    """``"AKIA…yz"`` for a value of at least 16 characters, ``"********"`` for a shorter one.

    At least 10 characters stay hidden, so that an exchange API key listed this way can be
    told apart from another but not guessed. Short values (PINs, passwords) are fully masked
    and their length is not shown.
    """
    value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    if len(value) < MASK_MIN_LENGTH:
        return SHORT_MASK
    return f"{value[:4]}…{value[-2:]}"
