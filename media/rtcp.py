"""RTCP packets (RFC 3550 §6): SR, RR, SDES, BYE in compound packets, the §6.3 / A.7
transmission interval as a sans-IO timer, NTP time helpers and the RFC 5761 §4 demux rule.

APP (204) and any other packet type (RTPFB/PSFB feedback, XR, ...) are skipped when parsing:
the gateway acts on none of them.
"""

from __future__ import annotations

import math
import random
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from media.errors import MediaParseError

RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
RTCP_BYE = 203
RTCP_APP = 204

SDES_END = 0
SDES_CNAME = 1

NTP_UNIX_OFFSET = 2_208_988_800  # seconds from 1900-01-01 (NTP era 0) to 1970-01-01

_COMMON = struct.Struct("!BBH")
_SSRC = struct.Struct("!I")
_SR_INFO = struct.Struct("!QIII")
_BLOCK = struct.Struct("!IIIIII")
_MAX_COUNT = 31  # the 5-bit RC / SC field


def is_rtcp(data: bytes) -> bool:
    """RFC 5761 §4: with rtcp-mux, a packet whose second octet's low 7 bits (the RTP payload
    type position) are 64-95 is RTCP (RTCP packet types 192-223)."""
    return len(data) >= 2 and 64 <= (data[1] & 0x7F) <= 95


# --- NTP time (RFC 3550 §4) ------------------------------------------------------------------


def ntp_from_unix(unix_time: float) -> int:
    """64-bit NTP timestamp (32.32 fixed point, seconds since 1900) for a Unix time."""
    seconds = math.floor(unix_time)
    fraction = int((unix_time - seconds) * (1 << 32))
    return (((seconds + NTP_UNIX_OFFSET) & 0xFFFFFFFF) << 32) | (fraction & 0xFFFFFFFF)


def ntp_to_unix(ntp: int) -> float:
    return (ntp >> 32) - NTP_UNIX_OFFSET + (ntp & 0xFFFFFFFF) / (1 << 32)


def ntp_middle32(ntp: int) -> int:
    """The middle 32 bits of an NTP timestamp (16.16 seconds): the LSR/DLSR unit (§6.4.1)."""
    return (ntp >> 16) & 0xFFFFFFFF


# --- Packets ---------------------------------------------------------------------------------


@dataclass(slots=True)
class ReportBlock:
    """RFC 3550 §6.4.1 reception report block. `cumulative_lost` is signed (24 bits): it can be
    negative when duplicates arrive (§6.4.1)."""

    ssrc: int
    fraction_lost: int  # 0..255, fixed point /256
    cumulative_lost: int
    highest_sequence: int  # extended highest sequence number received
    jitter: int  # timestamp units
    lsr: int  # middle 32 bits of the last SR's NTP timestamp, 0 if none
    dlsr: int  # delay since that SR in 1/65536 s

    def serialize(self) -> bytes:
        lost = max(-0x800000, min(0x7FFFFF, self.cumulative_lost)) & 0xFFFFFF
        return _BLOCK.pack(
            self.ssrc,
            ((self.fraction_lost & 0xFF) << 24) | lost,
            self.highest_sequence & 0xFFFFFFFF,
            self.jitter & 0xFFFFFFFF,
            self.lsr & 0xFFFFFFFF,
            self.dlsr & 0xFFFFFFFF,
        )

    @classmethod
    def parse(cls, data: bytes, pos: int) -> ReportBlock:
        ssrc, lost_word, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(data, pos)
        lost = lost_word & 0xFFFFFF
        if lost & 0x800000:
            lost -= 0x1000000
        return cls(ssrc, lost_word >> 24, lost, highest, jitter, lsr, dlsr)


