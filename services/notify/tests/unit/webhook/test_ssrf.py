"""The webhook address guard: every non-public form refused, whatever its spelling."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from trademesh_notify.webhook.ssrf import AddressKind, BlockedAddress, check, check_all, classify

pytestmark = pytest.mark.unit


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", AddressKind.LOOPBACK),
        ("127.8.9.10", AddressKind.LOOPBACK),
        ("::1", AddressKind.LOOPBACK),
        ("10.1.2.3", AddressKind.PRIVATE),
        ("172.16.0.1", AddressKind.PRIVATE),
        ("192.168.1.1", AddressKind.PRIVATE),
        ("fd00::1", AddressKind.PRIVATE),
        ("169.254.169.254", AddressKind.LINK_LOCAL),
        ("fe80::1", AddressKind.LINK_LOCAL),
        ("fe80::1%1", AddressKind.LINK_LOCAL),
        ("::ffff:127.0.0.1", AddressKind.LOOPBACK),
        ("::ffff:10.0.0.1", AddressKind.PRIVATE),
        ("::ffff:169.254.169.254", AddressKind.LINK_LOCAL),
        ("::127.0.0.1", AddressKind.LOOPBACK),
        ("2002:7f00:1::", AddressKind.LOOPBACK),  # 6to4 of 127.0.0.1
        ("64:ff9b::a00:1", AddressKind.PRIVATE),  # NAT64 of 10.0.0.1
    ],
)
def test_non_public_addresses_are_classified_by_kind(address: str, kind: AddressKind) -> None:
    assert classify(_ip(address)) is kind


@pytest.mark.parametrize(
    "address", ["0.0.0.0", "::", "224.0.0.1", "ff02::1", "240.0.0.1", "100.64.0.1"]
)
def test_addresses_no_setting_allows_are_refused_even_with_every_kind_allowed(
    address: str,
) -> None:
    with pytest.raises(BlockedAddress):
        check(_ip(address), allowed=set(AddressKind))


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"])
def test_public_addresses_pass(address: str) -> None:
    assert classify(_ip(address)) is None
    check(_ip(address))


def test_loopback_is_refused_unless_allowed() -> None:
    with pytest.raises(BlockedAddress, match="loopback"):
        check(_ip("127.0.0.1"))
    check(_ip("127.0.0.1"), allowed={AddressKind.LOOPBACK})
    with pytest.raises(BlockedAddress, match="private"):
        check(_ip("10.0.0.1"), allowed={AddressKind.LOOPBACK})


def test_one_private_address_among_public_ones_refuses_the_host() -> None:
    with pytest.raises(BlockedAddress, match="private"):
        check_all([_ip("93.184.215.14"), _ip("10.0.0.7")])
    assert check_all([_ip("93.184.215.14")]) == _ip("93.184.215.14")


def test_a_host_with_no_address_is_refused() -> None:
    with pytest.raises(BlockedAddress, match="no address"):
        check_all([])


@pytest.mark.parametrize("host", ["2130706433", "0177.0.0.1", "0x7f.1", "127.1", "017700000001"])
def test_decimal_octal_and_short_host_forms_resolve_to_loopback_and_are_refused(
    host: str,
) -> None:
    # The guard runs on what the resolver makes of a host, never on its text: these spellings
    # of 127.0.0.1 come back from getaddrinfo as the address itself (no DNS is asked).
    infos = socket.getaddrinfo(host, 80, type=socket.SOCK_STREAM)
    addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    assert addresses and all(a == _ip("127.0.0.1") for a in addresses)
    with pytest.raises(BlockedAddress, match="loopback"):
        check_all(addresses)
