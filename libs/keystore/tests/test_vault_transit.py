"""The keystore with a Vault transit master key, against a real OpenBao dev server."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from typing import Any

import hvac
import pytest
from trademesh_infra.vault import DevVault
from trademesh_keystore import (
    DecryptionError,
    Keystore,
    KeystoreError,
    MasterKey,
    SealedSecret,
    VaultTransitMasterKey,
    canonical_aad,
)

pytestmark = pytest.mark.integration

API_SECRET = "vault-LEAKCANARY-5e4d3c2b1a0f9e8d7c6b5a4938271605"
AAD = {"account_id": "acct-7", "exchange": "coinbase"}
OTHER_AAD = {"account_id": "acct-8", "exchange": "coinbase"}


@dataclasses.dataclass
class Transit:
    client: hvac.Client
    mount: str

    def create_key(self, *, derived: bool, name: str = "exchange-keys") -> VaultTransitMasterKey:
        self.client.secrets.transit.create_key(name, derived=derived, mount_point=self.mount)
        return VaultTransitMasterKey(self.client, name, mount=self.mount)

    def rotate(self, name: str = "exchange-keys") -> None:
        self.client.secrets.transit.rotate_key(name, mount_point=self.mount)


@pytest.fixture
def transit(dev_vault: DevVault) -> Iterator[Transit]:
    """A transit engine of this test alone, at a unique mount."""
    client = hvac.Client(url=dev_vault.url, token=dev_vault.root_token)
    mount = f"transit-{uuid.uuid4().hex[:10]}"
    client.sys.enable_secrets_engine("transit", path=mount)
    try:
        yield Transit(client, mount)
    finally:
        client.sys.disable_secrets_engine(path=mount)


@pytest.mark.parametrize("derived", [True, False], ids=["derived", "plain"])
def test_round_trip(transit: Transit, derived: bool) -> None:
    master = transit.create_key(derived=derived)
    assert isinstance(master, MasterKey)
    keystore = Keystore(master)
    sealed = keystore.seal(API_SECRET, aad=AAD)
    assert sealed.key_id == "transit:exchange-keys:v1"
    assert len(sealed.wrapped_key) == 12 + 32 + 16  # transit's nonce, data key and GCM tag
    assert keystore.open(sealed, aad=AAD).get_secret_value() == API_SECRET
    for stored in (
        SealedSecret.from_json(sealed.to_json()),
        SealedSecret.from_bytes(sealed.to_bytes()),
    ):
        assert keystore.open(stored, aad=AAD).get_secret_value() == API_SECRET
    assert not keystore.needs_rewrap(sealed)


@pytest.mark.parametrize("derived", [True, False], ids=["derived", "plain"])
def test_open_with_other_aad_fails(transit: Transit, derived: bool) -> None:
    keystore = Keystore(transit.create_key(derived=derived))
    sealed = keystore.seal(API_SECRET, aad=AAD)
    for other in (OTHER_AAD, {}, {**AAD, "extra": "x"}):
        with pytest.raises(DecryptionError):
            keystore.open(sealed, aad=other)


def test_a_derived_key_binds_the_wrap_itself_to_the_aad(transit: Transit) -> None:
    master = transit.create_key(derived=True)
    key_id, wrapped = master.wrap(b"\x07" * 32, canonical_aad(AAD))
    assert master.unwrap(key_id, wrapped, canonical_aad(AAD)) == b"\x07" * 32
    with pytest.raises(DecryptionError, match="refused to decrypt"):
        master.unwrap(key_id, wrapped, canonical_aad(OTHER_AAD))
    with pytest.raises(DecryptionError, match="refused to rewrap"):
        master.rewrap(key_id, wrapped, canonical_aad(OTHER_AAD))


def test_a_key_without_derivation_binds_through_the_record_only(transit: Transit) -> None:
    """As documented: Vault ignores the context, the record's own AAD still refuses to open."""
    master = transit.create_key(derived=False)
    key_id, wrapped = master.wrap(b"\x07" * 32, canonical_aad(AAD))
    assert master.unwrap(key_id, wrapped, canonical_aad(OTHER_AAD)) == b"\x07" * 32


