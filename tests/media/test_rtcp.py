"""RTCP packets (RFC 3550 §6) against known wire bytes, the A.7 interval and RFC 5761 demux."""

from __future__ import annotations

import random

import pytest

from media.errors import MediaParseError
from media.rtcp import (
    NTP_UNIX_OFFSET,
    Bye,
    ReceiverReport,
    ReportBlock,
    RtcpTimer,
    SdesChunk,
    SenderReport,
    SourceDescription,
    is_rtcp,
    ntp_from_unix,
    ntp_middle32,
    ntp_to_unix,
    parse_compound,
    rtcp_interval,
    serialize_compound,
)

BLOCK_HEX = "22222222 40000005 00010010 00000020 a3b2c180 00018000"
BLOCK = ReportBlock(
    ssrc=0x22222222,
    fraction_lost=0x40,
    cumulative_lost=5,
    highest_sequence=0x10010,
    jitter=32,
    lsr=0xA3B2C180,
    dlsr=0x18000,
)
SR_HEX = "81c8000c 11111111 e4a3b2c1 80000000 00001f40 00000064 00003e80 " + BLOCK_HEX
SR = SenderReport(
    ssrc=0x11111111,
    ntp_timestamp=0xE4A3B2C180000000,
    rtp_timestamp=8000,
    packet_count=100,
    octet_count=16000,
    reports=[BLOCK],
)
RR_HEX = "81c90007 11111111 " + BLOCK_HEX
SDES_HEX = "81ca0003 11111111 01036162 63000000"
BYE_HEX = "81cb0002 11111111 03627965"


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def test_sender_report_bytes() -> None:
    assert SR.serialize() == h(SR_HEX)
    assert parse_compound(h(SR_HEX)) == [SR]


def test_receiver_report_bytes() -> None:
    rr = ReceiverReport(0x11111111, [BLOCK])
    assert rr.serialize() == h(RR_HEX)
    assert parse_compound(h(RR_HEX)) == [rr]


def test_empty_receiver_report() -> None:
    assert ReceiverReport(7).serialize() == h("80c90001 00000007")


def test_negative_cumulative_lost_is_signed_24_bit() -> None:
    block = ReportBlock(1, 0, -3, 10, 0, 0, 0)
    wire = block.serialize()
    assert wire[4:8] == h("00fffffd")
    assert ReportBlock.parse(wire, 0).cumulative_lost == -3
    # Clamped to the field's range rather than wrapped into a wrong sign.
    assert ReportBlock(1, 0, 1 << 30, 0, 0, 0, 0).serialize()[4:8] == h("007fffff")


def test_sdes_cname_bytes() -> None:
    sdes = SourceDescription.with_cname(0x11111111, "abc")
    assert sdes.serialize() == h(SDES_HEX)
    (parsed,) = parse_compound(h(SDES_HEX))
    assert isinstance(parsed, SourceDescription)
    assert parsed.chunks[0].cname == "abc"
    assert parsed == sdes


def test_sdes_chunk_ending_on_a_word_boundary_gets_a_full_null_word() -> None:
    # 4 (SSRC) + 2 + 2 ("ab") = 8 bytes of items: the end item needs a whole extra word.
    sdes = SourceDescription.with_cname(1, "ab")
    assert sdes.serialize() == h("81ca0003 00000001 01026162 00000000")
    assert parse_compound(sdes.serialize()) == [sdes]


def test_sdes_several_items_and_chunks() -> None:
    sdes = SourceDescription(
        [SdesChunk(1, [(1, b"c1"), (6, b"tool")]), SdesChunk(2, [(1, b"second")])]
    )
    (parsed,) = parse_compound(sdes.serialize())
    assert parsed == sdes
    assert isinstance(parsed, SourceDescription)
    assert [c.cname for c in parsed.chunks] == ["c1", "second"]
    assert SdesChunk(3, [(6, b"x")]).cname is None


def test_bye_with_and_without_reason() -> None:
    bye = Bye([0x11111111], "bye")
    assert bye.serialize() == h(BYE_HEX)
    assert parse_compound(h(BYE_HEX)) == [bye]
    plain = Bye([1, 2])
    assert plain.serialize() == h("82cb0002 00000001 00000002")
    assert parse_compound(plain.serialize()) == [plain]


def test_compound_skips_app_and_unknown_types() -> None:
    app = "80cc0002 11111111 6e616d65"  # APP "name"
    rtpfb = "81cd0002 11111111 22222222"  # generic NACK feedback: not ours to handle
    data = h(RR_HEX + app + SDES_HEX + rtpfb + BYE_HEX)
    packets = parse_compound(data)
    assert [type(p) for p in packets] == [ReceiverReport, SourceDescription, Bye]
    assert serialize_compound(packets) == h(RR_HEX + SDES_HEX + BYE_HEX)


