"""The keystore with a local master keyring: round trips, AAD binding, tampering, rotation."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Callable

import pytest
from pydantic import SecretStr
from trademesh_keystore import (
    DecryptionError,
    Keystore,
    KeystoreError,
    LocalMasterKeys,
    MasterKey,
    SealedSecret,
    canonical_aad,
    new_master_key,
)

pytestmark = pytest.mark.unit

API_SECRET = "kr4k3n-s3cr3t/9f8e7d6c5b4a39281706f5e4d3c2b1a0+=="
AAD = {"account_id": "0b7a6e1c-acct", "exchange": "kraken"}

K1 = new_master_key()
K2 = new_master_key()

Flip = Callable[[bytes, int], bytes]


def keystore(keys: dict[str, SecretStr], current: str) -> Keystore:
    return Keystore(LocalMasterKeys(keys, current=current))


@pytest.fixture
def ks() -> Keystore:
    return keystore({"k1": K1}, "k1")


@pytest.mark.parametrize("plaintext", [API_SECRET, SecretStr(API_SECRET), "", "clé-ключ-鍵-🔑"])
def test_round_trip(ks: Keystore, plaintext: str | SecretStr) -> None:
    sealed = ks.seal(plaintext, aad=AAD)
    opened = ks.open(sealed, aad=AAD)
    expected = plaintext.get_secret_value() if isinstance(plaintext, SecretStr) else plaintext
    assert isinstance(opened, SecretStr)
    assert opened.get_secret_value() == expected
    assert sealed.key_id == "k1"
    assert len(sealed.nonce) == 12
    assert len(sealed.ciphertext) == len(expected.encode()) + 16
    assert len(sealed.wrapped_key) == 60


def test_aad_order_does_not_matter(ks: Keystore) -> None:
    sealed = ks.seal(API_SECRET, aad=AAD)
    reordered = dict(reversed(list(AAD.items())))
    assert ks.open(sealed, aad=reordered).get_secret_value() == API_SECRET


@pytest.mark.parametrize(
    "other",
    [
        {"account_id": "0b7a6e1c-acct", "exchange": "binance"},
        {"account_id": "another-acct", "exchange": "kraken"},
        {"account_id": "0b7a6e1c-acct"},
        {**AAD, "purpose": "trading"},
        {"Account_id": "0b7a6e1c-acct", "exchange": "kraken"},
        {},
    ],
)
def test_open_with_other_aad_fails(ks: Keystore, other: dict[str, str]) -> None:
    sealed = ks.seal(API_SECRET, aad=AAD)
    with pytest.raises(DecryptionError):
        ks.open(sealed, aad=other)


def test_the_data_key_wrap_is_bound_to_the_aad_too(ks: Keystore) -> None:
    sealed = ks.seal(API_SECRET, aad=AAD)
    master = ks.master
    assert len(master.unwrap(sealed.key_id, sealed.wrapped_key, canonical_aad(AAD))) == 32
    with pytest.raises(DecryptionError, match="failed authentication"):
        master.unwrap(sealed.key_id, sealed.wrapped_key, canonical_aad({**AAD, "exchange": "x"}))


@pytest.mark.parametrize("field", ["nonce", "ciphertext", "wrapped_key"])
def test_flipping_any_byte_is_detected(ks: Keystore, flip: Flip, field: str) -> None:
    sealed = ks.seal(API_SECRET, aad=AAD)
    data: bytes = getattr(sealed, field)
    for index in range(len(data)):
        tampered = dataclasses.replace(sealed, **{field: flip(data, index)})
        with pytest.raises(DecryptionError):
            ks.open(tampered, aad=AAD)
    assert ks.open(sealed, aad=AAD).get_secret_value() == API_SECRET


def test_truncated_or_extended_parts_are_detected(ks: Keystore) -> None:
    sealed = ks.seal(API_SECRET, aad=AAD)
    for changed in (
        dataclasses.replace(sealed, ciphertext=sealed.ciphertext[:-1]),
        dataclasses.replace(sealed, ciphertext=sealed.ciphertext + b"\x00"),
        dataclasses.replace(sealed, wrapped_key=sealed.wrapped_key[:-1]),
        dataclasses.replace(sealed, wrapped_key=sealed.wrapped_key + b"\x00"),
    ):
        with pytest.raises(DecryptionError):
            ks.open(changed, aad=AAD)


def test_parts_of_two_records_cannot_be_mixed(ks: Keystore) -> None:
    """Same master key and context: a wrapped key pasted onto another record does not open it."""
    a = ks.seal(API_SECRET, aad=AAD)
    b = ks.seal("another secret", aad=AAD)
    for mixed in (
        dataclasses.replace(a, wrapped_key=b.wrapped_key),
        dataclasses.replace(a, nonce=b.nonce),
        dataclasses.replace(a, ciphertext=b.ciphertext),
    ):
        with pytest.raises(DecryptionError):
            ks.open(mixed, aad=AAD)


def test_every_seal_has_its_own_data_key_and_nonce(ks: Keystore) -> None:
    first = ks.seal(API_SECRET, aad=AAD)
    second = ks.seal(API_SECRET, aad=AAD)
    assert first.nonce != second.nonce
    assert first.ciphertext != second.ciphertext
    assert first.wrapped_key != second.wrapped_key
    context = canonical_aad(AAD)
    master = ks.master
    assert master.unwrap("k1", first.wrapped_key, context) != master.unwrap(
        "k1", second.wrapped_key, context
    )


def test_rotation_rewraps_without_touching_the_ciphertext() -> None:
    sealed = keystore({"k1": K1}, "k1").seal(API_SECRET, aad=AAD)

    rotated = keystore({"k1": K1, "k2": K2}, "k2")
    assert rotated.needs_rewrap(sealed)
    # The old key still opens what it wrapped until the record is rewrapped.
    assert rotated.open(sealed, aad=AAD).get_secret_value() == API_SECRET

    rewrapped = rotated.rewrap(sealed, aad=AAD)
    assert rewrapped.key_id == "k2"
    assert rewrapped.wrapped_key != sealed.wrapped_key
    assert rewrapped.ciphertext == sealed.ciphertext
    assert rewrapped.nonce == sealed.nonce
    assert rewrapped.version == sealed.version
    assert not rotated.needs_rewrap(rewrapped)
    assert rotated.open(rewrapped, aad=AAD).get_secret_value() == API_SECRET

    # k1 dropped: the rewrapped record still opens, the one not rewrapped does not.
    only_k2 = keystore({"k2": K2}, "k2")
    assert only_k2.open(rewrapped, aad=AAD).get_secret_value() == API_SECRET
    with pytest.raises(DecryptionError, match="'k1' is not in the keyring"):
        only_k2.open(sealed, aad=AAD)
    with pytest.raises(DecryptionError, match="'k1' is not in the keyring"):
        only_k2.rewrap(sealed, aad=AAD)


def test_rewrap_needs_the_right_aad(ks: Keystore) -> None:
    """A rewrap cannot move a record to another context (or launder a changed one)."""
    sealed = ks.seal(API_SECRET, aad=AAD)
    rotated = keystore({"k1": K1, "k2": K2}, "k2")
    with pytest.raises(DecryptionError):
        rotated.rewrap(sealed, aad={**AAD, "account_id": "another-acct"})


def test_rewrap_under_the_current_key_still_gives_a_fresh_wrap(ks: Keystore) -> None:
    sealed = ks.seal(API_SECRET, aad=AAD)
    again = ks.rewrap(sealed, aad=AAD)
    assert again.key_id == "k1" and again.wrapped_key != sealed.wrapped_key
    assert ks.open(again, aad=AAD).get_secret_value() == API_SECRET


def test_the_same_key_under_another_id_does_not_open_a_record() -> None:
    """The key id selects the key: a record claiming another id fails, it is not guessed."""
    sealed = keystore({"k1": K1}, "k1").seal(API_SECRET, aad=AAD)
    ring = keystore({"k1": K2, "k2": K1}, "k2")
    with pytest.raises(DecryptionError):
        ring.open(sealed, aad=AAD)


def test_local_master_keys_validate_their_configuration() -> None:
    short = SecretStr(base64.b64encode(b"\x01" * 16).decode())
    not_base64 = SecretStr("this is not base64!")
    cases: list[tuple[dict[str, SecretStr], str, str]] = [
        ({}, "k1", "empty"),
        ({"k1": K1}, "k2", "'k2' is not in the keyring"),
        ({"bad:id": K1}, "bad:id", "is invalid"),
        ({"": K1}, "", "is invalid"),
        ({"k1": short}, "k1", "32 bytes"),
        ({"k1": not_base64}, "k1", "not valid base64"),
    ]
    for keys, current, message in cases:
        with pytest.raises(KeystoreError, match=message) as info:
            LocalMasterKeys(keys, current=current)
        assert short.get_secret_value() not in str(info.value)
        assert K1.get_secret_value() not in str(info.value)
    with pytest.raises(KeystoreError, match="SecretStr"):
        LocalMasterKeys({"k1": K1.get_secret_value()}, current="k1")  # type: ignore[dict-item]


def test_master_keys_from_settings_text_are_accepted() -> None:
    """A key as read from an env or dotenv file: surrounding whitespace is ignored."""
    padded = SecretStr(f"  {K1.get_secret_value()}\n")
    sealed = keystore({"k1": padded}, "k1").seal(API_SECRET, aad=AAD)
    assert keystore({"k1": K1}, "k1").open(sealed, aad=AAD).get_secret_value() == API_SECRET


def test_new_master_key_is_32_random_bytes() -> None:
    keys = {new_master_key().get_secret_value() for _ in range(20)}
    assert len(keys) == 20
    assert all(len(base64.b64decode(k, validate=True)) == 32 for k in keys)
    assert "**" in repr(new_master_key())


def test_local_master_keys_satisfy_the_protocol_and_show_ids_only() -> None:
    master = LocalMasterKeys({"k2": K2, "k1": K1}, current="k2")
    assert isinstance(master, MasterKey)
    assert master.key_ids == ["k1", "k2"]
    assert master.current_key_id() == "k2"
    text = repr(Keystore(master))
    assert text == "Keystore(LocalMasterKeys(key_ids=['k1', 'k2'], current='k2'))"
    assert K1.get_secret_value() not in text and K2.get_secret_value() not in text


def test_canonical_aad_is_stable_and_typed() -> None:
    assert canonical_aad({"b": "2", "a": "1"}) == b'{"a":"1","b":"2"}'
    assert canonical_aad({"a": "1", "b": "2"}) == canonical_aad({"b": "2", "a": "1"})
    assert canonical_aad({}) == b"{}"
    assert canonical_aad({"ex": "kraken-é"}) == b'{"ex":"kraken-\\u00e9"}'
    with pytest.raises(TypeError, match="must be str"):
        canonical_aad({"account_id": 42})  # type: ignore[dict-item]


def test_seal_refuses_non_text(ks: Keystore) -> None:
    with pytest.raises(TypeError):
        ks.seal(b"bytes", aad=AAD)  # type: ignore[arg-type]


def test_a_non_utf8_plaintext_is_refused_without_showing_it() -> None:
    """A record written by another tool under the same keys, holding bytes that are not text."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    master = LocalMasterKeys({"k1": K1}, current="k1")
    context = canonical_aad(AAD)
    data_key = AESGCM.generate_key(bit_length=256)
    nonce = b"\x00" * 12
    ciphertext = AESGCM(data_key).encrypt(
        nonce, b"\xff\xfe", b"trademesh-keystore/v1\x00" + context
    )
    key_id, wrapped = master.wrap(data_key, context)
    sealed = SealedSecret(key_id=key_id, wrapped_key=wrapped, nonce=nonce, ciphertext=ciphertext)
    with pytest.raises(DecryptionError, match="not UTF-8") as info:
        Keystore(master).open(sealed, aad=AAD)
    assert "xff" not in str(info.value) and info.value.__suppress_context__
