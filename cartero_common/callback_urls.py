"""Whether a URL someone registered may be called back (webhooks): http(s) only, and never into
the network Cartero itself runs in (SSRF), unless that is allowed for a demo or a test.

The host is resolved here and refused if ANY of its addresses is in a refused range: a name with
one public and one private address would otherwise reach the private one on some attempts. The
caller checks again right before each request, since what a name resolves to can change.
Ref: https://cheatsheetseries.owasp.org/cheatsheets/Server_Side_Request_Forgery_Prevention_Cheat_Sheet.html
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

SCHEMES = {"http": 80, "https": 443}
MAX_LENGTH = 2000

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# `socket.getaddrinfo`'s shape: (host, port, …) to tuples whose last item starts with the address.
Resolver = Callable[..., Sequence[tuple[Any, ...]]]
# IPv6 addresses that carry an IPv4 one the packet ends up at (RFC 6052's well-known NAT64 prefix).
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class CallbackUrlRefused(ValueError):
    """The URL may not be called; `reason` says why, in words fit to show to whoever gave it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CallbackHostUnresolved(CallbackUrlRefused):
    """The host did not resolve: perhaps for good, perhaps for a moment (a caller about to send
    may rather try again later than give up)."""


def _embedded_ipv4(address: IpAddress) -> ipaddress.IPv4Address | None:
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def refused_range(address: IpAddress) -> str | None:
    """What kind of address it is, if it is one a callback may not reach; None for a public one."""
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        return refused_range(embedded)
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("unique-local", isinstance(address, ipaddress.IPv6Address) and address in ipaddress.ip_network("fc00::/7")),
        ("private", address.is_private),
        ("site-local", isinstance(address, ipaddress.IPv6Address) and address.is_site_local),
        # Shared (100.64.0.0/10), benchmarking, documentation…: not reachable on the Internet.
        ("non-global", not address.is_global),
    )
    return next((name for name, hit in checks if hit), None)


def _host_and_port(url: str) -> tuple[str, int]:
    if len(url) > MAX_LENGTH:
        raise CallbackUrlRefused(f"the URL is longer than {MAX_LENGTH} characters")
    if any(ord(char) < 0x21 or ord(char) == 0x7F for char in url):
        raise CallbackUrlRefused("the URL contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise CallbackUrlRefused(f"the URL cannot be read ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise CallbackUrlRefused("the URL must start with http:// or https://")
    if parts.username is not None or parts.password is not None:
        raise CallbackUrlRefused("the URL must not hold a user name or password")
    if not parts.hostname:
        raise CallbackUrlRefused("the URL has no host")
    if parts.fragment:
        raise CallbackUrlRefused("the URL must not have a fragment (#…)")
    return parts.hostname, port or SCHEMES[scheme]


def _addresses(host: str, port: int, resolve: Resolver) -> list[IpAddress]:
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise CallbackUrlRefused(f"the host {host!r} is not a valid name") from None
    try:
        found = resolve(ascii_host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise CallbackHostUnresolved(f"the host {host!r} does not resolve ({exc})") from None
    addresses: list[IpAddress] = []
    for *_, sockaddr in found:
        # An IPv6 scope (`fe80::1%eth0`) is not part of the address.
        addresses.append(ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0]))
    if not addresses:
        raise CallbackHostUnresolved(f"the host {host!r} does not resolve")
    return addresses


def check_callback_url(url: str, *, allow_private: bool, resolve: Resolver = socket.getaddrinfo) -> None:
    """Raise `CallbackUrlRefused` unless `url` is http(s) with a host and (unless `allow_private`)
    every address the host resolves to is public. `resolve` is `socket.getaddrinfo`'s shape."""
    host, port = _host_and_port(url)
    if allow_private:
        return
    _checked(host, port, resolve)


def callback_addresses(url: str, *, allow_private: bool, resolve: Resolver = socket.getaddrinfo) -> list[IpAddress]:
    """What `check_callback_url` checks, returning the addresses the host resolved to (every one
    public, unless `allow_private`). The caller connects to one of these and does not resolve the
    name again: a second lookup could answer another address (DNS rebinding)."""
    host, port = _host_and_port(url)
    if allow_private:
        return _addresses(host, port, resolve)
    return _checked(host, port, resolve)


def _checked(host: str, port: int, resolve: Resolver) -> list[IpAddress]:
    addresses = _addresses(host, port, resolve)
    for address in addresses:
        kind = refused_range(address)
        if kind is not None:
            raise CallbackUrlRefused(f"the host {host!r} resolves to {address}, a {kind} address")
    return addresses
