"""Source-address allow-lists for IP-authenticated trunks."""

from __future__ import annotations

import ipaddress

import pytest

from sip.acl import AddressAllowList

ALLOW = AddressAllowList(["203.0.113.0/24", "::1", "2001:db8:1::/48", "198.51.100.10"])


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("203.0.113.7", True),
        ("203.0.113.0", True),
        ("203.0.113.255", True),
        ("203.0.114.1", False),
        ("198.51.100.10", True),  # a single address is a /32
        ("198.51.100.11", False),
        ("::1", True),
        ("::2", False),
        ("2001:db8:1:ffff::1", True),
        ("2001:db8:2::1", False),
        ("127.0.0.1", False),
        # an IPv4 peer on a dual-stack socket (RFC 4291 §2.5.5.2)
        ("::ffff:203.0.113.7", True),
        ("::ffff:cb00:7107", True),  # the same address written in hex
        ("::ffff:203.0.114.1", False),
        ("[::1]", True),  # bracketed, as in a SIP URI or Via host
        (" 203.0.113.7 ", True),
        ("2001:db8:1::5%eth0", True),  # a zone does not change the match
        ("", False),
        ("not an address", False),
        ("203.0.113.0/24", False),  # a network is not a peer address
        ("999.1.1.1", False),
    ],
)
def test_allows(address: str, allowed: bool) -> None:
    assert ALLOW.allows(address) is allowed
    assert (address in ALLOW) is allowed


def test_accepts_address_objects() -> None:
    assert ALLOW.allows(ipaddress.IPv4Address("203.0.113.9"))
    assert ALLOW.allows(ipaddress.IPv6Address("::ffff:203.0.113.9"))
    assert not ALLOW.allows(ipaddress.IPv6Address("::ffff:10.0.0.1"))
    assert 42 not in ALLOW


def test_ipv4_mapped_entry_matches_plain_ipv4_peers() -> None:
    acl = AddressAllowList(["::ffff:192.0.2.0/120"])
    assert acl.allows("192.0.2.77")
    assert acl.allows("::ffff:192.0.2.77")
    assert not acl.allows("192.0.3.1")
    # a v6 network wider than the mapped block does not turn into an IPv4 network
    wide = AddressAllowList(["::/64"])
    assert wide.allows("::5")
    assert not wide.allows("192.0.2.1")


def test_host_bits_are_ignored_and_whitespace_stripped() -> None:
    acl = AddressAllowList([" 10.1.2.3/16 "])
    assert acl.allows("10.1.200.200")
    assert not acl.allows("10.2.0.1")
    assert [str(n) for n in acl.networks] == ["10.1.0.0/16"]


def test_empty_list_allows_nothing() -> None:
    acl = AddressAllowList([])
    assert not acl.allows("127.0.0.1")
    assert len(acl) == 0


def test_everything() -> None:
    acl = AddressAllowList(["0.0.0.0/0", "::/0"])
    assert acl.allows("8.8.8.8") and acl.allows("2001:4860::8888") and acl.allows("::ffff:1.2.3.4")


@pytest.mark.parametrize(
    "entry",
    ["300.1.1.1", "10.0.0.0/33", "::1/129", "", "   ", "example.com", "10.0.0.0/8/8", "1.2.3"],
)
def test_invalid_entry_names_the_entry(entry: str) -> None:
    with pytest.raises(ValueError) as info:
        AddressAllowList(["192.0.2.0/24", entry])
    assert str(info.value) == f"invalid address or network in allow-list: {entry!r}"


def test_repr_and_entries() -> None:
    acl = AddressAllowList(["192.0.2.1", "::1"])
    assert acl.entries == ("192.0.2.1", "::1")
    assert repr(acl) == "AddressAllowList(['192.0.2.1', '::1'])"
