"""Hypothesis: peer bytes into the RTP, RTCP and telephone-event parsers raise only
MediaParseError; valid packets survive a serialise/parse round trip."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from media.dtmf import DtmfReceiver, TelephoneEvent
from media.errors import MediaParseError
from media.rtcp import (
    Bye,
    ReceiverReport,
    ReportBlock,
    RtcpPacket,
    SenderReport,
    SourceDescription,
    parse_compound,
    serialize_compound,
)
from media.rtp import RtpPacket
from media.rtp_session import CHANNEL_RTCP, CHANNEL_RTP, RtpSessionConfig, RtpSessionCore

# Bytes that look like RTP/RTCP (version 2 and, for RTCP, a known packet type) reach far
# deeper into the parsers than uniformly random ones.
rtp_like = st.builds(
    lambda b0, rest: bytes([b0]) + rest, st.integers(0x80, 0xBF), st.binary(max_size=80)
)
rtcp_like = st.builds(
    lambda b0, pt, rest: bytes([b0, pt]) + rest,
    st.integers(0x80, 0xBF),
    st.integers(198, 206),
    st.binary(max_size=120),
)


def _parse_rtp(data: bytes) -> None:
    try:
        pkt = RtpPacket.parse(data)
    except MediaParseError:
        return
    again = RtpPacket.parse(pkt.serialize())
    assert (again.payload_type, again.marker, again.sequence, again.timestamp, again.ssrc) == (
        pkt.payload_type,
        pkt.marker,
        pkt.sequence,
        pkt.timestamp,
        pkt.ssrc,
    )
    assert (again.csrcs, again.payload, again.padding) == (pkt.csrcs, pkt.payload, pkt.padding)
    assert (again.extensions or None) == (pkt.extensions or None)
    assert again.extension_data == pkt.extension_data


@given(st.binary(max_size=100))
def test_rtp_parse_arbitrary_bytes(data: bytes) -> None:
    _parse_rtp(data)


@given(rtp_like)
def test_rtp_parse_rtp_like_bytes(data: bytes) -> None:
    _parse_rtp(data)


ext_values = st.binary(min_size=0, max_size=20)


@given(
    pt=st.integers(0, 127),
    seq=st.integers(0, 0xFFFF),
    ts=st.integers(0, 0xFFFFFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF),
    marker=st.booleans(),
    csrcs=st.lists(st.integers(0, 0xFFFFFFFF), max_size=15).map(tuple),
    exts=st.none() | st.dictionaries(st.integers(1, 255), ext_values, min_size=1, max_size=4),
    payload=st.binary(max_size=40),
    padding=st.integers(0, 255),
)
def test_rtp_round_trip(
    pt: int,
    seq: int,
    ts: int,
    ssrc: int,
    marker: bool,
    csrcs: tuple[int, ...],
    exts: dict[int, bytes] | None,
    payload: bytes,
    padding: int,
) -> None:
    pkt = RtpPacket(pt, seq, ts, ssrc, payload, marker, csrcs, exts, padding=padding)
    again = RtpPacket.parse(pkt.serialize())
    assert again.extensions == exts
    again.extension_profile = pkt.extension_profile  # the form may change: 1-byte <-> 2-byte
    assert again == pkt


@given(st.binary(max_size=120))
def test_rtcp_parse_arbitrary_bytes(data: bytes) -> None:
    try:
        parse_compound(data)
    except MediaParseError:
        pass


@given(rtcp_like)
def test_rtcp_parse_rtcp_like_bytes(data: bytes) -> None:
    try:
        packets = parse_compound(data)
    except MediaParseError:
        return
    # What parsed re-serialises into something that parses to the same packets.
    if packets:
        assert parse_compound(serialize_compound(packets)) == packets


u32 = st.integers(0, 0xFFFFFFFF)
blocks = st.builds(
    ReportBlock, u32, st.integers(0, 255), st.integers(-0x800000, 0x7FFFFF), u32, u32, u32, u32
)


@given(
    ssrc=u32,
    ntp=st.integers(0, 2**64 - 1),
    reports=st.lists(blocks, max_size=3),
    cname=st.text(max_size=30),
    reason=st.none() | st.text(max_size=40),
)
def test_rtcp_compound_round_trip(
    ssrc: int, ntp: int, reports: list[ReportBlock], cname: str, reason: str | None
) -> None:
    if len(cname.encode()) > 255:
        return
    if reason is not None and len(reason.encode()) > 255:
        reason = None
    packets: list[RtcpPacket] = [
        SenderReport(ssrc, ntp, 1, 2, 3, reports),
        ReceiverReport(ssrc, reports),
        SourceDescription.with_cname(ssrc, cname),
        Bye([ssrc], reason),
    ]
    assert parse_compound(serialize_compound(packets)) == packets


@given(st.binary(max_size=12), u32)
def test_telephone_event_parse(data: bytes, timestamp: int) -> None:
    try:
        ev = TelephoneEvent.parse(data)
    except MediaParseError:
        return
    assert 0 <= ev.volume <= 63
    receiver = DtmfReceiver(8000)
    receiver.on_packet(timestamp, data)
    assert receiver.on_packet(timestamp, data) is None  # the same press is never reported twice


@given(st.lists(st.tuples(st.booleans(), st.one_of(rtp_like, rtcp_like, st.binary())), max_size=8))
def test_session_receive_path_never_raises(datagrams: list[tuple[bool, bytes]]) -> None:
    session = RtpSessionCore(
        RtpSessionConfig(0, 8000, telephone_event_pt=101, rtcp_mux=True),
        lambda ch, data, addr: None,
        now=0.0,
    )
    session.set_remote("192.0.2.1", 4000)
    for i, (rtcp_socket, data) in enumerate(datagrams):
        channel = CHANNEL_RTCP if rtcp_socket else CHANNEL_RTP
        session.datagram_received(channel, data, ("192.0.2.1", 4000), 0.02 * i)
    session.tick(100.0)
