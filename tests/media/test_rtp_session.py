"""The SIP-leg RTP session: sans-IO core rules, then real loopback UDP between sessions."""

from __future__ import annotations

import asyncio
import itertools
import random
import socket
from collections.abc import AsyncIterator, Callable
from typing import cast

import pytest

from media.dtmf import DtmfDigit
from media.ports import PortAllocator
from media.rtcp import Bye, ReceiverReport, SenderReport, SourceDescription, parse_compound
from media.rtp import RtpPacket
from media.rtp_session import (
    CHANNEL_RTCP,
    CHANNEL_RTP,
    Direction,
    MuteKeepalive,
    RtpSession,
    RtpSessionConfig,
    RtpSessionCore,
)
from media.srtp import SrtpConfig, SrtpContext, generate_key

HOST = "127.0.0.1"
PCMU = 0
TE = 101
VOICE = b"\x55" * 160
SILENT = b"\xff" * 160

Sent = list[tuple[int, bytes, tuple[str, int]]]


# --- sans-IO core ----------------------------------------------------------------------------


def core(**overrides: object) -> tuple[RtpSessionCore, Sent]:
    sent: Sent = []
    config = RtpSessionConfig(payload_type=PCMU, clock_rate=8000, **overrides)  # type: ignore[arg-type]
    session = RtpSessionCore(
        config, lambda ch, data, addr: sent.append((ch, data, addr)), now=0.0, ssrc=0xA
    )
    session.set_remote("192.0.2.1", 4000)
    return session, sent


def rtp_of(sent: Sent) -> list[RtpPacket]:
    return [RtpPacket.parse(d) for ch, d, _ in sent if ch == CHANNEL_RTP]


def test_core_forward_sends_other_sources_as_they_are_and_respects_hold() -> None:
    """Translator mode (RFC 3550 §7.1): another talker's packet keeps its SSRC, sequence and
    timestamp; nothing goes out while the phone holds us (we answered recvonly)."""
    s, sent = core()
    talker = RtpPacket(111, 4242, 960_000, 0xBEEF, b"opus", marker=True)
    assert s.forward(talker, 0.0)
    (out,) = rtp_of(sent)
    assert (out.ssrc, out.sequence, out.timestamp, out.marker, out.payload) == (
        0xBEEF, 4242, 960_000, True, b"opus"
    )  # fmt: skip
    assert s.counters.forwarded == 1 and s.counters.packets_sent == 0
    s.set_direction(Direction.RECVONLY)
    assert not s.forward(talker, 0.02)
    assert len(sent) == 1


def test_core_forward_is_srtp_protected() -> None:
    keys = (generate_key(), generate_key())
    s, sent = core(srtp=SrtpConfig("AES_CM_128_HMAC_SHA1_80", keys[0], keys[1]))
    # Two talkers on one outbound SRTP session (libsrtp's any-outbound policy).
    for ssrc in (0xBEEF, 0xCAFE):
        assert s.forward(RtpPacket(111, 1, 0, ssrc, b"opus"), 0.0)
    peer = SrtpContext(SrtpConfig("AES_CM_128_HMAC_SHA1_80", keys[1], keys[0]))
    clear = [RtpPacket.parse(peer.unprotect(data)) for _, data, _ in sent]
    assert [(p.ssrc, p.payload) for p in clear] == [(0xBEEF, b"opus"), (0xCAFE, b"opus")]


def test_core_sequence_timestamp_and_talk_spurt_markers() -> None:
    s, sent = core()
    s.send_frame(VOICE, 160, 0.00)
    s.send_frame(VOICE, 160, 0.02)
    s.send_frame(SILENT, 160, 0.04, silence=True)
    s.send_frame(VOICE, 160, 0.06)
    s.set_direction("recvonly")  # the peer put us on hold: no RTP at all (RFC 3264 §5.1)
    s.send_frame(VOICE, 160, 0.08)
    s.set_direction(Direction.SENDRECV)
    s.send_frame(VOICE, 160, 0.10)
    pkts = rtp_of(sent)
    assert [p.marker for p in pkts] == [True, False, False, True, True]
    seqs = [p.sequence for p in pkts]
    assert [(b - a) & 0xFFFF for a, b in itertools.pairwise(seqs)] == [1, 1, 1, 1]
    ts = [p.timestamp for p in pkts]
    # The held tick still advanced the media clock.
    assert [(b - a) & 0xFFFFFFFF for a, b in itertools.pairwise(ts)] == [160, 160, 160, 320]
    assert {p.ssrc for p in pkts} == {0xA}
    assert {addr for _, _, addr in sent} == {("192.0.2.1", 4000)}


