"""Secrets never leave through logs, output, reprs or exceptions (local master keys)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from pydantic import SecretStr
from trademesh_keystore import (
    DecryptionError,
    Keystore,
    LocalMasterKeys,
    SealedSecret,
    mask,
    new_master_key,
)
from trademesh_keystore.masking import SHORT_MASK

pytestmark = pytest.mark.unit

API_SECRET = "xK9-LEAKCANARY-7f3a9b2c4d5e6f708192a3b4c5d6e7f8"
AAD = {"account_id": "acct-42", "exchange": "kraken"}


def test_seal_open_rewrap_and_failures_leak_nothing(
    leak_check: Any, recording_master: Any, flip: Any
) -> None:
    k1, k2 = new_master_key(), new_master_key()
    master = recording_master(LocalMasterKeys({"k1": k1}, current="k1"))
    keystore = Keystore(master)

    sealed = keystore.seal(API_SECRET, aad=AAD)
    opened = keystore.open(sealed, aad=AAD)
    assert opened.get_secret_value() == API_SECRET
    rotated = Keystore(recording_master(LocalMasterKeys({"k1": k1, "k2": k2}, current="k2")))
    rewrapped = rotated.rewrap(sealed, aad=AAD)
    leak_check.show(keystore, rotated, master, sealed, rewrapped, opened, sealed.to_json())

    failures = [
        lambda: keystore.open(sealed, aad={**AAD, "exchange": "binance"}),
        lambda: keystore.open(
            dataclasses.replace(sealed, ciphertext=flip(sealed.ciphertext, 0)), aad=AAD
        ),
        lambda: keystore.open(rewrapped, aad=AAD),  # k2 is not in this keyring
        lambda: rotated.rewrap(sealed, aad={"account_id": "acct-43", "exchange": "kraken"}),
        lambda: SealedSecret.from_json(sealed.to_json().replace('"k1"', '"k 1"')),
        lambda: LocalMasterKeys({"k1": k1, "k2": k2}, current="k3"),
    ]
    for failure in failures:
        with pytest.raises(Exception) as info:  # noqa: PT011 - each raises its own kind
            failure()
        leak_check.error(info.value)
    assert all(isinstance(e, DecryptionError) for e in leak_check.errors[:5])

    data_keys = master.data_keys + rotated.master.data_keys
    assert len(data_keys) >= 2
    haystack = leak_check.assert_absent(
        [API_SECRET, k1.get_secret_value(), k2.get_secret_value(), *data_keys]
    )
    # The checks looked at real output: the keystore's debug records and the errors are there.
    assert "sealed a secret under master key k1" in haystack
    assert "rewrapped a record from master key k1 to k2" in haystack
    assert "failed authentication" in haystack
    assert "'k2' is not in the keyring" in haystack


def test_mask_shows_enough_to_recognise_a_key_only() -> None:
    assert mask("AKIAIOSFODNN7EXAMPLE") == "AKIA…LE"
    assert mask("0123456789abcdef") == "0123…ef"
    assert mask(API_SECRET) == "xK9-…f8"
    assert mask("0123456789abcde") == SHORT_MASK == "********"
    assert mask("") == SHORT_MASK
    assert mask("1234") == SHORT_MASK
    assert mask(SecretStr("AKIAIOSFODNN7EXAMPLE")) == "AKIA…LE"