@pytest.mark.parametrize("field", ["nonce", "ciphertext", "wrapped_key"])
def test_flipping_any_byte_is_detected(transit: Transit, flip: Any, field: str) -> None:
    keystore = Keystore(transit.create_key(derived=True))
    sealed = keystore.seal(API_SECRET, aad=AAD)
    data: bytes = getattr(sealed, field)
    for index in range(len(data)):
        tampered = dataclasses.replace(sealed, **{field: flip(data, index)})
        with pytest.raises(DecryptionError):
            keystore.open(tampered, aad=AAD)
    assert keystore.open(sealed, aad=AAD).get_secret_value() == API_SECRET


def test_a_changed_key_version_is_detected(transit: Transit) -> None:
    keystore = Keystore(transit.create_key(derived=False))
    sealed = keystore.seal(API_SECRET, aad=AAD)
    transit.rotate()
    for key_id in ("transit:exchange-keys:v2", "transit:exchange-keys:v3"):
        with pytest.raises(DecryptionError):
            keystore.open(dataclasses.replace(sealed, key_id=key_id), aad=AAD)


@pytest.mark.parametrize("derived", [True, False], ids=["derived", "plain"])
def test_rotation_rewraps_inside_vault(transit: Transit, derived: bool) -> None:
    keystore = Keystore(transit.create_key(derived=derived))
    sealed = keystore.seal(API_SECRET, aad=AAD)

    transit.rotate()
    assert keystore.needs_rewrap(sealed)
    assert keystore.open(sealed, aad=AAD).get_secret_value() == API_SECRET  # v1 still decrypts

    rewrapped = keystore.rewrap(sealed, aad=AAD)
    assert rewrapped.key_id == "transit:exchange-keys:v2"
    assert rewrapped.wrapped_key != sealed.wrapped_key
    assert (rewrapped.nonce, rewrapped.ciphertext) == (sealed.nonce, sealed.ciphertext)
    assert not keystore.needs_rewrap(rewrapped)
    assert keystore.open(rewrapped, aad=AAD).get_secret_value() == API_SECRET
    assert keystore.seal("new", aad=AAD).key_id == "transit:exchange-keys:v2"

    # Version 1 retired: the rewrapped record opens, the old one no longer does.
    transit.client.secrets.transit.update_key_configuration(
        "exchange-keys", min_decryption_version=2, mount_point=transit.mount
    )
    assert keystore.open(rewrapped, aad=AAD).get_secret_value() == API_SECRET
    with pytest.raises(DecryptionError, match="v1"):
        keystore.open(sealed, aad=AAD)


def test_a_record_of_another_transit_key_is_refused(transit: Transit) -> None:
    sealed = Keystore(transit.create_key(derived=True, name="a")).seal(API_SECRET, aad=AAD)
    other = Keystore(transit.create_key(derived=True, name="b"))
    with pytest.raises(DecryptionError, match="wrapped by transit key 'a'"):
        other.open(sealed, aad=AAD)
    with pytest.raises(DecryptionError, match="not a Vault transit key id"):
        other.open(dataclasses.replace(sealed, key_id="k1"), aad=AAD)