def test_core_silence_suppression_sends_cn_keepalive() -> None:
    s, sent = core(silence_suppression=True, cn_interval=1.0)
    for i in range(60):
        s.send_frame(SILENT, 160, i * 0.02, silence=True)
    pkts = rtp_of(sent)
    assert [(p.payload_type, p.payload) for p in pkts] == [(13, b"\x7f")] * 2  # t=0 and t=1.0


def test_core_mute_without_silence_payload_falls_back_to_cn() -> None:
    s, sent = core(mute_keepalive=MuteKeepalive.SILENCE, silence_payload=None)
    s.set_muted(True)
    s.send_frame(VOICE, 160, 0.0)
    assert [p.payload_type for p in rtp_of(sent)] == [13]


def test_core_no_destination_no_packets_and_dtmf_needs_pt() -> None:
    sent: Sent = []
    s = RtpSessionCore(
        RtpSessionConfig(PCMU, 8000), lambda c, d, a: sent.append((c, d, a)), now=0.0
    )
    s.send_frame(VOICE, 160, 0.0)
    s.tick(100.0)
    assert sent == []
    with pytest.raises(ValueError, match="telephone-event"):
        s.send_dtmf("1")


def test_core_rtcp_interval_and_report_kind() -> None:
    s, sent = core()
    s.tick(1.0)  # the first interval is at least 2.5 s / (e - 1.5) * 0.5 ~ 1.03 s
    assert sent == []
    s.tick(10.0)
    (ch, data, addr) = sent[-1]
    assert (ch, addr) == (CHANNEL_RTCP, ("192.0.2.1", 4001))  # RTCP on port + 1
    rr, sdes = parse_compound(data)
    assert isinstance(rr, ReceiverReport) and rr.reports == []  # nothing sent, nothing heard
    assert isinstance(sdes, SourceDescription) and sdes.chunks[0].cname == s.cname
    s.send_frame(VOICE, 160, 10.5)
    s.tick(30.0)
    sr = parse_compound(sent[-1][1])[0]
    assert isinstance(sr, SenderReport)
    assert (sr.packet_count, sr.octet_count) == (1, 160)


def test_core_close_sends_bye_once() -> None:
    s, sent = core()
    s.close(1.0, reason="hangup")
    s.close(2.0)
    s.send_frame(VOICE, 160, 3.0)
    assert len(sent) == 1
    packets = parse_compound(sent[0][1])
    assert packets[-1] == Bye([0xA], "hangup")


def test_core_relatch_requires_consecutive_consistent_packets() -> None:
    s, sent = core(latch_packets=3)
    got: list[int] = []
    s.on_packet = lambda p, now: got.append(p.sequence)
    sdp = ("192.0.2.1", 4000)
    nat = ("198.51.100.7", 30000)
    other = ("203.0.113.9", 5000)

    def pkt(seq: int, ssrc: int = 1) -> bytes:
        return RtpPacket(PCMU, seq, seq * 160, ssrc, VOICE).serialize()

    s.datagram_received(CHANNEL_RTP, pkt(1), sdp, 0.0)
    assert s.latched_rtp == sdp  # packets from the negotiated address latch at once
    for i, src in enumerate([nat, nat, sdp, nat, nat]):  # interrupted: no re-latch
        s.datagram_received(CHANNEL_RTP, pkt(2 + i), src, 0.02 * i)
    assert s.latched_rtp == sdp
    assert s.counters.foreign_dropped == 4
    s.datagram_received(CHANNEL_RTP, pkt(7, ssrc=1), other, 0.2)
    s.datagram_received(CHANNEL_RTP, pkt(8, ssrc=2), other, 0.22)  # inconsistent SSRC
    s.datagram_received(CHANNEL_RTP, pkt(9, ssrc=2), other, 0.24)
    assert s.latched_rtp == sdp
    s.datagram_received(CHANNEL_RTP, pkt(10, ssrc=2), other, 0.26)
    assert s.latched_rtp == other
    assert s.counters.relatches == 1
    assert got == [1, 4, 10]  # foreign packets never reached the consumer
    s.send_frame(VOICE, 160, 0.3)
    assert sent[-1][2] == other


