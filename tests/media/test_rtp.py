"""RTP packet parse/serialise against hand-built wire bytes (RFC 3550 §5.1, RFC 8285, RFC 6464)."""

from __future__ import annotations

import pytest

from media.errors import MediaParseError
from media.rtp import (
    ONE_BYTE_PROFILE,
    TWO_BYTE_PROFILE,
    AudioLevel,
    RtpPacket,
    decode_audio_level,
    encode_audio_level,
    seq_delta,
    ts_delta,
)

PLAIN = bytes.fromhex("80001234 11223344 deadbeef 0102")


def test_parse_plain_packet() -> None:
    p = RtpPacket.parse(PLAIN)
    assert (p.payload_type, p.marker, p.sequence, p.timestamp, p.ssrc) == (
        0,
        False,
        0x1234,
        0x11223344,
        0xDEADBEEF,
    )
    assert p.payload == b"\x01\x02"
    assert p.csrcs == ()
    assert p.extensions is None  # no per-packet dict on the hot path
    assert p.extension_profile == 0
    assert p.padding == 0


def test_serialize_plain_packet() -> None:
    p = RtpPacket(0, 0x1234, 0x11223344, 0xDEADBEEF, b"\x01\x02")
    assert p.serialize() == PLAIN


# V=2 P=1 X=1 CC=2 | M=1 PT=111 | seq 1 | ts 160 | ssrc 0x01020304 | 2 CSRCs
# | 0xBEDE, 2 words: [id1 L0: 0x85] [pad 00] [id3 L1: aa bb] [pad 00 00]
# | payload "hi" | padding 00 00 03
FULL = bytes.fromhex(
    "b2ef0001 000000a0 010203040a0b0c0d 0e0f1011bede0002 10850031 aabb00006869000003"
)


def test_parse_csrc_padding_one_byte_extension() -> None:
    p = RtpPacket.parse(FULL)
    assert p.marker is True
    assert p.payload_type == 111
    assert p.sequence == 1
    assert p.timestamp == 160
    assert p.ssrc == 0x01020304
    assert p.csrcs == (0x0A0B0C0D, 0x0E0F1011)
    assert p.extension_profile == ONE_BYTE_PROFILE
    assert p.extensions == {1: b"\x85", 3: b"\xaa\xbb"}
    assert p.payload == b"hi"
    assert p.padding == 3
    assert p.get_audio_level(1) == AudioLevel(voice=True, level=5)
    assert p.get_audio_level(2) is None


def test_serialize_csrc_padding_one_byte_extension() -> None:
    p = RtpPacket(
        111,
        1,
        160,
        0x01020304,
        b"hi",
        marker=True,
        csrcs=(0x0A0B0C0D, 0x0E0F1011),
        extensions={1: b"\x85", 3: b"\xaa\xbb"},
        padding=3,
    )
    # Elements packed without inner padding; the body is zero-padded to 32 bits.
    expected = bytes.fromhex(
        "b2ef0001 000000a0 01020304 0a0b0c0d 0e0f1011 bede0002 1085 31aabb 000000 6869 000003"
    )
    assert p.serialize() == expected
    assert RtpPacket.parse(expected) == p


def test_id_15_stops_one_byte_parsing() -> None:
    data = bytes.fromhex("90000001 00000000 00000001 bede0002 1085f021 aabbcc00") + b"x"
    p = RtpPacket.parse(data)
    assert p.extensions == {1: b"\x85"}  # id 2 after the id-15 byte is not an element
    assert p.payload == b"x"


# Two-byte form (0x1000 | appbits 0x5): [id 1, L 0] [pad 00] [id 20, L 3: "abc"] [pad 00 00 00]
TWO_BYTE = bytes.fromhex("90080002 00000000 00000002 10050003 01000014 03616263 00000000") + b"p"


def test_parse_two_byte_extension() -> None:
    p = RtpPacket.parse(TWO_BYTE)
    assert p.payload_type == 8
    assert p.extension_profile == 0x1005
    assert p.extensions == {1: b"", 20: b"abc"}
    assert p.payload == b"p"