def test_padded_packet() -> None:
    # RR with P=1 and 4 bytes of padding counted in the length.
    data = h("a1c90008 11111111 " + BLOCK_HEX + " 00000004")
    assert parse_compound(data) == [ReceiverReport(0x11111111, [BLOCK])]


@pytest.mark.parametrize(
    ("hexdata", "why"),
    [
        ("81c9", "shorter than its header"),
        ("41c90001 00000001", "version"),
        ("81c90007 11111111", "overruns the datagram"),
        ("81c90001 11111111", "report blocks overrun"),
        ("80c80001 11111111", "sender info"),
        ("81ca0001 11111111", "without its end item"),
        ("81ca0002 11111111 01056162", "SDES item overruns"),
        ("82cb0001 11111111", "SSRC list overruns"),
        ("81cb0002 11111111 05627965", "reason overruns"),
        ("a0c90001 00000000", "padding count 0"),
        ("80c90001 00000001 0000", "trailing bytes"),
    ],
)
def test_malformed_rtcp(hexdata: str, why: str) -> None:
    with pytest.raises(MediaParseError, match=why):
        parse_compound(h(hexdata))


def test_too_many_report_blocks_rejected_on_serialise() -> None:
    with pytest.raises(ValueError):
        ReceiverReport(1, [BLOCK] * 32).serialize()


def test_rfc5761_demux() -> None:
    assert is_rtcp(h("80c8"))  # SR 200
    assert is_rtcp(h("80c0"))  # 192 = M bit + PT 64
    assert is_rtcp(h("80df"))  # 223 = M bit + PT 95
    assert not is_rtcp(h("8000"))  # PCMU
    assert not is_rtcp(h("8080"))  # PCMU with marker
    assert not is_rtcp(h("80e0"))  # PT 96 with marker
    assert not is_rtcp(h("80"))


def test_ntp_helpers() -> None:
    assert ntp_from_unix(0.0) == NTP_UNIX_OFFSET << 32
    ntp = ntp_from_unix(1.5)
    assert ntp & 0xFFFFFFFF == 0x80000000
    assert ntp_to_unix(ntp) == 1.5
    assert ntp_middle32(0x1122334455667788) == 0x33445566


COMP = 2.718281828459045 - 1.5


def test_interval_minimum_and_randomisation_bounds() -> None:
    # Two parties at 500 octets/s: the computed interval (0.5 s) is below the 5 s minimum.
    low = rtcp_interval(2, 2, 500.0, True, 128.0, initial=False, rand=lambda: 0.0)
    high = rtcp_interval(2, 2, 500.0, True, 128.0, initial=False, rand=lambda: 1.0)
    assert low == pytest.approx(5.0 * 0.5 / COMP)
    assert high == pytest.approx(5.0 * 1.5 / COMP)
    first = rtcp_interval(2, 2, 500.0, False, 128.0, initial=True, rand=lambda: 0.5)
    assert first == pytest.approx(2.5 / COMP)  # the initial minimum is halved
    rng = random.Random(1)
    samples = [rtcp_interval(2, 1, 500.0, False, 128.0, False, rng.random) for _ in range(500)]
    assert min(samples) >= 5.0 * 0.5 / COMP
    assert max(samples) < 5.0 * 1.5 / COMP
    assert max(samples) - min(samples) > 3.0  # really randomised


def test_interval_scales_with_members_and_sender_share() -> None:
    # 100 members, 1 sender (<= 25 %): receivers share 75 % of the bandwidth among 99.
    t = rtcp_interval(100, 1, 500.0, False, 128.0, False, rand=lambda: 0.5)
    assert t == pytest.approx(128.0 * 99 / 375.0 / COMP)
    # The one sender gets 25 % for itself alone: back to the 5 s minimum.
    t = rtcp_interval(100, 1, 500.0, True, 128.0, False, rand=lambda: 0.5)
    assert t == pytest.approx(5.0 / COMP)


def test_rtcp_timer() -> None:
    timer = RtcpTimer(100.0, 500.0, rand=lambda: 0.5)
    assert timer.next_time == pytest.approx(100.0 + 2.5 / COMP)
    assert not timer.due(101.0)
    assert timer.due(timer.next_time)
    timer.sent(103.0, 100, 2, 2, True)
    assert timer.next_time == pytest.approx(103.0 + 5.0 / COMP)
    before = timer.avg_rtcp_size
    timer.received(1000)
    assert timer.avg_rtcp_size == pytest.approx(before + (1028 - before) / 16)