def test_core_audio_fields_path_and_what_still_takes_the_packet_path() -> None:
    """With `on_audio` set, the latched peer's plain packets on the current stream arrive as
    fields (a jitter buffer's `put_valid` arguments); the first packet of a stream, a packet
    with an extension, a telephone-event, a foreign address and duplicates do not."""
    s, _ = core(telephone_event_pt=TE)
    packets: list[tuple[int, int, bool]] = []
    fields: list[tuple[object, ...]] = []
    s.on_packet = lambda p, now: packets.append((p.sequence, p.payload_type, p.marker))
    s.on_audio = lambda *args: fields.append(args)
    sdp = ("192.0.2.1", 4000)

    def pkt(seq: int, pt: int = PCMU, ssrc: int = 7, marker: bool = False, **kw: object) -> bytes:
        return RtpPacket(pt, seq, seq * 160, ssrc, VOICE, marker, **kw).serialize()  # type: ignore[arg-type]

    s.datagram_received(CHANNEL_RTP, pkt(1, marker=True), sdp, 0.0)  # latches, new stream
    s.datagram_received(CHANNEL_RTP, pkt(2), sdp, 0.02)
    s.datagram_received(CHANNEL_RTP, pkt(3, marker=True), sdp, 0.04)
    s.datagram_received(CHANNEL_RTP, pkt(3), sdp, 0.05)  # duplicate: dropped, counted
    s.datagram_received(CHANNEL_RTP, pkt(4, pt=13), sdp, 0.06)  # comfort noise
    s.datagram_received(CHANNEL_RTP, pkt(5, extensions={1: b"\x10"}), sdp, 0.08)
    s.datagram_received(CHANNEL_RTP, pkt(6, pt=TE)[:12] + bytes([1, 0x0A, 0, 160]), sdp, 0.1)
    s.datagram_received(CHANNEL_RTP, pkt(7), ("203.0.113.9", 5000), 0.12)  # foreign
    s.datagram_received(CHANNEL_RTP, pkt(8, ssrc=9), sdp, 0.14)  # a new stream
    s.datagram_received(CHANNEL_RTP, pkt(9, ssrc=9), sdp, 0.16)
    assert packets == [(1, PCMU, True), (5, PCMU, False), (8, PCMU, False)]
    assert fields == [
        (2, 320, VOICE, False, None, 0.02, None, False),
        (3, 480, VOICE, True, None, 0.04, None, False),
        (4, 640, VOICE, False, None, 0.06, None, True),
        (9, 1440, VOICE, False, None, 0.16, None, False),
    ]
    counters = s.counters
    assert (
        counters.duplicates == 1 and counters.foreign_dropped == 1 and counters.dtmf_received == 1
    )
    assert counters.packets_received == 7 and counters.octets_received == 7 * 160
    assert counters.ssrc_changes == 1 and s.remote_ssrc == 9


# --- loopback UDP ----------------------------------------------------------------------------


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


@pytest.fixture
def allocator() -> PortAllocator:
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 32000, 2)
        if all(_bindable(p) for p in range(base, base + 16)):
            return PortAllocator((base, base + 15), host=HOST, quarantine=10.0)
    pytest.skip("no free loopback port range")


async def until(predicate: Callable[[], bool], within: float = 2.0) -> None:
    """Poll a condition on datagrams that arrive through the event loop."""
    for _ in range(int(within / 0.002)):
        if predicate():
            return
        await asyncio.sleep(0.002)
    raise AssertionError("condition not reached in time")