def test_serialize_two_byte_when_one_byte_cannot_carry() -> None:
    # id 20 (> 14) and a zero-length element both need the two-byte form (RFC 8285 §4.3).
    p = RtpPacket(8, 2, 0, 2, b"p", extensions={1: b"", 20: b"abc"})
    assert p.extension_profile == ONE_BYTE_PROFILE  # the default; serialise must switch
    wire = p.serialize()
    assert wire == bytes.fromhex("90080002 00000000 00000002 10000002 0100 1403616263 00") + b"p"
    assert RtpPacket.parse(wire).extension_profile == TWO_BYTE_PROFILE
    # A packet parsed in the two-byte form keeps it, appbits included.
    again = RtpPacket.parse(TWO_BYTE)
    assert RtpPacket.parse(again.serialize()).extension_profile == 0x1005


def test_one_byte_preferred_and_long_value_forces_two_byte() -> None:
    p = RtpPacket(0, 0, 0, 0, b"", extensions={2: bytes(16)})
    assert p.serialize()[12:16] == bytes.fromhex("bede0005")
    p.extensions = {2: bytes(17)}
    assert p.serialize()[12:16] == bytes.fromhex("10000005")
    assert RtpPacket.parse(p.serialize()).extensions == {2: bytes(17)}


def test_generic_profile_extension_kept_verbatim() -> None:
    data = bytes.fromhex("90000001 00000000 00000001 abcd0001 01020304 ff")
    p = RtpPacket.parse(data)
    assert p.extension_profile == 0xABCD
    assert p.extensions is None
    assert p.extension_data == bytes.fromhex("01020304")
    assert p.payload == b"\xff"
    assert p.serialize() == data


def test_audio_level_helpers() -> None:
    assert encode_audio_level(30, voice=True) == b"\x9e"
    assert encode_audio_level(127) == b"\x7f"
    assert decode_audio_level(b"\x9e") == AudioLevel(True, 30)
    assert decode_audio_level(b"\x7f\x00\x00\x00") == AudioLevel(False, 127)  # 4-byte padded
    with pytest.raises(ValueError):
        encode_audio_level(128)
    with pytest.raises(MediaParseError):
        decode_audio_level(b"")
    p = RtpPacket(111, 5, 960, 7, b"opus")
    p.set_audio_level(1, 42, voice=True)
    wire = p.serialize()
    assert wire[12:20] == bytes.fromhex("bede0001 10aa0000")
    assert RtpPacket.parse(wire).get_audio_level(1) == AudioLevel(True, 42)


def test_copy_is_independent() -> None:
    p = RtpPacket.parse(FULL)
    q = p.copy()
    assert q == p
    assert q.extensions is not None
    q.extensions[1] = b"\x00"
    assert p.extensions == {1: b"\x85", 3: b"\xaa\xbb"}


@pytest.mark.parametrize(
    ("hexdata", "why"),
    [
        ("80001234 112233", "shorter than the header"),
        ("40001234 11223344 deadbeef", "version"),
        ("82001234 11223344 deadbeef 00000001", "CSRC list overruns"),
        ("90001234 11223344 deadbeef bede", "extension header truncated"),
        ("90001234 11223344 deadbeef bede0002 10850000", "extension overruns"),
        ("90001234 11223344 deadbeef bede0001 13aabbcc", "element overruns"),
        ("90001234 11223344 deadbeef 10000001 0105aabb", "element overruns"),
        ("90001234 11223344 deadbeef 10000001 00000001", "element truncated"),
        ("a0001234 11223344 deadbeef 0100", "padding count 0"),
        ("a0001234 11223344 deadbeef 0005", "padding count 5"),
    ],
)
def test_malformed_packets_raise_media_parse_error(hexdata: str, why: str) -> None:
    with pytest.raises(MediaParseError, match=why):
        RtpPacket.parse(bytes.fromhex(hexdata))


def test_wrap_aware_deltas() -> None:
    assert seq_delta(2, 65534) == 4
    assert seq_delta(65534, 2) == -4
    assert seq_delta(5, 5) == 0
    assert ts_delta(100, 0xFFFFFF00) == 356
    assert ts_delta(0xFFFFFF00, 100) == -356
