"""The per-call media pipeline: the SIP leg's RTP to and from the room mixer, and the phone's
Opus stream towards the conference.

::

    phone --RTP--> PolledUdp -> RtpSessionCore -> JitterBuffer (decode, conceal, -> 48 kHz)
                                                        |  pull()      (the mixer's local source)
                                                  RoomMixer  ... other calls, bridge sources
                                                        |  on_mix(), then on_phone()
    phone <--RTP-- RtpSessionCore <- encode <- FrameResampler(48 kHz -> codec rate) <- leg.mix
    bridge <-Opus- ConferenceUplink (RFC 6464 level extension) <- leg.phone_frame

One resampling for many calls. Every call whose phone is silent hears the same thing, the
room's full mix (`leg.shared`). It is resampled once per room and codec rate, and for G.711
(stateless) encoded once, whatever the number of such calls: in a large room that is most of
them. The switch is exact, so a phone hears bit for bit what its own resampler would have
produced: a call whose phone starts talking leaves the shared stream for its own mix-minus
after feeding its own resampler the previous full-mix frame (the mixes were equal while the
phone was silent, so that is the shared filter history); a call joining the shared stream
resamples its first full-mix frame itself, after which both filter histories hold the same
samples (a 20 ms frame is longer than the FIR's history at every rate pygasi uses; with the
soxr engine the switch is merely smooth).

Receiving without a callback per packet. An asyncio datagram callback costs 35-60 µs per packet
(reference/anchors.md §2, §6.4) and wakes the loop 50 times a second per call. The SIP leg's
sockets are instead drained once per tick, right before the jitter buffer is pulled: a packet
is available to the pull exactly when it would have been with callbacks (it arrived before the
tick), and reading it costs a non-blocking `recvmsg` (~3 µs, plus ~2 µs for the empty read that
ends the batch). The kernel stamps each datagram on arrival (Linux SO_TIMESTAMPNS), so the
jitter buffer and the RTCP statistics (RFC 3550 A.8) see true arrival times, not tick times.
RTCP sockets are drained every few ticks (their arrival times come from the kernel too). Sends
go straight to `socket.sendto` (~4 µs), not through an asyncio transport.

Towards the conference, `ConferenceUplink` encodes the phone's frames to Opus with the
ssrc-audio-level extension the bridge needs (RFC 6464). Digital silence (a muted or silent
phone) is sent for a few packets at level 127 so that the bridge sees the speaker fall silent,
then suppressed until audio resumes (RFC 3551 §4.1: the timestamp keeps running, the sequence
number does not, the first packet of the next talk-spurt carries the marker). The bridge drops
such packets anyway (reference/jingle.md), and an Opus encode of silence costs as much as one of
speech.

Sans-IO apart from the sockets: time is passed in by the process clock, which drives the
pipeline either through its room's mixer (`attach`) or directly (`tick`, a call not in a room).
"""

from __future__ import annotations

import socket
import struct
import sys
import time
import weakref
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

import numpy as np

from media.codecs import (
    PCMA,
    PCMU,
    CodecInfo,
    codec_info,
    create_decoder,
    create_encoder,
    info_for_payload_type,
)
from media.codecs import Encoder as CodecEncoder
from media.codecs.opus import OpusConfig, OpusEncoder
from media.frame import FRAME_SAMPLES, PCM, SAMPLE_RATE
from media.jitterbuffer import FrameStatus, JitterBuffer, JitterConfig, JitterFrame
from media.level import SILENCE, LevelMeter, VoiceActivityDetector
from media.mixer import MixerLeg, RoomMixer
from media.ports import AllocatedPorts, PortAllocator
from media.resample import FrameResampler
from media.rtp import RtpPacket, encode_audio_level
from media.rtp_session import (
    CHANNEL_RTCP,
    CHANNEL_RTP,
    CN_PAYLOAD_TYPE,
    Address,
    RtpSessionConfig,
    RtpSessionCore,
)

# Linux: SO_TIMESTAMPNS (asm-generic/socket.h; not exported by Python's socket module) delivers
# a struct timespec of CLOCK_REALTIME with each datagram.
_SO_TIMESTAMPNS = 35
_TIMESPEC = struct.Struct("@ll")
MAX_DATAGRAM = 2048