class Peer(asyncio.DatagramProtocol):
    """A raw UDP socket standing in for a phone behind NAT, an attacker, a sniffer."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, tuple[str, int]]] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.append((data, addr))

    @property
    def address(self) -> tuple[str, int]:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return host, port

    def send(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(data, addr)

    def rtp(self) -> list[RtpPacket]:
        return [RtpPacket.parse(d) for d, _ in self.received]


@pytest.fixture
async def peers() -> AsyncIterator[Callable[[str], asyncio.Future[Peer]]]:
    made: list[Peer] = []
    loop = asyncio.get_running_loop()

    async def make(host: str = HOST) -> Peer:
        _, proto = await loop.create_datagram_endpoint(Peer, local_addr=(host, 0))
        made.append(proto)
        return proto

    yield make  # type: ignore[misc]
    for p in made:
        if p.transport is not None:
            p.transport.close()


class Sink:
    def __init__(self, session: RtpSession) -> None:
        self.packets: list[RtpPacket] = []
        self.streams: list[int] = []
        self.digits: list[DtmfDigit] = []
        self.byes: list[str | None] = []
        session.on_packet = lambda p, now: self.packets.append(p)
        session.on_new_stream = self.streams.append
        session.on_dtmf = self.digits.append
        session.on_bye = self.byes.append


async def open_pair(
    allocator: PortAllocator, **overrides: object
) -> tuple[RtpSession, RtpSession, Sink, Sink]:
    keys = overrides.pop("srtp_keys", None)
    configs = []
    for i in range(2):
        config = RtpSessionConfig(PCMU, 8000, silence_payload=SILENT, **overrides)  # type: ignore[arg-type]
        if isinstance(keys, tuple):
            config.srtp = SrtpConfig("AES_CM_128_HMAC_SHA1_80", keys[i], keys[1 - i])
        configs.append(config)
    a = await RtpSession.open(allocator, configs[0])
    b = await RtpSession.open(allocator, configs[1])
    a.set_remote(HOST, b.local_rtp_port, b.local_rtcp_port)
    b.set_remote(HOST, a.local_rtp_port, a.local_rtcp_port)
    return a, b, Sink(a), Sink(b)


def force_rtcp(*sessions: RtpSession) -> None:
    for s in sessions:
        s.rtcp_timer.next_time = 0.0
        s.tick(s.time())


async def test_two_sessions_exchange_packets(allocator: PortAllocator) -> None:
    a, b, sink_a, sink_b = await open_pair(allocator)
    for _ in range(5):
        a.send_frame(VOICE, 160, a.time())
        b.send_frame(b"\x11" * 160, 160, b.time())
    await until(lambda: len(sink_b.packets) == 5 and len(sink_a.packets) == 5)
    pkts = sink_b.packets
    assert [p.payload for p in pkts] == [VOICE] * 5
    assert [p.marker for p in pkts] == [True, False, False, False, False]
    assert [(p.sequence - pkts[0].sequence) & 0xFFFF for p in pkts] == [0, 1, 2, 3, 4]
    assert [(p.timestamp - pkts[0].timestamp) & 0xFFFFFFFF for p in pkts] == [
        0,
        160,
        320,
        480,
        640,
    ]
    assert sink_b.streams == [a.ssrc]
    assert b.latched_rtp == (HOST, a.local_rtp_port)
    assert b.receiver_stats is not None and b.receiver_stats.cumulative_lost == 0
    assert b.counters.packets_received == 5
    assert a.local_rtcp_port == a.local_rtp_port + 1
    # RTCP both ways gives an RTT (LSR/DLSR of our SR echoed in their report).
    force_rtcp(a)
    await until(lambda: b.counters.rtcp_received == 1)
    force_rtcp(b)
    await until(lambda: a.rtt is not None)
    assert a.rtt is not None and 0.0 <= a.rtt < 0.5
    assert a.remote_report is not None and a.remote_report.highest_sequence & 0xFFFF == (
        pkts[-1].sequence
    )
    a.close(a.time(), reason="done")
    await until(lambda: sink_b.byes == ["done"])
    b.close(b.time())
    assert allocator.in_use == 0
    assert allocator.quarantined(asyncio.get_running_loop().time()) == 4


async def test_latching_to_the_real_source_address(
    allocator: PortAllocator, peers: Callable[[str], asyncio.Future[Peer]]
) -> None:
    config = RtpSessionConfig(PCMU, 8000, latch_packets=3)
    a = await RtpSession.open(allocator, config)
    sink = Sink(a)
    sdp_addr = await peers(HOST)  # what the SDP says
    nat = await peers("127.0.0.2")  # where the phone's packets really come from
    intruder = await peers(HOST)
    a.set_remote(*sdp_addr.address)
    dest = (HOST, a.local_rtp_port)

    def phone(seq: int, ssrc: int = 0x77) -> bytes:
        return RtpPacket(PCMU, seq, seq * 160, ssrc, VOICE).serialize()

    a.send_frame(VOICE, 160, a.time())
    await until(lambda: len(sdp_addr.received) == 1)  # before latching: the SDP address
    nat.send(phone(1), dest)
    await until(lambda: len(sink.packets) == 1)  # not latched yet, but delivered
    a.send_frame(VOICE, 160, a.time())
    await until(lambda: len(sdp_addr.received) == 2)
    nat.send(phone(2), dest)
    nat.send(phone(3), dest)
    await until(lambda: a.latched_rtp == nat.address)
    a.send_frame(VOICE, 160, a.time())
    await until(lambda: len(nat.received) == 1)  # symmetric RTP: back where they came from
    assert len(sdp_addr.received) == 2
    # Two stray packets from elsewhere are dropped and change nothing.
    intruder.send(phone(100, ssrc=0x99), dest)
    intruder.send(phone(101, ssrc=0x99), dest)
    await until(lambda: a.counters.foreign_dropped == 2)
    assert a.latched_rtp == nat.address
    assert len(sink.packets) == 3
    # Three consecutive ones with one SSRC: the media really moved (re-latch, new stream).
    intruder.send(phone(102, ssrc=0x99), dest)
    await until(lambda: a.latched_rtp == intruder.address)
    assert a.counters.relatches == 1
    assert sink.streams == [0x77, 0x99]
    a.close(a.time())


async def test_hold_sends_rtcp_only(allocator: PortAllocator) -> None:
    a, b, _, sink_b = await open_pair(allocator)
    a.send_frame(VOICE, 160, a.time())
    await until(lambda: len(sink_b.packets) == 1)
    a.set_direction(Direction.RECVONLY)  # we answered recvonly: the peer holds us
    for _ in range(5):
        a.send_frame(VOICE, 160, a.time())
    force_rtcp(a)
    await until(lambda: b.counters.rtcp_received == 1)
    await asyncio.sleep(0.05)
    assert len(sink_b.packets) == 1  # no RTP during hold
    a.set_direction(Direction.SENDRECV)
    a.send_frame(VOICE, 160, a.time())
    await until(lambda: len(sink_b.packets) == 2)
    resumed = sink_b.packets[1]
    assert resumed.marker  # a new talk spurt after hold
    assert (resumed.timestamp - sink_b.packets[0].timestamp) & 0xFFFFFFFF == 6 * 160
    a.close(a.time())
    b.close(b.time())


async def test_inactive_direction_drops_received_rtp(allocator: PortAllocator) -> None:
    a, b, sink_a, _ = await open_pair(allocator)
    a.set_direction("inactive")
    b.send_frame(VOICE, 160, b.time())
    await until(lambda: a.counters.not_receiving == 1)
    assert sink_a.packets == []
    a.close(a.time())
    b.close(b.time())


async def test_mute_keeps_sending_silence_or_cn(allocator: PortAllocator) -> None:
    a, b, _, sink_b = await open_pair(allocator)
    a.set_muted(True)
    for _ in range(3):
        a.send_frame(VOICE, 160, a.time())
    await until(lambda: len(sink_b.packets) == 3)
    assert [p.payload for p in sink_b.packets] == [SILENT] * 3  # the NAT binding stays open
    a.set_muted(False)
    a.send_frame(VOICE, 160, a.time())
    await until(lambda: len(sink_b.packets) == 4)
    assert sink_b.packets[3].payload == VOICE and sink_b.packets[3].marker
    a.close(a.time())
    b.close(b.time())

    c, d, _, sink_d = await open_pair(allocator, mute_keepalive=MuteKeepalive.CN, cn_interval=1.0)
    c.set_muted(True)
    now = asyncio.get_running_loop().time()
    for i in range(75):  # 1.5 s of ticks
        c.send_frame(VOICE, 160, now=now + 0.02 * i)
    await until(lambda: len(sink_d.packets) == 2)
    await asyncio.sleep(0.03)
    assert [(p.payload_type, p.payload) for p in sink_d.packets] == [(13, b"\x7f")] * 2
    c.close(c.time())
    d.close(d.time())


async def test_ssrc_change_is_a_new_stream(
    allocator: PortAllocator, peers: Callable[[str], asyncio.Future[Peer]]
) -> None:
    a = await RtpSession.open(allocator, RtpSessionConfig(PCMU, 8000))
    sink = Sink(a)
    phone = await peers(HOST)
    a.set_remote(*phone.address)
    dest = (HOST, a.local_rtp_port)
    for seq in (10, 11, 12):
        phone.send(RtpPacket(PCMU, seq, seq * 160, 1, VOICE).serialize(), dest)
    await until(lambda: len(sink.packets) == 3)
    # A new SSRC with a sequence far away: still delivered at once, stats start over.
    for seq in (40000, 40001):
        phone.send(RtpPacket(PCMU, seq, 0, 2, VOICE).serialize(), dest)
    await until(lambda: len(sink.packets) == 5)
    assert sink.streams == [1, 2]
    assert a.counters.ssrc_changes == 1
    assert a.receiver_stats is not None and a.receiver_stats.ssrc == 2
    assert a.receiver_stats.received == 1  # probation: the first packet of a source
    a.close(a.time())


async def test_malformed_unknown_pt_and_comfort_noise(
    allocator: PortAllocator, peers: Callable[[str], asyncio.Future[Peer]]
) -> None:
    a = await RtpSession.open(allocator, RtpSessionConfig(PCMU, 8000))
    sink = Sink(a)
    phone = await peers(HOST)
    a.set_remote(*phone.address)
    dest = (HOST, a.local_rtp_port)
    phone.send(b"\x00\x01", dest)
    phone.send(bytes.fromhex("80001234 11223344 deadbeef")[:11], dest)
    phone.send(bytes.fromhex("a0001234 11223344 deadbeef 00ff"), dest)  # bad padding
    phone.send(RtpPacket(PCMU, 1, 0, 5, VOICE).serialize(), dest)
    phone.send(RtpPacket(98, 2, 160, 5, b"x").serialize(), dest)  # not negotiated
    phone.send(RtpPacket(13, 3, 320, 5, b"\x40").serialize(), dest)  # RFC 3389 CN
    await until(lambda: len(sink.packets) == 2)
    assert a.counters.malformed_rtp == 3
    assert a.counters.unknown_payload_type == 1
    assert [(p.payload_type, p.payload) for p in sink.packets] == [(0, VOICE), (13, b"\x40")]
    a.close(a.time())


async def test_dtmf_interleaved_with_audio(allocator: PortAllocator) -> None:
    a, b, _, sink_b = await open_pair(allocator, telephone_event_pt=TE)
    a.send_frame(VOICE, 160, a.time())
    a.send_dtmf("123#")
    for _ in range(40):
        a.send_frame(VOICE, 160, a.time())
    await until(lambda: len(sink_b.digits) == 4)
    await asyncio.sleep(0.03)
    assert "".join(d.digit for d in sink_b.digits) == "123#"
    assert a.counters.dtmf_sent == 4 * 7
    stats = b.receiver_stats
    assert stats is not None
    # Audio and events share one SSRC and sequence space: nothing looks lost.
    assert stats.cumulative_lost == 0
    audio = 1 + 40 - 4 * 5  # each digit's 5 event ticks replaced audio frames
    assert len(sink_b.packets) == audio
    assert stats.received == audio + 4 * 7 - 1  # 7 event packets per digit; 1 in probation
    a.close(a.time())
    b.close(b.time())


async def test_srtp_between_two_sessions_and_tampering(
    allocator: PortAllocator, peers: Callable[[str], asyncio.Future[Peer]]
) -> None:
    keys = (generate_key(), generate_key())
    a, b, sink_a, sink_b = await open_pair(allocator, srtp_keys=keys)
    sniffer = await peers(HOST)
    for _ in range(3):
        a.send_frame(VOICE, 160, a.time())
        b.send_frame(b"\x22" * 160, 160, b.time())
    await until(lambda: len(sink_b.packets) == 3 and len(sink_a.packets) == 3)
    assert [p.payload for p in sink_b.packets] == [VOICE] * 3
    force_rtcp(a)
    await until(lambda: b.counters.rtcp_received == 1)
    # A forger with the wrong key, a flipped bit, plain RTP: all counted and dropped.
    forged = SrtpContext(SrtpConfig("AES_CM_128_HMAC_SHA1_80", generate_key(), keys[1]))
    seq = sink_b.packets[-1].sequence
    dest = (HOST, b.local_rtp_port)
    sniffer.send(forged.protect(RtpPacket(PCMU, seq + 1, 0, a.ssrc, VOICE).serialize()), dest)
    genuine = SrtpContext(SrtpConfig("AES_CM_128_HMAC_SHA1_80", keys[0], keys[1]))
    tampered = bytearray(genuine.protect(RtpPacket(PCMU, seq + 2, 0, a.ssrc, VOICE).serialize()))
    tampered[20] ^= 0x80
    sniffer.send(bytes(tampered), dest)
    sniffer.send(RtpPacket(PCMU, seq + 3, 0, a.ssrc, VOICE).serialize(), dest)
    await until(lambda: b.counters.srtp_failures == 3)
    assert len(sink_b.packets) == 3
    assert b.latched_rtp == (HOST, a.local_rtp_port)  # unauthenticated packets never latch
    a.close(a.time())
    b.close(b.time())


async def test_rtcp_mux_demux(allocator: PortAllocator) -> None:
    a, b, _, sink_b = await open_pair(allocator, rtcp_mux=True)
    assert a.local_rtcp_port == a.local_rtp_port and a.ports.rtcp_socket is None
    a.send_frame(VOICE, 160, a.time())
    force_rtcp(a)
    a.send_frame(VOICE, 160, a.time())
    await until(lambda: len(sink_b.packets) == 2 and b.counters.rtcp_received == 1)
    assert b.counters.malformed_rtp == 0 and b.counters.unknown_payload_type == 0
    a.close(a.time(), reason="bye")
    await until(lambda: sink_b.byes == ["bye"])
    b.close(b.time())
    assert allocator.in_use == 0


async def test_ipv6_sessions_exchange_and_latch() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    rng = random.Random()
    base = rng.randrange(20000, 32000, 2)
    allocator = PortAllocator((base, base + 63), host="::1")
    try:
        a = await RtpSession.open(allocator, RtpSessionConfig(PCMU, 8000))
    except OSError:
        pytest.skip("::1 not usable here")
    b = await RtpSession.open(allocator, RtpSessionConfig(PCMU, 8000))
    sink_a, sink_b = Sink(a), Sink(b)
    a.set_remote("::1", b.local_rtp_port)
    b.set_remote("::1", a.local_rtp_port)
    a.send_frame(VOICE, 160, a.time())
    b.send_frame(VOICE, 160, b.time())
    await until(lambda: len(sink_a.packets) == 1 and len(sink_b.packets) == 1)
    assert b.latched_rtp == ("::1", a.local_rtp_port)  # 4-tuple source reduced to host, port
    a.close(a.time())
    b.close(b.time())


def test_core_sender_sequence_and_timestamp_wrap() -> None:
    sent: Sent = []
    s = RtpSessionCore(
        RtpSessionConfig(PCMU, 8000),
        lambda c, d, a: sent.append((c, d, a)),
        now=0.0,
        rand=random.Random(0),
    )
    s.set_remote("192.0.2.1", 4000)
    first = None
    for i in range(70000):  # more than 2^16 packets: the sequence wraps at least once
        s.send_frame(VOICE, 0x20000, i * 0.02)  # big increments: the timestamp wraps too
        if first is None:
            first = RtpPacket.parse(sent[0][1])
    pkts = rtp_of(sent[-3:])
    assert first is not None
    assert [p.sequence for p in pkts] == [(first.sequence + 69997 + k) & 0xFFFF for k in range(3)]
    assert [p.timestamp for p in pkts] == [
        (first.timestamp + (69997 + k) * 0x20000) & 0xFFFFFFFF for k in range(3)
    ]
