"""The plain-RTP session of the SIP leg: symmetric RTP, sender, receiver, RTCP, RFC 4733, SRTP.

`RtpSessionCore` is sans-IO: datagrams come in through `datagram_received(...)` with the time
passed in, and go out through the `transmit(channel, data, address)` callable it was given.
`RtpSession` is the thin asyncio shell that owns the two (or, with rtcp-mux, one) UDP sockets.

Nothing here runs a timer: the process-wide 20 ms clock calls `send_frame()` for audio and
`tick(now)` for RTCP on every session. media/ knows nothing of SIP: the remote address, payload
types, direction and SRTP keys come from the negotiation as plain values.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from media.dtmf import DtmfDigit, DtmfReceiver, DtmfSender
from media.errors import MediaParseError
from media.ports import AllocatedPorts, PortAllocator
from media.rtcp import (
    Bye,
    ReceiverReport,
    ReportBlock,
    RtcpPacket,
    RtcpTimer,
    SenderReport,
    SourceDescription,
    is_rtcp,
    ntp_from_unix,
    parse_compound,
    serialize_compound,
)
from media.rtp import RTP_FIXED_HEADER, RTP_HEADER_SIZE, RtpPacket
from media.srtp import SrtpConfig, SrtpContext, SrtpError
from media.stats import ReceiverStats, SenderStats, SeqStatus

logger = logging.getLogger(__name__)

_pack_header = RTP_FIXED_HEADER.pack

Address = tuple[str, int]
# As a socket gives it: (host, port), or IPv6's (host, port, flowinfo, scope_id).
SocketAddress = tuple[Any, ...]
CN_PAYLOAD_TYPE = 13  # RFC 3551 §6 static payload type for RFC 3389 comfort noise
CN_SILENT_LEVEL = 127  # RFC 3389 §3: noise level in -dBov; 127 = nothing audible

CHANNEL_RTP = 0
CHANNEL_RTCP = 1

_NEVER = float("-inf")


class Direction(enum.Enum):
    """The negotiated direction from OUR side (RFC 3264 §6.1): after we answer `recvonly` or
    `inactive` (the peer holds us) we must not send RTP; RTCP continues (§5.1)."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    @property
    def sends(self) -> bool:
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def receives(self) -> bool:
        return self in (Direction.SENDRECV, Direction.RECVONLY)


class MuteKeepalive(enum.Enum):
    """What keeps the NAT binding alive while muted: a silent codec frame every tick, or an
    RFC 3389 comfort-noise packet every `cn_interval` seconds."""

    SILENCE = "silence"
    CN = "cn"


@dataclass
class RtpSessionConfig:
    payload_type: int
    clock_rate: int  # RTP clock of the codec (8000 for G.722 too, RFC 3551 §4.5.2)
    ptime_ms: int = 20
    extra_payload_types: frozenset[int] = frozenset()  # other negotiated PTs accepted
    telephone_event_pt: int | None = None
    telephone_event_clock_rate: int | None = None  # default: clock_rate
    cn_payload_type: int | None = CN_PAYLOAD_TYPE  # accepted on receive, used for keepalive
    rtcp_mux: bool = False
    mute_keepalive: MuteKeepalive = MuteKeepalive.SILENCE
    silence_payload: bytes | None = None  # one encoded silent frame (needed for SILENCE)
    silence_suppression: bool = False  # send CN instead of frames flagged as silence
    cn_interval: float = 1.0
    latch_packets: int = 3  # consecutive packets (one SSRC) needed to latch to a new address
    cname: str = ""
    srtp: SrtpConfig | None = None
    session_bandwidth: float = 80_000.0  # bit/s; RTCP gets 5 % of it (RFC 3550 §6.2)
    dtmf_duration_ms: int = 100
    dtmf_gap_ms: int = 60
    dtmf_volume: int = 10

    @property
    def event_clock_rate(self) -> int:
        return self.telephone_event_clock_rate or self.clock_rate


