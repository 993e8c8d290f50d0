"""One translator-mode call's SIP leg: Opus forwarded both ways, never re-encoded.

Translator mode is for trunks that take several SSRCs in one RTP session and mix them
themselves (what meet.jit.si runs with Voximplant; design.md "How audio flows"):

* meeting -> phone: every conference talker's Opus goes out as it came, on an SSRC of its own
  (`MeetingToPhoneTranslator`: payload type rewritten, sequence and timestamp kept continuous
  across the bridge's silence gaps). Nothing is decoded or mixed here.
* phone -> meeting: the phone's Opus goes to the conference leg as it came
  (`PhoneToMeetingTranslator` keeps the timestamps continuous when the phone's SSRC changes).
  The bridge needs the RFC 6464 level for active-speaker detection and silence dropping and a
  phone rarely sends one, so the phone's packets are decoded to measure it - a decode is a
  fifth of an encode (bench/README.md), and the encode is what translator mode saves.

The clock ticks it every 20 ms like a mixer-mode pipeline: the SIP sockets are read in a batch,
RFC 4733 digits queued for the phone go out on our own SSRC, and so does an Opus silence frame
now and then when the meeting has been silent for a while, so that the trunk's RTP timeout
(and a NAT binding) does not end the call.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import replace

import numpy as np

from media.codecs import create_encoder
from media.codecs.opus import OpusDecoder
from media.errors import MediaParseError
from media.frame import FRAME_SAMPLES, PCM
from media.level import SILENCE, LevelMeter, VoiceActivityDetector
from media.pipeline import LegSockets, PipelineConfig
from media.ports import AllocatedPorts, PortAllocator
from media.rtp import RtpPacket
from media.rtp_session import Address, RtpSessionConfig, RtpSessionCore
from media.translator import MeetingToPhoneTranslator, PhoneToMeetingTranslator

# Without anything from the meeting for this long, one silence frame goes to the phone on our
# own SSRC (Jigasi injects comfort noise after 20 s; trunks' RTP timeouts start around 30 s).
KEEPALIVE_INTERVAL = 10.0

# send_up(payload, timestamp, marker, level, voice): the conference leg's Opus sender.
SendUp = Callable[[bytes, int, bool, int | None, bool], None]


class TranslatorPipeline:
    """The SIP leg of one translator-mode call (Opus negotiated on both legs)."""

    def __init__(
        self,
        session: RtpSessionConfig,
        allocator: PortAllocator,
        now: float,
        send_up: SendUp,
        config: PipelineConfig | None = None,
        host: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if session.clock_rate != 48000:
            raise ValueError("translator mode forwards Opus (48 kHz RTP clock) only")
        self.config = cfg = config if config is not None else PipelineConfig()
        # Our own SSRC sends nothing while the meeting talks on the talkers' SSRCs: frames
        # flagged as silence are suppressed, with no comfort noise (the trunk may not have
        # negotiated CN); see tick().
        session = replace(session, silence_suppression=True, cn_payload_type=None)
        self.allocator = allocator
        self.ports: AllocatedPorts = allocator.allocate(now, rtcp_mux=session.rtcp_mux, host=host)
        self.sockets = LegSockets(self.ports, cfg, clock)
        self.rtp = RtpSessionCore(session, self.sockets.transmit, now, time.time() - clock())
        self.rtp.on_packet = self._from_phone
        self.send_up = send_up
        self.down = MeetingToPhoneTranslator(session.payload_type)
        # The uplink's SSRC is the conference leg's own (send_up builds its packets): this one
        # only keeps the phone's timestamps continuous.
        self.up = PhoneToMeetingTranslator(1, session.payload_type, None)
        # The level (RFC 6464) needs the audio, not its full band: decoded at 8 kHz, which
        # costs 17 µs a frame instead of 23 µs at 48 kHz (measured on a voiced 32 kbit/s
        # stream) and reads the same level.
        self._level_decoder = OpusDecoder(8000)
        self._meter = LevelMeter()
        self._vad = VoiceActivityDetector()
        self._silence = create_encoder("opus").encode(_SILENT_PCM)
        self.gated = False  # muted or on hold: the phone's audio does not reach the meeting
        self.closed = False
        self.forwarded_up = 0
        self._last_down = now

    @property
    def local_address(self) -> Address:
        return (self.ports.host, self.ports.rtp_port)

    def set_remote(self, host: str, port: int, rtcp_port: int | None = None) -> None:
        self.rtp.set_remote(host, port, rtcp_port)

    # -- phone -> meeting ------------------------------------------------------------------------

    def _from_phone(self, packet: RtpPacket, arrival: float) -> None:
        if self.gated or self.closed or packet.payload_type != self.rtp.config.payload_type:
            return  # comfort noise is not Opus: nothing to forward
        out = self.up.translate(packet, arrival)
        if out is None:
            return
        level: int | None
        try:
            pcm = self._level_decoder.decode(packet.payload)
            level = self._meter.level(pcm) if len(pcm) else SILENCE
        except MediaParseError:
            level = None  # forwarded anyway: the bridge decodes for itself
        voice = level is not None and self._vad.update(level)
        self.send_up(out.payload, out.timestamp, out.marker, level, voice)
        self.forwarded_up += 1

    # -- meeting -> phone ------------------------------------------------------------------------

    def forward(self, talker: Hashable, packet: RtpPacket, now: float) -> None:
        """A conference talker's packet to the phone, on the SSRC kept for ``talker`` (the
        endpoint id: a talker keeps its SSRC towards the phone across its own SSRC changes)."""
        if self.closed:
            return
        out = self.down.translate(talker, packet, now)
        if out is not None and self.rtp.forward(out, now):
            self._last_down = now

    def remove_talker(self, talker: Hashable) -> None:
        self.down.remove_source(talker)

    # -- the clock -------------------------------------------------------------------------------

    def tick(self, now: float, frames: int = 1) -> None:
        if self.closed:
            return
        self.sockets.drain(self.rtp.datagram_received, now)
        idle = now - self._last_down >= KEEPALIVE_INTERVAL
        # Our own SSRC: RFC 4733 digits when queued; a silence frame after a long quiet spell;
        # otherwise nothing (silence), its timestamp still following the clock.
        self.rtp.send_frame(self._silence, FRAME_SAMPLES * frames, now, silence=not idle)
        if idle:
            self._last_down = now
        self.rtp.tick(now)

    def close(self, now: float, reason: str | None = None) -> None:
        if self.closed:
            return
        try:
            self.rtp.close(now, reason)
        finally:
            self.closed = True
            self.allocator.release(self.ports, now)


_SILENT_PCM: PCM = np.zeros(FRAME_SAMPLES, dtype=np.int16)

__all__ = ["KEEPALIVE_INTERVAL", "TranslatorPipeline"]