def test_a_least_privilege_token_works_and_missing_rights_are_not_decryption_errors(
    dev_vault: DevVault, transit: Transit
) -> None:
    root_keystore = Keystore(transit.create_key(derived=True))
    sealed = root_keystore.seal(API_SECRET, aad=AAD)
    m, k = transit.mount, "exchange-keys"
    transit.client.sys.create_or_update_policy(
        f"{m}-keystore",
        f'path "{m}/encrypt/{k}" {{ capabilities = ["update"] }}\n'
        f'path "{m}/decrypt/{k}" {{ capabilities = ["update"] }}\n'
        f'path "{m}/rewrap/{k}" {{ capabilities = ["update"] }}\n'
        f'path "{m}/keys/{k}" {{ capabilities = ["read"] }}\n'
        f'path "{m}/encrypt/missing" {{ capabilities = ["update"] }}\n',
    )
    transit.client.sys.create_or_update_policy(
        f"{m}-encrypt-only", f'path "{m}/encrypt/{k}" {{ capabilities = ["update"] }}\n'
    )

    def keystore_for(policy: str, key: str = k) -> Keystore:
        token = transit.client.auth.token.create(policies=[policy], ttl="5m")["auth"][
            "client_token"
        ]
        client = hvac.Client(url=dev_vault.url, token=token)
        return Keystore(VaultTransitMasterKey(client, key, mount=m))

    service = keystore_for(f"{m}-keystore")
    assert service.open(sealed, aad=AAD).get_secret_value() == API_SECRET
    assert service.open(service.seal("x", aad=AAD), aad=AAD).get_secret_value() == "x"
    assert not service.needs_rewrap(service.rewrap(sealed, aad=AAD))
    # Without "create" on the encrypt path, a missing key is an error, not silently created.
    with pytest.raises(KeystoreError) as missing:
        keystore_for(f"{m}-keystore", key="missing").seal(API_SECRET, aad=AAD)
    assert not isinstance(missing.value, DecryptionError)

    writer = keystore_for(f"{m}-encrypt-only")
    writer.seal(API_SECRET, aad=AAD)
    with pytest.raises(KeystoreError, match="denied") as denied:
        writer.open(sealed, aad=AAD)
    assert not isinstance(denied.value, DecryptionError)


def test_missing_key_and_unreachable_vault_are_keystore_errors(transit: Transit) -> None:
    with pytest.raises(KeystoreError, match="check the transit mount and key name"):
        VaultTransitMasterKey(transit.client, "nope", mount=transit.mount).current_key_id()
    unreachable = hvac.Client(url="http://127.0.0.1:9", timeout=2)
    with pytest.raises(KeystoreError, match="unreachable") as info:
        Keystore(VaultTransitMasterKey(unreachable, "k")).seal(API_SECRET, aad=AAD)
    assert not isinstance(info.value, DecryptionError)
    with pytest.raises(KeystoreError, match="not a valid transit key name"):
        VaultTransitMasterKey(transit.client, "bad:name")


def test_seal_open_rewrap_and_failures_leak_nothing(
    dev_vault: DevVault, transit: Transit, leak_check: Any, recording_master: Any
) -> None:
    master = recording_master(transit.create_key(derived=True))
    keystore = Keystore(master)
    sealed = keystore.seal(API_SECRET, aad=AAD)
    opened = keystore.open(sealed, aad=AAD)
    transit.rotate()
    rewrapped = keystore.rewrap(sealed, aad=AAD)
    assert keystore.open(rewrapped, aad=AAD).get_secret_value() == API_SECRET
    leak_check.show(keystore, master.inner, sealed, rewrapped, opened, sealed.to_json())

    failures = [
        lambda: keystore.open(sealed, aad=OTHER_AAD),
        lambda: keystore.rewrap(sealed, aad=OTHER_AAD),
        lambda: keystore.open(
            dataclasses.replace(sealed, wrapped_key=sealed.wrapped_key[::-1]), aad=AAD
        ),
        lambda: keystore.open(dataclasses.replace(sealed, nonce=bytes(12)), aad=AAD),
    ]
    for failure in failures:
        with pytest.raises(DecryptionError) as info:
            failure()
        leak_check.error(info.value)

    assert len(master.data_keys) >= 3
    haystack = leak_check.assert_absent([API_SECRET, dev_vault.root_token, *master.data_keys])
    # hvac's requests were logged (by urllib3) and checked, as were the keystore's records.
    assert f"/v1/{transit.mount}/encrypt/exchange-keys" in haystack
    assert (
        "rewrapped a data key from transit:exchange-keys:v1 to transit:exchange-keys:v2" in haystack
    )
