"""Callback URLs: http(s) only, refused when any address of the host is not a public one."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest

from cartero_common.callback_urls import (
    CallbackHostUnresolved,
    CallbackUrlRefused,
    callback_addresses,
    check_callback_url,
    refused_range,
)


def resolving_to(*addresses: str) -> Any:
    """A resolver answering `addresses` for any name, as `socket.getaddrinfo` answers (for the
    names a test cannot make a real DNS server give both a public and a private address for)."""

    def resolve(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses
        ]

    return resolve


def reason(url: str, **kwargs: Any) -> str:
    with pytest.raises(CallbackUrlRefused) as refused:
        check_callback_url(url, allow_private=False, **kwargs)
    return refused.value.reason


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.10.0.3", "loopback"),
        ("::1", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd12:3456::1", "unique-local"),
        ("fc00::1", "unique-local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("100.64.0.1", "non-global"),
        ("192.0.2.10", "private"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("2002:7f00:1::", "loopback"),
        ("64:ff9b::a9fe:a9fe", "link-local"),
    ],
)
def test_each_refused_range_is_named(address: str, kind: str) -> None:
    assert refused_range(ipaddress.ip_address(address)) == kind
    assert reason(f"http://[{address}]/hook" if ":" in address else f"http://{address}/hook").endswith(
        f"a {kind} address"
    )


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_a_public_address_is_accepted(address: str) -> None:
    host = f"[{address}]" if ":" in address else address
    check_callback_url(f"https://{host}:8443/hooks?x=1", allow_private=False)


def test_localhost_by_name_is_refused() -> None:
    assert "'localhost' resolves to" in reason("http://localhost:9000/hook")


def test_numeric_forms_of_loopback_are_refused() -> None:
    # Other spellings of 127.0.0.1 that the resolver reads as the same address.
    for url in ("http://2130706433/", "http://0x7f.1/", "http://127.1/", "http://LocalHost/"):
        assert "loopback" in reason(url), url


def test_any_private_address_among_a_hosts_addresses_refuses_it() -> None:
    assert "10.0.0.5, a private address" in reason(
        "https://hooks.example.com/in", resolve=resolving_to("93.184.215.14", "10.0.0.5")
    )
    check_callback_url(
        "https://hooks.example.com/in", allow_private=False, resolve=resolving_to("93.184.215.14", "2606:4700::1")
    )


def test_a_name_that_does_not_resolve_is_refused_as_unresolved() -> None:
    with pytest.raises(CallbackHostUnresolved):
        check_callback_url("https://no-such-host.invalid/hook", allow_private=False)
    with pytest.raises(CallbackHostUnresolved):
        check_callback_url("https://hooks.example.com/", allow_private=False, resolve=resolving_to())


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://93.184.215.14/x", "http:// or https://"),
        ("file:///etc/passwd", "http:// or https://"),
        ("gopher://93.184.215.14:70/", "http:// or https://"),
        ("93.184.215.14/hook", "http:// or https://"),
        ("https:///nohost", "no host"),
        ("https://user:pw@93.184.215.14/", "user name or password"),
        ("https://93.184.215.14:99999/", "cannot be read"),
        ("https://93.184.215.14/a b", "spaces or control characters"),
        ("https://93.184.215.14/\x00", "spaces or control characters"),
        ("https://93.184.215.14/#frag", "fragment"),
        ("https://93.184.215.14/" + "a" * 2000, "longer than"),
    ],
)
def test_what_is_not_an_http_url_is_refused(url: str, words: str) -> None:
    assert words in reason(url)
    # Allowing private addresses allows no other scheme or shape.
    with pytest.raises(CallbackUrlRefused):
        check_callback_url(url, allow_private=True)


def test_allow_private_lets_local_receivers_through() -> None:
    for url in ("http://127.0.0.1:9000/hook", "http://localhost/hook", "http://[::1]/", "http://10.0.0.1/"):
        check_callback_url(url, allow_private=True)


def test_the_refusal_is_a_value_error() -> None:
    assert issubclass(CallbackUrlRefused, ValueError)
    assert issubclass(CallbackHostUnresolved, CallbackUrlRefused)


def test_the_checked_addresses_are_returned() -> None:
    resolve = resolving_to("93.184.215.14", "2606:4700::1")
    assert callback_addresses("https://hooks.example.com/in", allow_private=False, resolve=resolve) == [
        ipaddress.ip_address("93.184.215.14"),
        ipaddress.ip_address("2606:4700::1"),
    ]
    with pytest.raises(CallbackUrlRefused, match="10.0.0.5, a private address"):
        callback_addresses("https://hooks.example.com/in", allow_private=False, resolve=resolving_to("10.0.0.5"))
    # Allowing private addresses still resolves, so the request goes to what was resolved here.
    assert callback_addresses("http://hooks.local/", allow_private=True, resolve=resolving_to("10.0.0.5")) == [
        ipaddress.ip_address("10.0.0.5")
    ]
    with pytest.raises(CallbackHostUnresolved):
        callback_addresses("http://hooks.local/", allow_private=True, resolve=resolving_to())
    with pytest.raises(CallbackUrlRefused, match="http:// or https://"):
        callback_addresses("ftp://hooks.local/", allow_private=True, resolve=resolving_to("10.0.0.5"))