class PolledUdp:
    """A non-blocking UDP socket read in batches by the clock, with kernel arrival times."""

    def __init__(
        self,
        sock: socket.socket,
        channel: int,
        kernel_timestamps: bool = True,
        max_batch: int = 32,
    ) -> None:
        self.sock = sock
        self.channel = channel
        self.max_batch = max_batch  # bounded work per tick whatever a peer floods us with
        self.received = 0
        self.errors = 0
        self.timestamped = False
        sock.setblocking(False)
        if kernel_timestamps and sys.platform.startswith("linux"):
            try:
                sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
                self.timestamped = True
            except OSError:
                pass
        self._ancillary = socket.CMSG_SPACE(_TIMESPEC.size)

    def drain(
        self, deliver: Callable[[int, bytes, Address, float], None], now: float, offset: float
    ) -> int:
        """Read what is waiting; `deliver(channel, data, address, arrival)` for each datagram.
        `offset` converts the kernel's realtime stamps to the caller's clock (loop time)."""
        sock = self.sock
        channel = self.channel
        count = 0
        while count < self.max_batch:
            try:
                if self.timestamped:
                    data, ancillary, _, address = sock.recvmsg(MAX_DATAGRAM, self._ancillary)
                else:
                    data, address = sock.recvfrom(MAX_DATAGRAM)
                    ancillary = None
            except BlockingIOError:
                break
            except OSError:  # e.g. an ICMP error reported on the socket: nothing to read
                self.errors += 1
                count += 1
                continue
            arrival = now
            if ancillary:
                raw = ancillary[0][2]
                if len(raw) == _TIMESPEC.size:
                    seconds, nanoseconds = _TIMESPEC.unpack(raw)
                    stamped = seconds + nanoseconds * 1e-9 + offset
                    # A realtime clock step (NTP) must not throw arrivals far off: trust the
                    # stamp only near the tick.
                    if now - 1.0 < stamped < now + 0.1:
                        arrival = stamped
            count += 1
            self.received += 1
            deliver(channel, data, address, arrival)
        return count


class LegSockets:
    """A SIP leg's RTP socket (and RTCP socket unless rtcp-mux), read in batches when the
    clock drains them, written by its RTP session. Shared by the mixer-mode and the
    translator-mode pipelines."""

    def __init__(
        self, ports: AllocatedPorts, config: PipelineConfig, clock: Callable[[], float]
    ) -> None:
        self.config = config
        self._clock = clock
        self.rtp = PolledUdp(
            ports.rtp_socket, CHANNEL_RTP, config.kernel_timestamps, config.max_batch
        )
        self.rtcp: PolledUdp | None = None
        if ports.rtcp_socket is not None:
            self.rtcp = PolledUdp(
                ports.rtcp_socket, CHANNEL_RTCP, config.kernel_timestamps, config.max_batch
            )
        self.drains = 0
        self.send_errors = 0

    def drain(self, deliver: Callable[[int, bytes, Address, float], None], now: float) -> None:
        """Read what is waiting (RTCP every `rtcp_poll_ticks` drains)."""
        self.drains += 1
        offset = self._clock() - time.time()
        self.rtp.drain(deliver, now, offset)
        if self.rtcp is not None and self.drains % self.config.rtcp_poll_ticks == 0:
            self.rtcp.drain(deliver, now, offset)

    def transmit(self, channel: int, data: bytes, address: Address) -> None:
        polled = self.rtcp if channel == CHANNEL_RTCP and self.rtcp is not None else self.rtp
        try:
            polled.sock.sendto(data, address)
        except OSError:  # full socket buffer, unreachable network: the packet is lost
            self.send_errors += 1


@dataclass(slots=True)
class UplinkStats:
    frames: int = 0  # ticks seen
    sent: int = 0  # packets sent (Opus encodes)
    suppressed: int = 0  # silent frames not sent
    octets: int = 0


