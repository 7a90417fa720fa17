"""The address policy, host checks and the filtering resolver."""

from __future__ import annotations

import asyncio
import socket

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from laion_assets.pipeline.download.netsafety import (
    AddressPolicy,
    BlockedAddress,
    InvalidHost,
    SafeResolver,
    check_host,
    check_port,
)

REFUSED = [
    ("10.0.0.1", "private address 10.0.0.1"),
    ("172.16.5.4", "private address"),
    ("192.168.1.1", "private address"),
    ("127.0.0.1", "loopback address 127.0.0.1"),
    ("127.255.255.254", "loopback address"),
    ("169.254.169.254", "link-local address 169.254.169.254"),
    ("224.0.0.1", "multicast address"),
    ("240.0.0.1", "reserved address"),
    ("255.255.255.255", "reserved address"),
    ("0.0.0.0", "unspecified address"),
    ("100.64.0.1", "carrier-grade NAT address 100.64.0.1"),
    ("100.127.255.254", "carrier-grade NAT address"),
    ("192.0.2.10", "documentation address"),
    ("198.18.0.1", "benchmarking address"),
    ("::1", "loopback address ::1"),
    ("::", "unspecified address ::"),
    ("fe80::1", "link-local address fe80::1"),
    ("fe80::1%eth0", "link-local address fe80::1"),
    ("fc00::1", "private address fc00::1"),
    ("fd12:3456::1", "private address"),
    ("fec0::1", "site-local address fec0::1"),
    ("ff02::1", "multicast address ff02::1"),
    ("2001:db8::1", "documentation address"),
    ("2001::1", "reserved address"),  # Teredo
    ("::ffff:10.0.0.1", "embeds private address 10.0.0.1"),  # Python 3.13 prints it as given
    ("::ffff:127.0.0.1", "embeds loopback address 127.0.0.1"),
    ("::ffff:192.168.0.1", "IPv4-mapped address"),
    ("2002:0a00::", "6to4 address 2002:a00:: embeds private address 10.0.0.0"),
    ("2002:a9fe:a9fe::1", "6to4 address 2002:a9fe:a9fe::1 embeds link-local address 169.254."),
    ("64:ff9b::a9fe:a9fe", "NAT64 address 64:ff9b::a9fe:a9fe embeds link-local address"),
    ("64:ff9b:1::1", "local-use NAT64 address"),
    ("::10.0.0.1", "IPv4-compatible address"),
    ("4000::1", "reserved address"),  # outside 2000::/3, the global unicast space
]
ALLOWED = [
    "93.184.216.34",
    "8.8.8.8",
    "1.1.1.1",
    "2606:2800::1",
    "2a00:1450:4001:81c::200e",
    "::ffff:93.184.216.34",
    "2002:5db8:d822::1",  # 6to4 wrapping a global address
    "64:ff9b::5db8:d822",  # NAT64 wrapping a global address
]


@pytest.mark.parametrize(("address", "reason"), REFUSED)
def test_non_global_addresses_are_refused_with_a_reason(address, reason):
    assert reason in AddressPolicy().check(address)


@pytest.mark.parametrize("address", ALLOWED)
def test_global_addresses_are_allowed(address):
    assert AddressPolicy().check(address) is None


@pytest.mark.parametrize(
    ("allowed", "address", "expected"),
    [
        (("127.0.0.0/8",), "127.0.0.1", None),
        (("127.0.0.0/8",), "::1", "loopback address ::1"),
        (("127.0.0.0/8",), "::ffff:127.0.0.1", None),  # the embedded address is what counts
        (("::1/128",), "::1", None),
        (("::1/128",), "127.0.0.1", "loopback address 127.0.0.1"),
        (("10.1.0.0/16",), "10.1.2.3", None),
        (("10.1.0.0/16",), "10.2.0.1", "private address 10.2.0.1"),
        (("10.0.0.0/8", "fd00::/8"), "fd00::5", None),
        (("192.168.1.7",), "192.168.1.7", None),  # a bare address is a /32
    ],
)
def test_allowed_networks_override_the_policy(allowed, address, expected):
    assert AddressPolicy(allowed).check(address) == expected


def test_malformed_allowed_network_fails_early():
    with pytest.raises(ValueError):
        AddressPolicy(("10.0.0.0/33",))


@pytest.mark.parametrize("host", ["2130706433", "0x7f.1", "127.1", "0177.0.0.1", "127.0.0.1.",
                                  "::zz", "ex ample.com", "a..b", "-bad.example", ""])
def test_ambiguous_or_malformed_hosts_are_invalid(host):
    with pytest.raises(InvalidHost):
        check_host(host, AddressPolicy())


def test_check_host_judges_literals_and_leaves_names_to_the_resolver():
    policy = AddressPolicy()
    assert check_host("10.0.0.1", policy) == "private address 10.0.0.1"
    assert check_host("93.184.216.34", policy) is None
    assert check_host("images.example.com", policy) is None
    assert check_host("xn--bcher-kva.example.", policy) is None
    assert check_host("cdn_1.example", policy) is None


def test_bad_ports_are_refused():
    assert check_port(80) is None and check_port(8080) is None and check_port(None) is None
    assert "port 25" in check_port(25)


class _FixedResolver(AbstractResolver):
    """A resolver answering every name with fixed addresses (as a rebinding DNS would)."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses

    async def resolve(self, host, port=0, family=socket.AF_INET) -> list[ResolveResult]:
        return [
            ResolveResult(hostname=host, host=a, port=port, proto=0, flags=0,
                          family=socket.AF_INET6 if ":" in a else socket.AF_INET)
            for a in self.addresses
        ]

    async def close(self) -> None:
        pass


def _resolve(resolver: SafeResolver, host: str) -> list[str]:
    async def main() -> list[str]:
        return [r["host"] for r in await resolver.resolve(host, 80, socket.AF_UNSPEC)]

    return asyncio.run(main())


def test_resolver_drops_refused_addresses():
    inner = _FixedResolver("10.0.0.1", "93.184.216.34", "::1", "2606:2800::1")
    assert _resolve(SafeResolver(AddressPolicy(), inner), "mixed.example") == [
        "93.184.216.34", "2606:2800::1"
    ]


def test_resolver_raises_blocked_address_when_nothing_is_left():
    inner = _FixedResolver("169.254.169.254", "fd00::1")
    with pytest.raises(BlockedAddress) as caught:
        _resolve(SafeResolver(AddressPolicy(), inner), "metadata.example")
    assert isinstance(caught.value, OSError)
    assert "link-local address 169.254.169.254" in caught.value.reason
    assert "private address fd00::1" in caught.value.reason


def test_resolver_with_the_system_resolver():
    async def main(policy: AddressPolicy) -> list[str]:
        resolver = SafeResolver(policy, ThreadedResolver())
        return [r["host"] for r in await resolver.resolve("localhost", 80, socket.AF_INET)]

    with pytest.raises(BlockedAddress, match="loopback address 127.0.0.1"):
        asyncio.run(main(AddressPolicy()))
    assert asyncio.run(main(AddressPolicy(("127.0.0.0/8",)))) == ["127.0.0.1"]
