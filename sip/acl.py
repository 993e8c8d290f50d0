"""Source-address allow-lists for trunks that authenticate by IP address instead of digest."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# ::ffff:0:0/96 holds the IPv4-mapped addresses (RFC 4291 §2.5.5.2).
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def _to_ipv4(network: ipaddress.IPv6Network) -> ipaddress.IPv4Network | None:
    """The IPv4 network an IPv4-mapped IPv6 network stands for, if it is one."""
    if network.prefixlen < 96 or not network.subnet_of(_MAPPED):
        return None
    base = network.network_address.ipv4_mapped
    assert base is not None  # inside ::ffff:0:0/96
    return ipaddress.IPv4Network((base, network.prefixlen - 96))


class AddressAllowList:
    """CIDR networks and single addresses, IPv4 and IPv6.

    ``AddressAllowList(["203.0.113.0/24", "::1"]).allows("203.0.113.7")`` is True. An IPv4
    peer seen on a dual-stack socket as ``::ffff:203.0.113.7`` matches the IPv4 entries, and an
    entry written as ``::ffff:203.0.113.0/120`` matches plain IPv4 peers. Host bits in an entry
    are ignored (``203.0.113.7/24`` means ``203.0.113.0/24``). An empty list allows nothing.
    """

    __slots__ = ("_v4", "_v6", "entries")

    def __init__(self, entries: Iterable[str]) -> None:
        self.entries: tuple[str, ...] = tuple(entries)
        self._v4: list[ipaddress.IPv4Network] = []
        self._v6: list[ipaddress.IPv6Network] = []
        for entry in self.entries:
            text = entry.strip() if isinstance(entry, str) else entry
            try:
                if not isinstance(text, str) or not text:
                    raise ValueError
                network = ipaddress.ip_network(text, strict=False)
            except ValueError:
                # The configuration loader shows this message as it is: name the entry.
                raise ValueError(f"invalid address or network in allow-list: {entry!r}") from None
            if isinstance(network, ipaddress.IPv4Network):
                self._v4.append(network)
            else:
                self._v6.append(network)
                mapped = _to_ipv4(network)
                if mapped is not None:
                    self._v4.append(mapped)

    @property
    def networks(self) -> list[IPNetwork]:
        return [*self._v4, *self._v6]

    def allows(self, address: str | IPAddress) -> bool:
        """Whether ``address`` (a peer's source address) is in the list. Text that is not an
        address (with an optional IPv6 zone, ``fe80::1%eth0``) is simply not allowed."""
        if isinstance(address, str):
            try:
                address = ipaddress.ip_address(address.strip().strip("[]"))
            except ValueError:
                return False
        if isinstance(address, ipaddress.IPv6Address):
            if address.ipv4_mapped is not None:
                address = address.ipv4_mapped
            else:
                # Zones do not matter for matching (fe80::1%eth0 is in fe80::/10).
                plain = ipaddress.IPv6Address(address.packed)
                return any(plain in network for network in self._v6)
        return any(address in network for network in self._v4)

    def __contains__(self, address: object) -> bool:
        if not isinstance(address, str | ipaddress.IPv4Address | ipaddress.IPv6Address):
            return False
        return self.allows(address)

    def __len__(self) -> int:
        return len(self.entries)

    def __repr__(self) -> str:
        return f"AddressAllowList({list(self.entries)!r})"