def _header(count: int, packet_type: int, body_len: int) -> bytes:
    if count > _MAX_COUNT:
        raise ValueError(f"{count} items do not fit one RTCP packet (max 31)")
    return _COMMON.pack(0x80 | count, packet_type, body_len // 4)


def _parse_blocks(data: bytes, pos: int, end: int, count: int) -> list[ReportBlock]:
    if pos + 24 * count > end:
        raise MediaParseError("RTCP report blocks overrun the packet")
    return [ReportBlock.parse(data, pos + 24 * i) for i in range(count)]


@dataclass(slots=True)
class SenderReport:
    """RFC 3550 §6.4.1 SR."""

    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: list[ReportBlock] = field(default_factory=list)

    def serialize(self) -> bytes:
        body = _SSRC.pack(self.ssrc) + _SR_INFO.pack(
            self.ntp_timestamp & 0xFFFFFFFFFFFFFFFF,
            self.rtp_timestamp & 0xFFFFFFFF,
            self.packet_count & 0xFFFFFFFF,
            self.octet_count & 0xFFFFFFFF,
        )
        body += b"".join(r.serialize() for r in self.reports)
        return _header(len(self.reports), RTCP_SR, len(body)) + body

    @classmethod
    def parse(cls, data: bytes, pos: int, end: int, count: int) -> SenderReport:
        if pos + 24 > end:
            raise MediaParseError("RTCP SR shorter than its sender info")
        (ssrc,) = _SSRC.unpack_from(data, pos)
        ntp, rtp_ts, packets, octets = _SR_INFO.unpack_from(data, pos + 4)
        return cls(ssrc, ntp, rtp_ts, packets, octets, _parse_blocks(data, pos + 24, end, count))


@dataclass(slots=True)
class ReceiverReport:
    """RFC 3550 §6.4.2 RR."""

    ssrc: int
    reports: list[ReportBlock] = field(default_factory=list)

    def serialize(self) -> bytes:
        body = _SSRC.pack(self.ssrc) + b"".join(r.serialize() for r in self.reports)
        return _header(len(self.reports), RTCP_RR, len(body)) + body

    @classmethod
    def parse(cls, data: bytes, pos: int, end: int, count: int) -> ReceiverReport:
        if pos + 4 > end:
            raise MediaParseError("RTCP RR shorter than its SSRC")
        (ssrc,) = _SSRC.unpack_from(data, pos)
        return cls(ssrc, _parse_blocks(data, pos + 4, end, count))


@dataclass(slots=True)
class SdesChunk:
    """One SDES chunk: an SSRC and its (item type, value) pairs (RFC 3550 §6.5)."""

    ssrc: int
    items: list[tuple[int, bytes]] = field(default_factory=list)

    @property
    def cname(self) -> str | None:
        for item_type, value in self.items:
            if item_type == SDES_CNAME:
                return value.decode("utf-8", "replace")
        return None


@dataclass(slots=True)
class SourceDescription:
    """RFC 3550 §6.5 SDES."""

    chunks: list[SdesChunk] = field(default_factory=list)

    @classmethod
    def with_cname(cls, ssrc: int, cname: str) -> SourceDescription:
        return cls([SdesChunk(ssrc, [(SDES_CNAME, cname.encode())])])

    def serialize(self) -> bytes:
        body = bytearray()
        for chunk in self.chunks:
            body += _SSRC.pack(chunk.ssrc)
            for item_type, value in chunk.items:
                if len(value) > 255:
                    raise ValueError("SDES item longer than 255 bytes")
                body.append(item_type)
                body.append(len(value))
                body += value
            # §6.5: a null item ends the chunk; pad with nulls to the next 32-bit boundary.
            body += bytes(4 - len(body) % 4)
        return _header(len(self.chunks), RTCP_SDES, len(body)) + bytes(body)

    @classmethod
    def parse(cls, data: bytes, pos: int, end: int, count: int) -> SourceDescription:
        chunks: list[SdesChunk] = []
        for _ in range(count):
            if pos + 4 > end:
                raise MediaParseError("RTCP SDES chunk truncated")
            (ssrc,) = _SSRC.unpack_from(data, pos)
            pos += 4
            items: list[tuple[int, bytes]] = []
            while True:
                if pos >= end:
                    raise MediaParseError("RTCP SDES chunk without its end item")
                item_type = data[pos]
                if item_type == SDES_END:
                    break
                if pos + 2 > end or pos + 2 + data[pos + 1] > end:
                    raise MediaParseError("RTCP SDES item overruns the packet")
                length = data[pos + 1]
                items.append((item_type, bytes(data[pos + 2 : pos + 2 + length])))
                pos += 2 + length
            pos += 4 - pos % 4  # the end item and its padding up to the 32-bit boundary
            chunks.append(SdesChunk(ssrc, items))
        return cls(chunks)


@dataclass(slots=True)
class Bye:
    """RFC 3550 §6.6 BYE with an optional reason."""

    ssrcs: list[int]
    reason: str | None = None

    def serialize(self) -> bytes:
        body = b"".join(_SSRC.pack(s) for s in self.ssrcs)
        if self.reason is not None:
            text = self.reason.encode()[:255]
            body += bytes((len(text),)) + text
            body += bytes(-len(body) % 4)
        return _header(len(self.ssrcs), RTCP_BYE, len(body)) + body

    @classmethod
    def parse(cls, data: bytes, pos: int, end: int, count: int) -> Bye:
        if pos + 4 * count > end:
            raise MediaParseError("RTCP BYE SSRC list overruns the packet")
        ssrcs = [_SSRC.unpack_from(data, pos + 4 * i)[0] for i in range(count)]
        pos += 4 * count
        reason = None
        if pos < end:
            length = data[pos]
            if pos + 1 + length > end:
                raise MediaParseError("RTCP BYE reason overruns the packet")
            reason = bytes(data[pos + 1 : pos + 1 + length]).decode("utf-8", "replace")
        return cls(ssrcs, reason)


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Bye

_PARSERS: dict[int, Callable[[bytes, int, int, int], RtcpPacket]] = {
    RTCP_SR: SenderReport.parse,
    RTCP_RR: ReceiverReport.parse,
    RTCP_SDES: SourceDescription.parse,
    RTCP_BYE: Bye.parse,
}


def parse_compound(data: bytes) -> list[RtcpPacket]:
    """Parse a compound RTCP packet (RFC 3550 §6.1). Unknown and APP packets are skipped;
    a malformed packet anywhere makes the whole datagram invalid (A.2)."""
    if len(data) < 4:
        raise MediaParseError("RTCP packet shorter than its header")
    packets: list[RtcpPacket] = []
    pos = 0
    size = len(data)
    while pos < size:
        if pos + 4 > size:
            raise MediaParseError("trailing bytes after the last RTCP packet")
        b0, packet_type, words = _COMMON.unpack_from(data, pos)
        if b0 >> 6 != 2:
            raise MediaParseError(f"RTCP version {b0 >> 6} is not 2")
        end = pos + 4 + 4 * words
        if end > size:
            raise MediaParseError("RTCP length field overruns the datagram")
        body_end = end
        if b0 & 0x20:
            padding = data[end - 1]
            if padding == 0 or pos + 4 + padding > end:
                raise MediaParseError(f"invalid RTCP padding count {padding}")
            body_end -= padding
        parser = _PARSERS.get(packet_type)
        if parser is not None:
            packets.append(parser(data, pos + 4, body_end, b0 & 0x1F))
        pos = end
    return packets


def serialize_compound(packets: Iterable[RtcpPacket]) -> bytes:
    return b"".join(p.serialize() for p in packets)


# --- Transmission interval (RFC 3550 §6.3, A.7) ----------------------------------------------

RTCP_MIN_INTERVAL = 5.0
_SENDER_FRACTION = 0.25
_RECEIVER_FRACTION = 0.75
_COMPENSATION = math.e - 1.5  # §6.3.1: reconsideration converges below the target bandwidth
IP_UDP_OVERHEAD = 28  # §6.3.3: the average packet size includes the lower-layer headers


def rtcp_interval(
    members: int,
    senders: int,
    rtcp_bw: float,
    we_sent: bool,
    avg_rtcp_size: float,
    initial: bool,
    rand: Callable[[], float] = random.random,
) -> float:
    """RFC 3550 A.7 `rtcp_interval()`: the randomised delay (seconds) before the next report.
    `rtcp_bw` is in octets/s. The deterministic part is at least 5 s (2.5 s before the first
    report), then scaled by a uniform [0.5, 1.5) and divided by e - 3/2."""
    minimum = RTCP_MIN_INTERVAL / 2 if initial else RTCP_MIN_INTERVAL
    n = members
    if senders <= members * _SENDER_FRACTION:
        if we_sent:
            rtcp_bw *= _SENDER_FRACTION
            n = senders
        else:
            rtcp_bw *= _RECEIVER_FRACTION
            n -= senders
    t = avg_rtcp_size * n / rtcp_bw if rtcp_bw > 0 else minimum
    t = max(t, minimum)
    return t * (rand() + 0.5) / _COMPENSATION


class RtcpTimer:
    """Sans-IO RTCP schedule for one session: call `due(now)` from the outside tick; when it is
    True send a report and call `sent(...)`. The bandwidth is 5 % of the session bandwidth
    (§6.2) given in octets/s."""

    def __init__(
        self,
        now: float,
        rtcp_bw: float,
        rand: Callable[[], float] = random.random,
        initial_size: float = 100.0,
    ) -> None:
        self.rtcp_bw = rtcp_bw
        self.avg_rtcp_size = initial_size + IP_UDP_OVERHEAD
        self._rand = rand
        self.next_time = now + rtcp_interval(2, 1, rtcp_bw, False, self.avg_rtcp_size, True, rand)

    def due(self, now: float) -> bool:
        return now >= self.next_time

    def _update_size(self, size: int) -> None:
        # §6.3.3: avg_rtcp_size = 1/16 * packet_size + 15/16 * avg_rtcp_size
        self.avg_rtcp_size += (size + IP_UDP_OVERHEAD - self.avg_rtcp_size) / 16

    def received(self, size: int) -> None:
        self._update_size(size)

    def sent(self, now: float, size: int, members: int, senders: int, we_sent: bool) -> None:
        self._update_size(size)
        self.next_time = now + rtcp_interval(
            members, senders, self.rtcp_bw, we_sent, self.avg_rtcp_size, False, self._rand
        )