class ConferenceUplink:
    """The phone's audio towards the bridge: Opus, one packet per 20 ms, with the RFC 6464
    ssrc-audio-level extension. `send(packet)` is the conference leg's (it protects and sends);
    the SSRC is the one declared in Jingle, which is also the leg's bridge SSRC in the mixer."""

    def __init__(
        self,
        ssrc: int,
        send: Callable[[RtpPacket], None],
        payload_type: int = 111,
        audio_level_id: int | None = 1,
        opus: OpusConfig | None = None,
        silence_packets: int = 3,
        initial_sequence: int = 0,
        initial_timestamp: int = 0,
    ) -> None:
        self.ssrc = ssrc
        self.send = send
        self.payload_type = payload_type
        self.audio_level_id = audio_level_id
        self.encoder = OpusEncoder(opus)
        self.silence_packets = silence_packets
        self.muted = False
        self.stats = UplinkStats()
        self._seq = initial_sequence & 0xFFFF
        self._ts = initial_timestamp & 0xFFFFFFFF
        self._silent_run = 0
        self._marker = True  # the first packet starts a talk-spurt

    def frame(self, pcm: PCM | None, level: int, voice: bool, frames: int = 1) -> None:
        """One tick of the phone's audio (48 kHz) with its level in -dBov. `frames` > 1 after
        skipped ticks: the timestamp jumps by the skipped time."""
        stats = self.stats
        stats.frames += 1
        ts = (self._ts + FRAME_SAMPLES * (frames - 1)) & 0xFFFFFFFF
        self._ts = (ts + FRAME_SAMPLES) & 0xFFFFFFFF
        if pcm is None or self.muted:
            level, voice = SILENCE, False
        if level >= SILENCE and not voice:
            self._silent_run += 1
            if self._silent_run > self.silence_packets:
                stats.suppressed += 1
                self._marker = True  # RFC 3551 §4.1: the next packet starts a talk-spurt
                return
        else:
            self._silent_run = 0
        if pcm is None or self.muted:
            pcm = _ZEROS
        payload = self.encoder.encode(pcm)
        extensions = None
        if self.audio_level_id is not None:
            extensions = {self.audio_level_id: encode_audio_level(level, voice)}
        packet = RtpPacket(
            self.payload_type,
            self._seq,
            ts,
            self.ssrc,
            payload,
            self._marker,
            extensions=extensions,
        )
        self._marker = False
        self._seq = (self._seq + 1) & 0xFFFF
        stats.sent += 1
        stats.octets += len(payload)
        self.send(packet)


_ZEROS: PCM = np.zeros(FRAME_SAMPLES, dtype=np.int16)


_STATELESS = frozenset({PCMU.name.lower(), PCMA.name.lower()})


class _SharedDownlink:
    """The room's full mix at one codec's rate (and, for a stateless codec, encoded), computed
    at most once per tick for all the legs of a room that get the full mix."""

    def __init__(self, info: CodecInfo) -> None:
        self.resampler = FrameResampler(SAMPLE_RATE, info.sample_rate, info.frame_ms)
        self.encoder: CodecEncoder | None = (
            create_encoder(info.name) if info.name.lower() in _STATELESS else None
        )
        self.tick = -1
        self.pcm: PCM = np.zeros(info.frame_samples, dtype=np.int16)
        self.payload = b""
        self.users = 0  # legs served, over the downlink's lifetime

    def get(self, mixer: RoomMixer) -> PCM:
        tick = mixer.stats.ticks
        if self.tick != tick:
            self.tick = tick
            self.pcm = self.resampler.process(mixer.full_mix)
            if self.encoder is not None:
                self.payload = self.encoder.encode(self.pcm)
        self.users += 1
        return self.pcm


# Per room and codec (name, rate): the shared downlinks. Weak keys: a room that is gone takes
# its downlinks with it.
_SHARED: weakref.WeakKeyDictionary[RoomMixer, dict[tuple[str, int], _SharedDownlink]] = (
    weakref.WeakKeyDictionary()
)


