"""UDP port allocation: pairs, rtcp-mux, in-use ports skipped, quarantine, exhaustion."""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator

import pytest

from media.ports import PortAllocator, PortsExhaustedError, parse_port_range

HOST = "127.0.0.1"


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def free_range(count: int) -> tuple[int, int]:
    """`count` consecutive free UDP ports starting on an even one, below the Linux ephemeral
    range so that other tests binding port 0 do not land in it."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 32000, 2)
        if all(_bindable(p) for p in range(base, base + count)):
            return base, base + count - 1
    pytest.skip("no free loopback UDP port range found")


@pytest.fixture
def allocated() -> Iterator[list[socket.socket]]:
    """Sockets tests bind themselves, closed afterwards."""
    socks: list[socket.socket] = []
    yield socks
    for s in socks:
        s.close()


def test_parse_port_range() -> None:
    assert parse_port_range("40000-49999") == (40000, 49999)
    assert parse_port_range(" 10000 - 10001 ") == (10000, 10001)
    assert parse_port_range((5, 6)) == (5, 6)
    for bad in ("40000", "a-b", "5-4", "0-10", "1-70000"):
        with pytest.raises(ValueError):
            parse_port_range(bad)


def test_pair_on_even_port_with_rtcp_next() -> None:
    low, high = free_range(8)
    alloc = PortAllocator((low + 1, high), host=HOST)  # an odd start is rounded up
    ports = alloc.allocate(now=0.0)
    try:
        assert ports.rtp_port == low + 2
        assert ports.rtcp_port == low + 3
        assert ports.rtp_socket.getsockname() == (HOST, low + 2)
        assert ports.rtcp_socket is not None
        assert ports.rtcp_socket.getsockname() == (HOST, low + 3)
        assert not ports.rtp_socket.getblocking()
        assert alloc.in_use == 2
    finally:
        alloc.release(ports, 0.0)
    assert ports.rtp_socket.fileno() == -1  # released sockets are closed


def test_single_port_with_rtcp_mux_and_round_robin() -> None:
    low, high = free_range(4)
    alloc = PortAllocator((low, high), host=HOST, quarantine=0.0)
    a = alloc.allocate(0.0, rtcp_mux=True)
    b = alloc.allocate(0.0, rtcp_mux=True)
    assert (a.rtp_port, a.rtcp_port, a.rtcp_socket) == (low, None, None)
    assert b.rtp_port == low + 1  # mux needs no pair: odd ports are used too
    alloc.release(a, 1.0)
    c = alloc.allocate(2.0, rtcp_mux=True)
    assert c.rtp_port == low + 2  # round-robin: a released port is not reused at once
    for p in (b, c):
        alloc.release(p, 3.0)


def test_ports_in_use_elsewhere_are_skipped(allocated: list[socket.socket]) -> None:
    low, high = free_range(8)
    for port in (low, low + 3):  # block the first RTP port and the second RTCP port
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((HOST, port))
        allocated.append(s)
    alloc = PortAllocator((low, high), host=HOST)
    ports = alloc.allocate(0.0)
    assert (ports.rtp_port, ports.rtcp_port) == (low + 4, low + 5)
    assert alloc.in_use == 2  # the half-bound pair at low+2 was given back
    assert _bindable(low + 2)
    alloc.release(ports, 0.0)


def test_quarantine_and_exhaustion() -> None:
    low, high = free_range(2)
    alloc = PortAllocator((low, high), host=HOST, quarantine=10.0)
    ports = alloc.allocate(0.0)
    with pytest.raises(PortsExhaustedError, match=f"{low}-{high}.*2 ports in use"):
        alloc.allocate(1.0)
    alloc.release(ports, now=5.0)
    assert alloc.in_use == 0
    assert alloc.quarantined(6.0) == 2
    with pytest.raises(PortsExhaustedError, match="2 in quarantine"):
        alloc.allocate(14.9)  # late packets of the old call may still arrive
    again = alloc.allocate(15.0)
    assert again.rtp_port == low
    assert alloc.quarantined(15.0) == 0
    alloc.release(again, 16.0)


def test_purge_forgets_ended_quarantines_only() -> None:
    """An idle gateway purges what it no longer needs: ended quarantines go, running ones stay
    (a port still in quarantine is not handed out again)."""
    low, high = free_range(4)
    alloc = PortAllocator((low, high), host=HOST, quarantine=10.0)
    first, second = alloc.allocate(0.0), alloc.allocate(0.0)
    alloc.release(first, now=1.0)
    alloc.release(second, now=8.0)
    alloc.purge(12.0)  # the first pair's quarantine ended at 11, the second's ends at 18
    assert alloc.quarantined(12.0) == 2 and len(alloc._resting) == 2
    again = alloc.allocate(12.0)  # only the first pair is free
    assert again.rtp_port == first.rtp_port
    with pytest.raises(PortsExhaustedError):
        alloc.allocate(12.0)
    alloc.purge(20.0)
    assert alloc._resting == {} and alloc.in_use == 2
    alloc.release(again, 21.0)


def test_exhaustion_when_all_ports_busy_elsewhere(allocated: list[socket.socket]) -> None:
    low, high = free_range(2)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((HOST, high))
    allocated.append(s)
    alloc = PortAllocator((low, high), host=HOST)
    with pytest.raises(PortsExhaustedError, match="busy elsewhere"):
        alloc.allocate(0.0)
    assert _bindable(low)  # the RTP socket bound on the way was closed again


def test_release_without_closing_keeps_sockets_for_their_transports() -> None:
    low, high = free_range(2)
    alloc = PortAllocator((low, high), host=HOST)
    ports = alloc.allocate(0.0)
    alloc.release(ports, 0.0, close_sockets=False)
    assert ports.rtp_socket.fileno() != -1
    ports.close()


def test_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    low, high = free_range(4)
    alloc = PortAllocator((low, high), host="::1")
    try:
        ports = alloc.allocate(0.0)
    except PortsExhaustedError:
        pytest.skip("::1 not usable here")
    assert ports.rtp_socket.family == socket.AF_INET6
    assert ports.rtp_socket.getsockname()[:2] == ("::1", ports.rtp_port)
    alloc.release(ports, 0.0)
