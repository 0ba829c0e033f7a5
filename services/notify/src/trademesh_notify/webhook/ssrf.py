"""Which addresses a webhook may be sent to: pure, on addresses already resolved.

A webhook URL is the user's, so the service must not become their way into the platform's own
network (server-side request forgery). The sender resolves the host once, checks every address
here, and connects to a checked one (webhook/sender.py): a host that resolves to a public and a
private address is refused, and a second resolution (DNS rebinding) never happens. Host spellings
that hide an address (`2130706433`, `0177.0.0.1`, `[::ffff:127.0.0.1]`) are caught because the
check runs on what the resolver made of them, never on the text.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from enum import StrEnum

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class AddressKind(StrEnum):
    """Kinds of non-public address; an admin setting may allow some of them
    (`webhook_allowed_address_kinds`, loopback in the tests)."""

    LOOPBACK = "loopback"
    PRIVATE = "private"
    LINK_LOCAL = "link-local"


class BlockedAddress(ValueError):
    """The host resolved to an address channels (a webhook, an SMTP server, the Telegram API) may
    not reach; the message says which kind."""


# NAT64's well-known prefix embeds an IPv4 address in its last 32 bits (RFC 6052).
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form carries: mapped (::ffff:a.b.c.d), 6to4, NAT64, or the
    deprecated IPv4-compatible form (::a.b.c.d)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if int(address) >> 32 == 0 and int(address) > 1:  # ::a.b.c.d (not :: or ::1)
        return ipaddress.IPv4Address(int(address))
    return None


def classify(address: IPAddress) -> AddressKind | str | None:
    """None for a public unicast address; else an AddressKind an admin may allow, or a reason
    (str) that no setting allows: unspecified, multicast, reserved, or any other non-global."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id is not None:
            address = ipaddress.IPv6Address(str(address).split("%", 1)[0])
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return classify(embedded)
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return AddressKind.LOOPBACK
    if address.is_link_local:
        return AddressKind.LINK_LOCAL  # 169.254.169.254 (cloud metadata) included
    if address.is_multicast:
        return "multicast"
    if address.is_reserved:
        return "reserved"
    if address.is_private:
        return AddressKind.PRIVATE
    if not address.is_global:
        return "not globally routable"  # 100.64.0.0/10, documentation ranges, ...
    return None


def check(address: IPAddress, allowed: Iterable[AddressKind] = ()) -> None:
    """Raise BlockedAddress unless `address` is public or of a kind in `allowed`."""
    kind = classify(address)
    if kind is None or (isinstance(kind, AddressKind) and kind in frozenset(allowed)):
        return
    label = kind.value if isinstance(kind, AddressKind) else kind
    raise BlockedAddress(f"channels may not reach a {label} address ({address})")


def check_all(addresses: Iterable[IPAddress], allowed: Iterable[AddressKind] = ()) -> IPAddress:
    """The first of `addresses` once every one of them passed `check` (one bad address refuses
    the host: the resolver may hand out either on the next lookup)."""
    listed = list(addresses)
    if not listed:
        raise BlockedAddress("the host resolved to no address")
    allowed = frozenset(allowed)
    for address in listed:
        check(address, allowed)
    return listed[0]