def _shared_downlink(mixer: RoomMixer, info: CodecInfo) -> _SharedDownlink:
    downlinks = _SHARED.get(mixer)
    if downlinks is None:
        downlinks = _SHARED[mixer] = {}
    key = (info.name.lower(), info.sample_rate)
    downlink = downlinks.get(key)
    if downlink is None:
        downlink = downlinks[key] = _SharedDownlink(info)
    return downlink


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    jitter: JitterConfig = field(default_factory=JitterConfig)
    kernel_timestamps: bool = True
    rtcp_poll_ticks: int = 5  # RTCP sockets are drained every this many ticks
    max_batch: int = 32  # datagrams read per socket per drain
    share_downlink: bool = True  # calls hearing the full mix share its resampling/encoding


@dataclass(slots=True)
class PipelineStats:
    ticks: int = 0
    frames_sent: int = 0  # frames handed to the SIP leg's sender
    shared_frames: int = 0  # of which taken from the room's shared downlink
    drains: int = 0


class CallPipeline:
    """One call's media on the gateway: the SIP leg (RTP session, jitter buffer, codec,
    resamplers) and, optionally, the uplink of the phone's audio to the conference.

    Attach it to its room with `attach(mixer, leg_id)`; until then (or after `detach`) the
    clock may drive it with `tick(now, frames)`, which sends silence to the phone."""

    def __init__(
        self,
        session: RtpSessionConfig,
        allocator: PortAllocator,
        now: float,
        codec: str | CodecInfo | None = None,
        uplink: ConferenceUplink | None = None,
        config: PipelineConfig | None = None,
        host: str | None = None,
        ssrc: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = cfg = config if config is not None else PipelineConfig()
        if codec is None:
            info = info_for_payload_type(session.payload_type)
        else:
            info = codec if isinstance(codec, CodecInfo) else codec_info(codec)
        if info.clock_rate != session.clock_rate:
            raise ValueError(f"{info.name} has an RTP clock of {info.clock_rate} Hz")
        self.codec = info
        self.allocator = allocator
        self.ports: AllocatedPorts = allocator.allocate(now, rtcp_mux=session.rtcp_mux, host=host)
        self._clock = clock
        self.sockets = LegSockets(self.ports, cfg, clock)
        self.rtp = RtpSessionCore(session, self.sockets.transmit, now, time.time() - clock(), ssrc)
        self.rtp.on_packet = self._on_packet
        self.jitter = JitterBuffer(create_decoder(info.name), cfg.jitter)
        self.encoder = create_encoder(info.name)
        self._down = FrameResampler(SAMPLE_RATE, info.sample_rate, info.frame_ms)
        self._frame_ticks = info.frame_ticks
        self.uplink = uplink
        self.stats = PipelineStats()
        self.mixer: RoomMixer | None = None
        self.leg_id: Hashable | None = None
        self._shared: _SharedDownlink | None = None
        self._was_shared = False
        self._meter = LevelMeter()
        self._vad = VoiceActivityDetector()
        self.closed = False

    # -- addresses -----------------------------------------------------------------------------

    @property
    def local_address(self) -> Address:
        return (self.ports.host, self.ports.rtp_port)

    @property
    def local_rtcp_port(self) -> int:
        return self.ports.rtcp_port if self.ports.rtcp_port is not None else self.ports.rtp_port

    def set_remote(self, host: str, port: int, rtcp_port: int | None = None) -> None:
        self.rtp.set_remote(host, port, rtcp_port)

    # -- room ----------------------------------------------------------------------------------

    def attach(self, mixer: RoomMixer, leg_id: Hashable) -> MixerLeg:
        """Join the room's mixer: the phone becomes a local source, the uplink's SSRC is marked
        as ours (its bridge copy is ignored), and the mixer drives this pipeline."""
        self.detach()
        bridge = () if self.uplink is None else (self.uplink.ssrc,)
        leg = mixer.add_leg(
            leg_id,
            phone=self,
            on_frame=self.on_mix,
            bridge_ssrcs=bridge,
            on_phone=self.on_phone,
        )
        self.mixer = mixer
        self.leg_id = leg_id
        if self.config.share_downlink:
            self._shared = _shared_downlink(mixer, self.codec)
        self._was_shared = False
        return leg

    def detach(self) -> None:
        if self.mixer is not None:
            self.mixer.remove_leg(self.leg_id)
        self.mixer = None
        self.leg_id = None
        self._shared = None

    # -- receive -------------------------------------------------------------------------------

    def _on_packet(self, packet: RtpPacket, arrival: float) -> None:
        self.jitter.put(
            packet.sequence,
            packet.timestamp,
            packet.payload,
            packet.marker,
            None,
            arrival,
            comfort_noise=packet.payload_type == CN_PAYLOAD_TYPE,
        )

    def drain(self, now: float) -> None:
        """Read the SIP leg's sockets (RTCP every `rtcp_poll_ticks` drains)."""
        self.stats.drains += 1
        self.sockets.drain(self.rtp.datagram_received, now)

    @property
    def send_errors(self) -> int:
        return self.sockets.send_errors

    def pull(self, now: float) -> JitterFrame:
        """The phone's next 48 kHz frame (the mixer's local source): drain, then pull."""
        if self.closed:
            return _SILENT_FRAME
        self.drain(now)
        return self.jitter.pull(now)

    # -- send ----------------------------------------------------------------------------------

    def send_to_phone(self, mix: PCM, now: float, frames: int = 1, silence: bool = False) -> None:
        """One 48 kHz frame to the phone: resample, encode, send (RTCP when due)."""
        payload = self.encoder.encode(self._down.process(mix))
        self._send(payload, now, frames, silence)

    def _send(self, payload: bytes, now: float, frames: int, silence: bool) -> None:
        self.rtp.send_frame(payload, self._frame_ticks * frames, now, silence)
        self.rtp.tick(now)
        self.stats.frames_sent += 1

    def on_mix(self, leg: MixerLeg, now: float, frames: int) -> None:
        """The mixer's first hand-over of the tick: the leg's mix to the phone."""
        if self.closed:
            return
        self.stats.ticks += 1
        shared = self._shared
        mixer = self.mixer
        if shared is not None and mixer is not None:
            if leg.shared:
                pcm = shared.get(mixer)
                if self._was_shared:
                    payload = shared.payload if shared.encoder else self.encoder.encode(pcm)
                    self.stats.shared_frames += 1
                    self._send(payload, now, frames, not leg.mix_active)
                    return
                # Joining the shared stream: this frame still goes through our own resampler
                # (the shared one's history may differ: it held this phone's voice). After it
                # both histories are the tail of this same frame, and the streams are equal.
                self._was_shared = True
                self.send_to_phone(leg.mix, now, frames, not leg.mix_active)
                return
            elif self._was_shared:
                # Leaving it: take over the shared filter history (see the module doc).
                self._down.process(mixer.previous_full_mix)
                self._was_shared = False
        self.send_to_phone(leg.mix, now, frames, not leg.mix_active)

    def on_phone(self, leg: MixerLeg, now: float, frames: int) -> None:
        """The mixer's second hand-over: the phone's frame to the conference."""
        if self.uplink is not None and not self.closed:
            self.uplink.frame(leg.phone_frame, leg.phone_level, leg.phone_voice, frames)

    def tick(self, now: float, frames: int = 1) -> None:
        """Standalone (no room): the phone's audio goes up, silence goes to the phone."""
        if self.closed or self.mixer is not None:
            return
        self.stats.ticks += 1
        frame = self.pull(now)
        level = SILENCE if frame.status is FrameStatus.SILENCE else self._meter.level(frame.pcm)
        voice = self._vad.update(level)
        self.send_to_phone(_ZEROS, now, frames, True)
        if self.uplink is not None:
            self.uplink.frame(frame.pcm, level, voice, frames)

    def close(self, now: float, reason: str | None = None) -> None:
        """Leave the room, send RTCP BYE, release the ports."""
        if self.closed:
            return
        self.detach()
        try:
            self.rtp.close(now, reason)
        finally:
            self.closed = True
            self.allocator.release(self.ports, now)


_SILENT_FRAME = JitterFrame(_ZEROS, FrameStatus.SILENCE, None, None)
