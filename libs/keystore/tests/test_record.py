"""The stored record: JSON and bytes round trips, and malformed records refused."""

from __future__ import annotations

import dataclasses
import json

import pytest
from trademesh_keystore import (
    FORMAT_VERSION,
    DecryptionError,
    InvalidRecordError,
    Keystore,
    LocalMasterKeys,
    SealedSecret,
    new_master_key,
)

pytestmark = pytest.mark.unit

SECRET = "binance-api-secret-0123456789abcdef"
AAD = {"account_id": "acct-1", "exchange": "binance"}
KEYSTORE = Keystore(LocalMasterKeys({"k1": new_master_key()}, current="k1"))


@pytest.fixture
def sealed() -> SealedSecret:
    return KEYSTORE.seal(SECRET, aad=AAD)


def test_json_round_trip(sealed: SealedSecret) -> None:
    text = sealed.to_json()
    assert " " not in text
    assert set(json.loads(text)) == {"version", "key_id", "wrapped_key", "nonce", "ciphertext"}
    assert json.loads(text)["version"] == FORMAT_VERSION == 1
    again = SealedSecret.from_json(text)
    assert again == sealed
    assert SealedSecret.from_json(text.encode()) == sealed
    assert SealedSecret.from_dict(sealed.to_dict()) == sealed
    assert KEYSTORE.open(again, aad=AAD).get_secret_value() == SECRET


def test_bytes_round_trip(sealed: SealedSecret) -> None:
    raw = sealed.to_bytes()
    assert raw.startswith(b"TMKS\x01\x02k1")
    # header 6 + key id 2 + length 2 + wrapped 60 + nonce 12 + ciphertext and tag
    assert len(raw) == 6 + 2 + 2 + 60 + 12 + len(SECRET) + 16
    for form in (raw, bytearray(raw), memoryview(raw)):
        again = SealedSecret.from_bytes(form)
        assert again == sealed
    assert KEYSTORE.open(SealedSecret.from_bytes(raw), aad=AAD).get_secret_value() == SECRET


def test_a_long_transit_key_id_survives_both_encodings(sealed: SealedSecret) -> None:
    record = dataclasses.replace(sealed, key_id="transit:" + "k" * 200 + ":v12")
    assert SealedSecret.from_bytes(record.to_bytes()) == record
    assert SealedSecret.from_json(record.to_json()) == record


def test_repr_shows_ids_and_sizes_only(sealed: SealedSecret) -> None:
    text = repr(sealed)
    assert text == (
        f"SealedSecret(version=1, key_id='k1', wrapped_key=<60 bytes>, nonce=<12 bytes>, "
        f"ciphertext=<{len(SECRET) + 16} bytes>)"
    )
    assert str(sealed) == text


def test_records_are_frozen(sealed: SealedSecret) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        sealed.key_id = "k2"  # type: ignore[misc]


@pytest.mark.parametrize(
    "change",
    [
        {"version": 2},
        {"version": True},
        {"version": "1"},
        {"key_id": ""},
        {"key_id": "has space"},
        {"key_id": "k" * 256},
        {"key_id": 7},
        {"nonce": "AAAA"},
        {"nonce": "not base64!"},
        {"ciphertext": "AAAA"},
        {"wrapped_key": ""},
        {"wrapped_key": 5},
    ],
)
def test_malformed_json_fields_are_refused(sealed: SealedSecret, change: dict[str, object]) -> None:
    data = {**sealed.to_dict(), **change}
    with pytest.raises(InvalidRecordError):
        SealedSecret.from_json(json.dumps(data))


@pytest.mark.parametrize(
    "text",
    ["", "not json", "[]", "null", '{"version": 1}', b"\xff\xfe"],
)
def test_malformed_json_is_refused(text: str | bytes) -> None:
    with pytest.raises(InvalidRecordError):
        SealedSecret.from_json(text)


def test_unknown_and_missing_json_fields_are_refused(sealed: SealedSecret) -> None:
    with pytest.raises(InvalidRecordError, match="unexpected \\['extra'\\]"):
        SealedSecret.from_dict({**sealed.to_dict(), "extra": 1})
    data = sealed.to_dict()
    del data["nonce"]
    with pytest.raises(InvalidRecordError, match="missing \\['nonce'\\]"):
        SealedSecret.from_dict(data)


def test_malformed_bytes_are_refused(sealed: SealedSecret) -> None:
    raw = sealed.to_bytes()
    # Every truncation short of a complete GCM tag is refused while parsing.
    for end in range(len(raw) - len(SECRET)):
        with pytest.raises(InvalidRecordError):
            SealedSecret.from_bytes(raw[:end])
    with pytest.raises(InvalidRecordError, match="TMKS"):
        SealedSecret.from_bytes(b"XXXX" + raw[4:])
    with pytest.raises(InvalidRecordError, match="version 2"):
        SealedSecret.from_bytes(raw[:4] + b"\x02" + raw[5:])


def test_a_truncated_ciphertext_that_still_parses_does_not_open(sealed: SealedSecret) -> None:
    raw = sealed.to_bytes()
    with pytest.raises(DecryptionError):
        KEYSTORE.open(SealedSecret.from_bytes(raw[:-1]), aad=AAD)


def test_invalid_records_are_decryption_errors_and_value_errors() -> None:
    with pytest.raises(DecryptionError):
        SealedSecret.from_json("{}")
    with pytest.raises(ValueError, match="nonce"):
        SealedSecret(key_id="k1", wrapped_key=b"w", nonce=b"short", ciphertext=b"\x00" * 16)