@dataclass
class RtpSessionCounters:
    packets_received: int = 0
    octets_received: int = 0
    packets_sent: int = 0
    rtcp_received: int = 0
    rtcp_sent: int = 0
    malformed_rtp: int = 0
    malformed_rtcp: int = 0
    srtp_failures: int = 0  # received packets failing authentication / replay checks
    srtp_protect_failures: int = 0
    foreign_dropped: int = 0  # from an address other than the latched one, not (yet) latched
    unknown_payload_type: int = 0
    not_receiving: int = 0  # dropped: our direction does not receive
    duplicates: int = 0
    ssrc_changes: int = 0
    relatches: int = 0
    dtmf_received: int = 0
    dtmf_sent: int = 0
    forwarded: int = 0  # translator mode: other sources' packets sent as they are
    byes_received: int = 0
    socket_errors: int = 0
    internal_errors: int = 0
    last_received: float | None = None


@dataclass
class _Candidate:
    address: Address
    ssrc: int
    count: int = 1


Transmit = Callable[[int, bytes, Address], None]
# (sequence, timestamp, payload, marker, level, arrival, voice, comfort noise): the arguments
# of `JitterBuffer.put_valid`; level and voice are None (no header extension on this path).
AudioFields = Callable[[int, int, bytes, bool, "int | None", float, "bool | None", bool], None]
_unpack_fixed = struct.Struct("!xBHII").unpack_from  # the fixed header after its first octet


