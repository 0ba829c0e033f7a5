"""Sending a webhook: resolve the host once, check every address, POST to the checked one.

httpx is given the checked IP in the URL and the host name in the Host header and, for https,
as the TLS server name (SNI and certificate check): it never resolves the name itself, so a
second DNS answer (rebinding) cannot lead it elsewhere. Redirects are not followed: a 3xx could
point anywhere, and is a failed delivery.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable, Mapping

import httpx

from trademesh_notify.webhook.ssrf import AddressKind, BlockedAddress, IPAddress, check_all


class WebhookError(Exception):
    """A delivery attempt failed; the message says how, without the URL (it may hold a token)."""


async def resolve(host: str, port: int, allowed: Iterable[AddressKind]) -> IPAddress:
    """`host` resolved once, every address checked (BlockedAddress if one is not allowed)."""
    return (await resolve_all(host, port, allowed))[0]


async def resolve_all(host: str, port: int, allowed: Iterable[AddressKind]) -> list[IPAddress]:
    """Every address `host` resolves to, once, each checked (BlockedAddress if one is not
    allowed); the first is the one to connect to."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise WebhookError(f"the host does not resolve ({exc.strerror})") from None
    addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    check_all(addresses, allowed)
    return addresses


def check_url(url: str) -> httpx.URL:
    """The URL parsed, if a webhook may have it: http(s), a host, no credentials in it."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ValueError(f"not a URL: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError("a webhook URL is http:// or https:// with a host")
    if parsed.userinfo:
        raise ValueError("a webhook URL carries no user name or password")
    return parsed


class WebhookSender:
    """POSTs signed bodies to webhook URLs, only ever to an address that passed the guard."""

    def __init__(self, allowed: Iterable[AddressKind], timeout_s: float) -> None:
        self.allowed = frozenset(allowed)
        # trust_env off: a proxy from the environment would resolve the host itself.
        self._client = httpx.AsyncClient(timeout=timeout_s, follow_redirects=False, trust_env=False)

    async def check_host(self, url: str) -> None:
        """Refuse (BlockedAddress, ValueError, WebhookError) a URL that cannot be sent to now."""
        parsed = check_url(url)
        await resolve(parsed.host, parsed.port or _default_port(parsed), self.allowed)

    async def post(self, url: str, headers: Mapping[str, str], body: bytes) -> int:
        """POST `body`; the status of a 2xx answer, else WebhookError (BlockedAddress when the
        host now resolves to an address not allowed)."""
        parsed = check_url(url)
        port = parsed.port or _default_port(parsed)
        address = await resolve(parsed.host, port, self.allowed)
        target = parsed.copy_with(host=str(address))  # httpx brackets an IPv6 host itself
        host_header = parsed.host if parsed.port is None else f"{parsed.host}:{parsed.port}"
        extensions = {"sni_hostname": parsed.host} if parsed.scheme == "https" else {}
        try:
            response = await self._client.post(
                target,
                content=body,
                headers={**headers, "Host": host_header, "Content-Type": "application/json"},
                extensions=extensions,
            )
        except httpx.TimeoutException:
            raise WebhookError("timed out") from None
        except httpx.HTTPError as exc:
            raise WebhookError(f"{type(exc).__name__}") from None
        if not 200 <= response.status_code < 300:
            raise WebhookError(f"answered HTTP {response.status_code}")
        return response.status_code

    async def aclose(self) -> None:
        await self._client.aclose()


def _default_port(url: httpx.URL) -> int:
    return 443 if url.scheme == "https" else 80


__all__ = [
    "BlockedAddress",
    "WebhookError",
    "WebhookSender",
    "check_url",
    "resolve",
    "resolve_all",
]
