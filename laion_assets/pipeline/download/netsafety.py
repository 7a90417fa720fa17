"""Which network addresses a crawler may connect to, enforced where aiohttp resolves hosts.

URLs come from crawled pages, so a page can point the fetcher at `http://169.254.169.254/`,
at an intranet name, or at a host whose DNS answer changes between two lookups. The defence
is layered: `AddressPolicy` says which IP addresses are acceptable; `SafeResolver` drops every
other address from DNS answers (aiohttp connects only to what its resolver returns, for every
connection including each redirect hop, so a re-resolved name cannot slip through); and
`check_host` refuses IP literals and numeric hosts before any connection, because aiohttp
does not call a resolver for those.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass, field

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_V4_RANGES: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "unspecified"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "carrier-grade NAT"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "reserved"),
    ("192.0.2.0/24", "documentation"),
    ("192.88.99.0/24", "reserved"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
)
_V6_RANGES: tuple[tuple[str, str], ...] = (
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("::/96", "IPv4-compatible"),
    ("64:ff9b:1::/48", "local-use NAT64"),
    ("100::/64", "discard-only"),
    ("2001::/23", "reserved"),
    ("2001:db8::/32", "documentation"),
    ("3fff::/20", "documentation"),
    ("5f00::/16", "reserved"),
    ("fc00::/7", "private"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local"),
    ("ff00::/8", "multicast"),
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_HOSTNAME = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)(?:\.(?!-)[a-z0-9_-]{1,63}(?<!-))*\.?")

# The Fetch standard's "bad ports": services that must not be reached by URL fetches.
BAD_PORTS = frozenset({
    0, 1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95,
    101, 102, 103, 104, 109, 110, 111, 113, 115, 117, 119, 123, 135, 137, 139, 143, 161, 179,
    389, 427, 465, 512, 513, 514, 515, 526, 530, 531, 532, 540, 548, 554, 556, 563, 587, 601,
    636, 989, 990, 993, 995, 1719, 1720, 1723, 2049, 3659, 4045, 4190, 5060, 5061, 6000, 6566,
    6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080,
})


def _ranges(table: tuple[tuple[str, str], ...]) -> tuple[tuple[IPNetwork, str], ...]:
    return tuple((ipaddress.ip_network(net), kind) for net, kind in table)


_V4 = _ranges(_V4_RANGES)
_V6 = _ranges(_V6_RANGES)


def parse_ip(value: str | IPAddress) -> IPAddress:
    """An address without its IPv6 zone (`fe80::1%eth0`); ValueError if not an IP address."""
    if isinstance(value, str):
        value = value.split("%", 1)[0]
    return ipaddress.ip_address(value)


def _embedded_v4(addr: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    """The IPv4 address carried by an IPv4-mapped, 6to4 or NAT64 address, with its kind."""
    if addr.ipv4_mapped is not None:
        return "IPv4-mapped", addr.ipv4_mapped
    if addr.sixtofour is not None:
        return "6to4", addr.sixtofour
    if addr in _NAT64:
        return "NAT64", ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return None


def _kind(addr: IPAddress) -> str | None:
    """The name of the non-global range holding `addr`, or None for a global address."""
    for net, kind in _V4 if addr.version == 4 else _V6:
        if addr in net:
            return kind
    if addr.version == 4:
        return None if addr.is_global else "non-global"
    return None if addr in _GLOBAL_UNICAST else "reserved"


@dataclass(frozen=True)
class AddressPolicy:
    """Allows globally routable unicast addresses, plus any address in `allowed_networks`."""

    allowed_networks: tuple[str, ...] = ()
    _allowed: tuple[IPNetwork, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        nets = tuple(ipaddress.ip_network(n, strict=False) for n in self.allowed_networks)
        object.__setattr__(self, "_allowed", nets)

    def check(self, ip: str | IPAddress) -> str | None:
        """None when `ip` may be connected to, else why not (e.g. "loopback address ::1")."""
        addr = parse_ip(ip)
        if any(addr in net for net in self._allowed):
            return None
        embedded = _embedded_v4(addr) if addr.version == 6 else None
        if embedded is not None:
            label, inner = embedded
            reason = self.check(inner)
            return None if reason is None else f"{label} address {addr} embeds {reason}"
        kind = _kind(addr)
        return None if kind is None else f"{kind} address {addr}"


class BlockedAddress(OSError):
    """A host resolved only to addresses the policy refuses; `reason` says which and why."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(f"{host}: {reason}")
        self.host = host
        self.reason = reason


class InvalidHost(ValueError):
    """A host that is neither a plain DNS name nor a canonical IP address."""


def _numeric_host(host: str) -> bool:
    """Would aiohttp/the OS treat `host` as an address rather than a name (`127.1`, `0x7f.1`)?"""
    if ":" in host:
        return True
    parts = host.rstrip(".").split(".")
    return all(part.isdigit() or part[:2].lower() == "0x" for part in parts) and parts != [""]


def check_host(host: str, policy: AddressPolicy) -> str | None:
    """Refuse a URL host before connecting: the policy's reason for an IP literal, or None.

    Names are left to `SafeResolver`. Raises InvalidHost for numeric forms other than a
    canonical address (decimal, octal, hex, shortened IPv4), which the OS would still map onto
    some address, and for names with characters DNS cannot carry.
    """
    try:
        return policy.check(host)
    except ValueError:
        pass
    if _numeric_host(host):
        raise InvalidHost(f"non-canonical numeric host {host!r}")
    if not _HOSTNAME.fullmatch(host.lower()) or len(host) > 254:
        raise InvalidHost(f"invalid host name {host[:80]!r}")
    return None


def check_port(port: int | None) -> str | None:
    """None when `port` may be fetched from, else why not."""
    return f"port {port} is reserved for a non-web service" if port in BAD_PORTS else None


class SafeResolver(AbstractResolver):
    """Resolves with `inner` (aiohttp's default resolver) and keeps only allowed addresses."""

    def __init__(self, policy: AddressPolicy, inner: AbstractResolver | None = None) -> None:
        self.policy = policy
        self._inner = inner if inner is not None else DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """The allowed addresses of `host`; BlockedAddress when the policy refuses them all."""
        answers = await self._inner.resolve(host, port, family)
        kept, refused = [], []
        for answer in answers:
            reason = self.policy.check(answer["host"])
            if reason is None:
                kept.append(answer)
            else:
                refused.append(reason)
        if not kept:
            raise BlockedAddress(host, "; ".join(refused) or "no addresses")
        return kept

    async def close(self) -> None:
        await self._inner.close()