class RtpSessionCore:
    """Sans-IO RTP session. Consumers set `on_packet(packet, now)` (each valid audio or CN
    packet, e.g. into a jitter buffer), `on_new_stream(ssrc)`, `on_dtmf(digit)`, `on_bye(reason)`.
    """

    def __init__(
        self,
        config: RtpSessionConfig,
        transmit: Transmit,
        now: float,
        ntp_offset: float = 0.0,
        ssrc: int | None = None,
        rand: random.Random | None = None,
    ) -> None:
        self.config = config
        self._transmit = transmit
        self._rand = rand or random.SystemRandom()
        self._ntp_offset = ntp_offset  # unix time = now + ntp_offset
        # RFC 3550 §5.1: random SSRC, initial sequence number and timestamp.
        self.ssrc = ssrc if ssrc is not None else self._rand.getrandbits(32)
        self._seq = self._rand.getrandbits(16)
        self._timestamp = self._rand.getrandbits(32)
        self.cname = config.cname or f"pygasi-{self._rand.getrandbits(48):012x}"
        self._audio_pts = frozenset({config.payload_type, *config.extra_payload_types})
        if config.cn_payload_type is not None:
            self._audio_pts |= {config.cn_payload_type}
        # What the fields fast path (`on_audio`) may take: never a telephone-event.
        self._plain_audio_pts = self._audio_pts - {config.telephone_event_pt}
        self._srtp = SrtpContext(config.srtp) if config.srtp is not None else None
        # Consumer callbacks (plain attributes: the receive path is hot).
        self.on_packet: Callable[[RtpPacket, float], None] | None = None
        # Optional, for a consumer that wants only the fields of a plain audio packet (a
        # jitter buffer's `put_valid`): the latched peer's current stream without CSRCs,
        # extension or padding - a phone's every packet - is then delivered without building
        # an RtpPacket. Every other packet still goes to `on_packet`.
        self.on_audio: AudioFields | None = None
        self.on_new_stream: Callable[[int], None] | None = None
        self.on_dtmf: Callable[[DtmfDigit], None] | None = None
        self.on_bye: Callable[[str | None], None] | None = None
        self.counters = RtpSessionCounters()
        self._direction = Direction.SENDRECV
        self._sends = self._receives = True  # the direction's, read per packet
        self.muted = False
        self.closed = False
        self._need_marker = True  # the first packet starts a talk spurt (RFC 3551 §4.1)
        self._last_keepalive = float("-inf")
        # Where we send: the negotiated address until the peer's packets show the real one.
        self.remote_rtp: Address | None = None
        self.remote_rtcp: Address | None = None
        self.latched_rtp: Address | None = None
        self.latched_rtcp: Address | None = None
        self._candidate: _Candidate | None = None
        # Receive side: one stream at a time (a new SSRC replaces it).
        self.remote_ssrc: int | None = None
        self.receiver_stats: ReceiverStats | None = None
        self.sender_stats = SenderStats(self.ssrc, config.clock_rate)
        self.remote_report: ReportBlock | None = None  # the peer's last report about us
        self._dtmf_rx = DtmfReceiver(config.event_clock_rate)
        self._dtmf_queued = False  # digits were queued and the sender may still be busy
        self._dtmf_tx = DtmfSender(
            config.event_clock_rate,
            ptime_ms=config.ptime_ms,
            duration_ms=config.dtmf_duration_ms,
            gap_ms=config.dtmf_gap_ms,
            volume=config.dtmf_volume,
        )
        self.rtcp_timer = RtcpTimer(now, config.session_bandwidth * 0.05 / 8, self._rand.random)
        self._sent_marks = [0, 0]  # packets sent at the last two reports (§6.4: SR or RR)

    # -- negotiation inputs --

    def set_remote(self, host: str, port: int, rtcp_port: int | None = None) -> None:
        """The address the negotiation gave (SDP c=/m=, a=rtcp). A changed address is a new
        media endpoint (e.g. after a transfer): latching starts over."""
        rtp = (host, port)
        if self.config.rtcp_mux:
            rtcp = rtp
        else:
            rtcp = (host, rtcp_port if rtcp_port is not None else port + 1)
        if rtp != self.remote_rtp:
            self.latched_rtp = None
            self.latched_rtcp = None
            self._candidate = None
        self.remote_rtp = rtp
        self.remote_rtcp = rtcp

    @property
    def direction(self) -> Direction:
        return self._direction

    @direction.setter
    def direction(self, direction: Direction) -> None:
        self._direction = direction
        self._sends = direction.sends
        self._receives = direction.receives

    def set_direction(self, direction: Direction | str) -> None:
        direction = Direction(direction)
        if not direction.sends and self._sends:
            self._need_marker = True
            self._dtmf_tx.abort()  # an event cut by hold would end with a stale timestamp
        self.direction = direction

    def set_muted(self, muted: bool) -> None:
        if muted and not self.muted:
            self._last_keepalive = float("-inf")
        self.muted = muted

    @property
    def rtp_destination(self) -> Address | None:
        return self.latched_rtp or self.remote_rtp

    @property
    def rtcp_destination(self) -> Address | None:
        if self.config.rtcp_mux:
            return self.rtp_destination
        return self.latched_rtcp or self.remote_rtcp

    @property
    def rtt(self) -> float | None:
        return self.sender_stats.rtt

    def count_late(self) -> None:
        """The jitter buffer dropped a packet that came too late (RFC 3550 keeps no such
        counter; the buffer owns the decision)."""
        if self.receiver_stats is not None:
            self.receiver_stats.count_late()

    # -- sending --

    def _send_rtp(
        self, payload_type: int, payload: bytes, marker: bool, timestamp: int, now: float
    ) -> None:
        dest = self.latched_rtp or self.remote_rtp
        if dest is None:
            return
        # Our own packets have no CSRC, extension or padding: the fixed header is enough
        # (RtpPacket(...).serialize() costs 0.31 µs, this 0.07 µs).
        # rtp_header(), inline: this runs for every packet.
        b1 = (0x80 if marker else 0) | payload_type
        data = _pack_header(0x80, b1, self._seq, timestamp, self.ssrc) + payload
        self._seq = (self._seq + 1) & 0xFFFF
        if self._srtp is not None:
            try:
                data = self._srtp.protect(data)
            except SrtpError:
                self.counters.srtp_protect_failures += 1
                return
        self._transmit(CHANNEL_RTP, data, dest)
        self.counters.packets_sent += 1

    def _keepalive(self, timestamp: int, now: float) -> None:
        pt = self.config.cn_payload_type
        if pt is None or now - self._last_keepalive < self.config.cn_interval:
            return
        self._last_keepalive = now
        self._send_rtp(pt, bytes((CN_SILENT_LEVEL,)), False, timestamp, now)
        self.sender_stats.on_sent(1, timestamp, now)

    def send_frame(
        self, payload: bytes, timestamp_increment: int, now: float, silence: bool = False
    ) -> None:
        """One tick of the outgoing stream. The timestamp advances on every call, sent or not,
        so the stream stays on the media clock through hold, mute and DTMF."""
        ts = self._timestamp
        self._timestamp = (ts + timestamp_increment) & 0xFFFFFFFF
        if self.closed:
            return
        if not self._sends or (self.latched_rtp or self.remote_rtp) is None:
            self._need_marker = True
            return
        if self._dtmf_queued:  # (cheaper than asking the sender every tick)
            if self._dtmf_tx.busy:
                events = self._dtmf_tx.tick(ts)
                if events:
                    pt = self.config.telephone_event_pt
                    assert pt is not None  # queue() refused digits without a negotiated PT
                    for ev in events:
                        self._send_rtp(pt, ev.payload, ev.marker, ev.timestamp, now)
                        self.counters.dtmf_sent += 1
                    self.sender_stats.on_sent(len(events[0].payload), ts, now)
                    return
            else:
                self._dtmf_queued = False
        if self.muted:
            self._need_marker = True
            silent = self.config.silence_payload
            if self.config.mute_keepalive is MuteKeepalive.SILENCE and silent is not None:
                self._send_rtp(self.config.payload_type, silent, False, ts, now)
                self.sender_stats.on_sent(len(silent), ts, now)
            else:
                self._keepalive(ts, now)
            return
        if silence:
            self._need_marker = True
            if self.config.silence_suppression:
                self._keepalive(ts, now)
                return
        else:
            self._last_keepalive = _NEVER
        marker = self._need_marker and not silence
        if marker:
            self._need_marker = False
        self._send_rtp(self.config.payload_type, payload, marker, ts, now)
        # sender_stats.on_sent(), inline: this runs for every packet.
        sender = self.sender_stats
        sender.packets += 1
        sender.octets += len(payload)
        sender.last_timestamp = ts
        sender.last_send_time = now

    def forward(self, packet: RtpPacket, now: float) -> bool:
        """Send another source's packet with its own SSRC, sequence and timestamp (an RTP
        translator, RFC 3550 §7.1: translator mode sends one SSRC per conference talker and
        the trunk mixes). Hold and latching apply as for our own stream; SRTP protects it
        (the outbound policy takes any SSRC). True when it was sent."""
        dest = self.rtp_destination
        if self.closed or dest is None or not self._sends:
            return False
        data = packet.serialize()
        if self._srtp is not None:
            try:
                data = self._srtp.protect(data)
            except SrtpError:
                self.counters.srtp_protect_failures += 1
                return False
        self._transmit(CHANNEL_RTP, data, dest)
        self.counters.forwarded += 1
        return True

    def send_dtmf(self, digits: str, duration_ms: int | None = None) -> None:
        """Queue RFC 4733 digits; they replace the audio frames of the next ticks on the
        same SSRC and sequence. Raises ValueError without a negotiated telephone-event PT."""
        if self.config.telephone_event_pt is None:
            raise ValueError("no telephone-event payload type negotiated (use SIP INFO)")
        self._dtmf_tx.queue(digits, duration_ms)
        self._dtmf_queued = True  # until the sender is done with them

    @property
    def dtmf_pending(self) -> int:
        return self._dtmf_tx.pending

    # -- RTCP --

    def _ntp(self, now: float) -> int:
        return ntp_from_unix(now + self._ntp_offset)

    def _report(self, now: float) -> list[RtcpPacket]:
        blocks = []
        stats = self.receiver_stats
        if stats is not None and stats.received:
            blocks.append(stats.report_block(now))
        sent = self.sender_stats.packets
        we_sent = sent > self._sent_marks[0]
        self._sent_marks = [self._sent_marks[1], sent]
        report: RtcpPacket
        if we_sent:
            report = self.sender_stats.sender_report(now, self._ntp(now), blocks)
        else:
            report = ReceiverReport(self.ssrc, blocks)
        return [report, SourceDescription.with_cname(self.ssrc, self.cname)]

    def _send_rtcp(self, packets: list[RtcpPacket], now: float) -> int:
        dest = self.rtcp_destination
        if dest is None:
            return 0
        data = serialize_compound(packets)
        if self._srtp is not None:
            try:
                data = self._srtp.protect_rtcp(data)
            except SrtpError:
                self.counters.srtp_protect_failures += 1
                return 0
        self._transmit(CHANNEL_RTP if self.config.rtcp_mux else CHANNEL_RTCP, data, dest)
        self.counters.rtcp_sent += 1
        return len(data)

    def tick(self, now: float) -> None:
        """Called by the process clock: sends SR/RR + SDES when the RFC 3550 §6.3 interval
        has elapsed (on hold too: RTCP keeps flowing, RFC 3264 §5.1)."""
        if self.closed or now < self.rtcp_timer.next_time:  # rtcp_timer.due(), inline
            return
        packets = self._report(now)
        size = self._send_rtcp(packets, now)
        we_sent = isinstance(packets[0], SenderReport)
        senders = int(we_sent) + int(self.receiver_stats is not None)
        self.rtcp_timer.sent(now, size, 2, senders, we_sent)

    def close(self, now: float, reason: str | None = None) -> None:
        """Send the final report with a BYE (RFC 3550 §6.6) and stop."""
        if self.closed:
            return
        try:
            self._send_rtcp([*self._report(now), Bye([self.ssrc], reason)], now)
        finally:
            self.closed = True

    # -- receiving --

    def datagram_received(self, channel: int, data: bytes, addr: SocketAddress, now: float) -> None:
        """Feed one datagram from the RTP (or RTCP) socket. Bad packets are counted and
        dropped; only an exception raised by a consumer callback propagates."""
        if self.closed:
            return
        if channel == CHANNEL_RTCP or (self.config.rtcp_mux and is_rtcp(data)):
            self._rtcp_received(data, addr, now)
        else:
            self._rtp_received(data, addr, now)

    def _latch(self, addr: Address) -> bool:
        """Symmetric RTP (RFC 4961, "comedia" latching). Returns False when the packet must be
        dropped (foreign address, not latched)."""
        if addr == self.latched_rtp:
            self._candidate = None
            return True
        if self.latched_rtp is None and addr == self.remote_rtp:
            self.latched_rtp = addr
            self._candidate = None
            return True
        return False

    def _rtp_received(self, data: bytes, address: SocketAddress, now: float) -> None:
        if self._srtp is not None:
            try:
                data = self._srtp.unprotect(data)
            except SrtpError:
                self.counters.srtp_failures += 1
                return
        on_audio = self.on_audio
        if on_audio is not None and len(data) > RTP_HEADER_SIZE and data[0] == 0x80:
            # Version 2, no padding, extension or CSRCs (RFC 3550 §5.1): a phone's every
            # packet. From the latched address, on the current stream, of a negotiated audio
            # type, it needs none of the checks below; the fields go out without an RtpPacket
            # (~100 bytecodes less per packet). Anything else takes the general path.
            b1, seq, timestamp, ssrc = _unpack_fixed(data)
            pt = b1 & 0x7F
            stats = self.receiver_stats
            if (
                address == self.latched_rtp
                and ssrc == self.remote_ssrc
                and stats is not None
                and self._receives
                and pt in self._plain_audio_pts
            ):
                self._candidate = None
                size = len(data) - RTP_HEADER_SIZE
                status = stats.update(seq, timestamp, now, size)
                counters = self.counters
                if status is not SeqStatus.ACCEPTED and not status.usable:
                    counters.duplicates += status is SeqStatus.DUPLICATE
                    return
                counters.packets_received += 1
                counters.octets_received += size
                counters.last_received = now
                on_audio(
                    seq,
                    timestamp,
                    data[RTP_HEADER_SIZE:],
                    b1 > 0x7F,
                    None,
                    now,
                    None,
                    pt == CN_PAYLOAD_TYPE,
                )
                return
        try:
            pkt = RtpPacket.parse(data)
        except MediaParseError:
            self.counters.malformed_rtp += 1
            return
        addr: Address = (address[0], address[1])
        if addr == self.latched_rtp:
            self._candidate = None  # _latch(), inline for the common case
        elif not self._latch(addr):
            cand = self._candidate
            if cand is not None and cand.address == addr and cand.ssrc == pkt.ssrc:
                cand.count += 1
            else:
                cand = self._candidate = _Candidate(addr, pkt.ssrc)
            if cand.count >= self.config.latch_packets:
                if self.latched_rtp is not None:
                    self.counters.relatches += 1
                    logger.info("RTP re-latched from %s to %s", self.latched_rtp, addr)
                self.latched_rtp = addr
                self._candidate = None
            elif self.latched_rtp is not None:
                # Latched elsewhere: a few stray packets must not hijack the call.
                self.counters.foreign_dropped += 1
                return
            # Not latched yet: the candidate's packets are the peer's until proven otherwise.
        if not self._receives:
            self.counters.not_receiving += 1
            return
        pt = pkt.payload_type
        is_event = pt == self.config.telephone_event_pt
        if not is_event and pt not in self._audio_pts:
            self.counters.unknown_payload_type += 1
            return
        stats = self.receiver_stats
        if pkt.ssrc != self.remote_ssrc or stats is None:
            stats = self._new_stream(pkt.ssrc)
        if is_event:
            status = stats.update(pkt.sequence, pkt.timestamp, now, len(pkt.payload), False)
            if not status.usable:
                self.counters.duplicates += status is SeqStatus.DUPLICATE
                return
            try:
                digit = self._dtmf_rx.on_packet(pkt.timestamp, pkt.payload)
            except MediaParseError:
                self.counters.malformed_rtp += 1
                return
            self.counters.last_received = now
            if digit is not None:
                self.counters.dtmf_received += 1
                if self.on_dtmf is not None:
                    self.on_dtmf(digit)
            return
        size = len(pkt.payload)
        status = stats.update(pkt.sequence, pkt.timestamp, now, size)
        if status is not SeqStatus.ACCEPTED and not status.usable:
            self.counters.duplicates += status is SeqStatus.DUPLICATE
            return
        counters = self.counters
        counters.packets_received += 1
        counters.octets_received += size
        counters.last_received = now
        if self.on_packet is not None:
            self.on_packet(pkt, now)

    def _new_stream(self, ssrc: int) -> ReceiverStats:
        # RFC 3550 §8.2 / A.1: a new SSRC is a new source with its own sequence space.
        if self.remote_ssrc is not None:
            self.counters.ssrc_changes += 1
        self.remote_ssrc = ssrc
        stats = self.receiver_stats = ReceiverStats(ssrc, self.config.clock_rate)
        self._dtmf_rx.reset()
        if self.on_new_stream is not None:
            self.on_new_stream(ssrc)
        return stats

    def _rtcp_received(self, data: bytes, address: SocketAddress, now: float) -> None:
        if self._srtp is not None:
            try:
                data = self._srtp.unprotect_rtcp(data)
            except SrtpError:
                self.counters.srtp_failures += 1
                return
        try:
            packets = parse_compound(data)
        except MediaParseError:
            self.counters.malformed_rtcp += 1
            return
        self.counters.rtcp_received += 1
        self.rtcp_timer.received(len(data))
        addr: Address = (address[0], address[1])
        for p in packets:
            if isinstance(p, SenderReport | ReceiverReport):
                if self.remote_ssrc is None or p.ssrc == self.remote_ssrc:
                    # Symmetric RTCP (RFC 4961): answer where the peer's reports come from.
                    self.latched_rtcp = addr
                if isinstance(p, SenderReport) and p.ssrc == self.remote_ssrc:
                    assert self.receiver_stats is not None
                    self.receiver_stats.on_sender_report(p.ntp_timestamp, now)
                for block in p.reports:
                    if block.ssrc == self.ssrc:
                        self.remote_report = block
                        self.sender_stats.on_report_block(block, self._ntp(now))
            elif isinstance(p, Bye) and self.remote_ssrc in p.ssrcs:
                self.counters.byes_received += 1
                if self.on_bye is not None:
                    self.on_bye(p.reason)


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self, session: RtpSession, channel: int) -> None:
        self._session = session
        self._channel = channel

    def datagram_received(self, data: bytes, addr: SocketAddress) -> None:
        self._session._datagram(self._channel, data, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable while the peer is not listening yet: normal early in a call.
        self._session.counters.socket_errors += 1


class RtpSession(RtpSessionCore):
    """The asyncio shell: sockets from the allocator, datagrams in and out. Create it with
    `await RtpSession.open(allocator, config)`; `close()` sends BYE and releases the ports."""

    def __init__(
        self,
        config: RtpSessionConfig,
        allocator: PortAllocator,
        ports: AllocatedPorts,
        loop: asyncio.AbstractEventLoop,
        ssrc: int | None = None,
    ) -> None:
        now = loop.time()
        super().__init__(config, self._sendto, now, time.time() - now, ssrc)
        self._loop = loop
        self._allocator = allocator
        self.ports = ports
        self._transports: list[asyncio.DatagramTransport | None] = [None, None]

    @classmethod
    async def open(
        cls,
        allocator: PortAllocator,
        config: RtpSessionConfig,
        host: str | None = None,
        ssrc: int | None = None,
    ) -> RtpSession:
        loop = asyncio.get_running_loop()
        ports = allocator.allocate(loop.time(), rtcp_mux=config.rtcp_mux, host=host)
        session = cls(config, allocator, ports, loop, ssrc)
        try:
            rtp_transport, _ = await loop.create_datagram_endpoint(
                lambda: _Endpoint(session, CHANNEL_RTP), sock=ports.rtp_socket
            )
            session._transports[CHANNEL_RTP] = rtp_transport
            if ports.rtcp_socket is not None:
                rtcp_transport, _ = await loop.create_datagram_endpoint(
                    lambda: _Endpoint(session, CHANNEL_RTCP), sock=ports.rtcp_socket
                )
                session._transports[CHANNEL_RTCP] = rtcp_transport
        except BaseException:
            session._close_transports()
            allocator.release(ports, loop.time())
            raise
        return session

    @property
    def local_host(self) -> str:
        return self.ports.host

    @property
    def local_rtp_port(self) -> int:
        return self.ports.rtp_port

    @property
    def local_rtcp_port(self) -> int:
        return self.ports.rtcp_port if self.ports.rtcp_port is not None else self.ports.rtp_port

    def _sendto(self, channel: int, data: bytes, addr: Address) -> None:
        transport = self._transports[channel]
        if transport is not None:
            transport.sendto(data, addr)

    def _datagram(self, channel: int, data: bytes, addr: SocketAddress) -> None:
        try:
            self.datagram_received(channel, data, addr, self._loop.time())
        except Exception:
            # A consumer bug must not escape into the event loop's reader callback.
            self.counters.internal_errors += 1
            logger.exception("RTP session %08x: error handling a datagram", self.ssrc)

    def time(self) -> float:
        """The clock the session's `now` arguments are read on (the loop's)."""
        return self._loop.time()

    def _close_transports(self) -> None:
        for transport in self._transports:
            if transport is not None:
                transport.close()

    def close(self, now: float, reason: str | None = None) -> None:
        """BYE, close the sockets and return the ports to the allocator (into quarantine)."""
        if self.closed:
            return
        try:
            super().close(now, reason)
        finally:
            self._close_transports()
            self._allocator.release(self.ports, now, close_sockets=False)
