"""RTP packets (RFC 3550 §5.1) with RFC 8285 header extensions and the RFC 6464 audio level.

This is the per-packet hot path of every call (50-100+ packets/s per stream), so the packet is a
`__slots__` class parsed with one precompiled `struct` call, and a packet without header
extensions carries no dict at all (`extensions is None`).
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from media.errors import MediaParseError

RTP_VERSION = 2
RTP_HEADER_SIZE = 12

# RFC 8285 §4.2 / §4.3: the "defined by profile" values that announce each extension form.
ONE_BYTE_PROFILE = 0xBEDE
TWO_BYTE_PROFILE = 0x1000  # 0x100X: the low 4 bits ("appbits") are application data

RTP_FIXED_HEADER = struct.Struct("!BBHII")  # V/P/X/CC, M/PT, sequence, timestamp, SSRC
_HEADER = RTP_FIXED_HEADER
_EXT_HEADER = struct.Struct("!HH")
_SEQ_MOD = 1 << 16
_TS_MOD = 1 << 32


class AudioLevel(NamedTuple):
    """RFC 6464 §3: the V (voice activity) flag and the level in -dBov (0 loudest, 127 silence)."""

    voice: bool
    level: int


# Every one-byte element, built once: indexed by V << 7 | level (a new bytes object per packet
# cost more than the rest of the encoding).
_LEVEL_ELEMENTS = tuple(bytes((value,)) for value in range(256))


def encode_audio_level(level: int, voice: bool = False) -> bytes:
    """The one-byte ssrc-audio-level value: V bit + 7-bit level in -dBov (RFC 6464 §3)."""
    if not 0 <= level <= 127:
        raise ValueError(f"audio level {level} outside 0..127 -dBov")
    return _LEVEL_ELEMENTS[(level | 0x80) if voice else level]


def decode_audio_level(data: bytes) -> AudioLevel:
    """Decode an ssrc-audio-level element. RFC 6464 §3 defines one byte; some senders pad the
    element to 4 bytes (the old RFC 5285 advice), so only the first byte is read."""
    if not data:
        raise MediaParseError("empty ssrc-audio-level extension element")
    value = data[0]
    return AudioLevel(bool(value & 0x80), value & 0x7F)


def rtp_header(payload_type: int, marker: bool, sequence: int, timestamp: int, ssrc: int) -> bytes:
    """The 12-byte fixed header of a packet without CSRCs, extension or padding (what
    `RtpPacket(...).serialize()` writes before the payload, at a quarter of the cost)."""
    return _HEADER.pack(0x80, (0x80 if marker else 0) | payload_type, sequence, timestamp, ssrc)


def seq_delta(new: int, old: int) -> int:
    """Signed distance between two 16-bit sequence numbers, in [-32768, 32767] (wrap-aware)."""
    d = (new - old) & 0xFFFF
    return d - _SEQ_MOD if d >= 0x8000 else d


def ts_delta(new: int, old: int) -> int:
    """Signed distance between two 32-bit RTP timestamps (wrap-aware)."""
    d = (new - old) & 0xFFFFFFFF
    return d - _TS_MOD if d >= 0x80000000 else d


def _parse_one_byte(data: bytes, start: int, end: int) -> dict[int, bytes]:
    # RFC 8285 §4.2: ID(4) L(4) with L+1 data bytes; a zero byte is padding; ID 15 stops
    # the parse (its length is ignored and only the elements before it count).
    out: dict[int, bytes] = {}
    pos = start
    while pos < end:
        byte = data[pos]
        ext_id = byte >> 4
        if ext_id == 0:
            pos += 1
            continue
        if ext_id == 15:
            break
        length = (byte & 0x0F) + 1
        pos += 1
        if pos + length > end:
            raise MediaParseError("one-byte header extension element overruns the extension")
        out[ext_id] = data[pos : pos + length]
        pos += length
    return out


def _parse_two_byte(data: bytes, start: int, end: int) -> dict[int, bytes]:
    # RFC 8285 §4.3: ID(8) L(8) with L data bytes (L may be 0); a zero byte is padding.
    out: dict[int, bytes] = {}
    pos = start
    while pos < end:
        ext_id = data[pos]
        if ext_id == 0:
            pos += 1
            continue
        if pos + 2 > end:
            raise MediaParseError("two-byte header extension element truncated")
        length = data[pos + 1]
        pos += 2
        if pos + length > end:
            raise MediaParseError("two-byte header extension element overruns the extension")
        out[ext_id] = data[pos : pos + length]
        pos += length
    return out


def _serialize_extensions(profile: int, extensions: dict[int, bytes]) -> tuple[int, bytes]:
    """Choose the RFC 8285 form and build the extension body (padded to 32 bits)."""
    one_byte_ok = profile & 0xFFF0 != TWO_BYTE_PROFILE and all(
        1 <= i <= 14 and 1 <= len(v) <= 16 for i, v in extensions.items()
    )
    body = bytearray()
    if one_byte_ok:
        profile = ONE_BYTE_PROFILE
        for ext_id, value in extensions.items():
            body.append((ext_id << 4) | (len(value) - 1))
            body += value
    else:
        if profile & 0xFFF0 != TWO_BYTE_PROFILE:
            profile = TWO_BYTE_PROFILE
        for ext_id, value in extensions.items():
            if not 1 <= ext_id <= 255 or len(value) > 255:
                raise ValueError(f"extension id {ext_id} / length {len(value)} not encodable")
            body.append(ext_id)
            body.append(len(value))
            body += value
    body += bytes(-len(body) % 4)
    return profile, bytes(body)


_FIELDS = (
    "csrcs",
    "extension_data",
    "extension_profile",
    "extensions",
    "marker",
    "padding",
    "payload",
    "payload_type",
    "sequence",
    "ssrc",
    "timestamp",
)


class RtpPacket:
    """One RTP packet. `payload` excludes padding; `padding` is the number of padding bytes
    (including the count byte) to append when serialising, as received when parsed.

    Header extensions: `extension_profile` is 0 when there is none. For the RFC 8285 forms
    (0xBEDE, 0x100X) the elements are in `extensions` (id -> value, None when absent); any other
    profile (RFC 3550 §5.3.1) keeps its body verbatim in `extension_data`.
    """

    __slots__ = _FIELDS

    def __init__(
        self,
        payload_type: int = 0,
        sequence: int = 0,
        timestamp: int = 0,
        ssrc: int = 0,
        payload: bytes = b"",
        marker: bool = False,
        csrcs: tuple[int, ...] = (),
        extensions: dict[int, bytes] | None = None,
        extension_profile: int = 0,
        extension_data: bytes = b"",
        padding: int = 0,
    ) -> None:
        self.payload_type = payload_type
        self.sequence = sequence
        self.timestamp = timestamp
        self.ssrc = ssrc
        self.payload = payload
        self.marker = marker
        self.csrcs = csrcs
        self.extensions = extensions
        if extensions and not extension_profile:
            extension_profile = ONE_BYTE_PROFILE
        self.extension_profile = extension_profile
        self.extension_data = extension_data
        self.padding = padding

    def __repr__(self) -> str:
        return (
            f"RtpPacket(pt={self.payload_type}, seq={self.sequence}, ts={self.timestamp}, "
            f"ssrc={self.ssrc:#010x}, marker={self.marker}, len={len(self.payload)})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RtpPacket):
            return NotImplemented
        return all(getattr(self, s) == getattr(other, s) for s in _FIELDS)

    __hash__ = None  # type: ignore[assignment]  # mutable value

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        """Parse one RTP packet; any malformation raises MediaParseError (RFC 3550 A.1 checks
        that need no state: version, lengths, padding)."""
        size = len(data)
        if size < RTP_HEADER_SIZE:
            raise MediaParseError(f"RTP packet of {size} bytes is shorter than the header")
        b0, b1, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
        if b0 == 0x80:
            # Version 2 without padding, extension or CSRCs: a phone's every packet. Nothing
            # more to check. (Built by the constructor: mypyc's compiled class has no __new__.)
            return cls(
                b1 & 0x7F, sequence, timestamp, ssrc, bytes(data[RTP_HEADER_SIZE:]), b1 > 0x7F
            )
        if b0 >> 6 != RTP_VERSION:
            raise MediaParseError(f"RTP version {b0 >> 6} is not 2")
        pos = RTP_HEADER_SIZE
        cc = b0 & 0x0F
        csrcs: tuple[int, ...] = ()
        if cc:
            pos += 4 * cc
            if pos > size:
                raise MediaParseError("RTP CSRC list overruns the packet")
            csrcs = struct.unpack_from(f"!{cc}I", data, RTP_HEADER_SIZE)
        extensions: dict[int, bytes] | None = None
        profile = 0
        ext_data = b""
        if b0 & 0x10:
            if pos + 4 > size:
                raise MediaParseError("RTP header extension header truncated")
            profile, words = _EXT_HEADER.unpack_from(data, pos)
            start = pos + 4
            pos = start + 4 * words
            if pos > size:
                raise MediaParseError("RTP header extension overruns the packet")
            if profile == ONE_BYTE_PROFILE:
                extensions = _parse_one_byte(data, start, pos)
            elif profile & 0xFFF0 == TWO_BYTE_PROFILE:
                extensions = _parse_two_byte(data, start, pos)
            else:
                ext_data = bytes(data[start:pos])
        end = size
        padding = 0
        if b0 & 0x20:
            # RFC 3550 §5.1: the last octet counts the padding, itself included.
            padding = data[size - 1]
            if padding == 0 or pos + padding > size:
                raise MediaParseError(f"invalid RTP padding count {padding}")
            end -= padding
        return cls(
            b1 & 0x7F,
            sequence,
            timestamp,
            ssrc,
            bytes(data[pos:end]),
            b1 > 0x7F,
            csrcs,
            extensions,
            profile,
            ext_data,
            padding,
        )

    def serialize(self) -> bytes:
        """The packet on the wire. Extensions use the one-byte form when every element fits
        (ids 1-14, 1-16 bytes) unless the packet asks for the two-byte form (RFC 8285 §4.1)."""
        b0 = 0x80 | len(self.csrcs)
        b1 = (0x80 if self.marker else 0) | self.payload_type
        ext = b""
        if self.extensions:
            profile, body = _serialize_extensions(self.extension_profile, self.extensions)
            ext = _EXT_HEADER.pack(profile, len(body) // 4) + body
        elif self.extension_profile and self.extensions is None:
            body = self.extension_data + bytes(-len(self.extension_data) % 4)
            ext = _EXT_HEADER.pack(self.extension_profile, len(body) // 4) + body
        if ext:
            b0 |= 0x10
        if self.padding:
            b0 |= 0x20
        header = _HEADER.pack(b0, b1, self.sequence, self.timestamp, self.ssrc)
        if not (self.csrcs or ext or self.padding):
            return header + self.payload
        parts = [header]
        if self.csrcs:
            parts.append(struct.pack(f"!{len(self.csrcs)}I", *self.csrcs))
        parts.append(ext)
        parts.append(self.payload)
        if self.padding:
            parts.append(bytes(self.padding - 1) + bytes((self.padding,)))
        return b"".join(parts)

    def copy(self) -> RtpPacket:
        """A shallow copy (values are immutable except the extensions dict, which is copied)."""
        return RtpPacket(
            self.payload_type,
            self.sequence,
            self.timestamp,
            self.ssrc,
            self.payload,
            self.marker,
            self.csrcs,
            dict(self.extensions) if self.extensions is not None else None,
            self.extension_profile,
            self.extension_data,
            self.padding,
        )

    def get_audio_level(self, ext_id: int) -> AudioLevel | None:
        """The RFC 6464 level carried under the negotiated extension id, if present."""
        if self.extensions is None:
            return None
        value = self.extensions.get(ext_id)
        if value is None:
            return None
        return decode_audio_level(value)

    def set_audio_level(self, ext_id: int, level: int, voice: bool = False) -> None:
        if self.extensions is None:
            self.extensions = {}
            self.extension_profile = ONE_BYTE_PROFILE
            self.extension_data = b""
        self.extensions[ext_id] = encode_audio_level(level, voice)
