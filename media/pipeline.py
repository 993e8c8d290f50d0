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

import contextlib
import select
import socket
import struct
import sys
import time
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
    SocketAddress,
)

# Linux: SO_TIMESTAMPNS (asm-generic/socket.h; not exported by Python's socket module) delivers
# a struct timespec of CLOCK_REALTIME with each datagram.
_SO_TIMESTAMPNS = 35
_TIMESPEC = struct.Struct("@ll")
MAX_DATAGRAM = 2048
MAX_READ_ROUNDS = 32  # a room's sockets are read at most this many times per tick


_Deliver = Callable[[int, bytes, SocketAddress, float], None]
_Read = Callable[[_Deliver, float, float], object]  # read_one or drain


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
        self,
        deliver: _Deliver,
        now: float,
        offset: float,
        limit: int | None = None,
    ) -> int:
        """Read what is waiting (at most `limit` datagrams, default `max_batch`);
        `deliver(channel, data, address, arrival)` for each datagram. `offset` converts the
        kernel's realtime stamps to the caller's clock (loop time)."""
        count = 0
        limit = self.max_batch if limit is None else limit
        read_one = self.read_one
        while count < limit and read_one(deliver, now, offset):
            count += 1
        return count

    def read_one(self, deliver: _Deliver, now: float, offset: float) -> bool:
        """Read one datagram and deliver it; False if there was nothing to read. An error
        reported on the socket (e.g. ICMP unreachable) is counted and takes the datagram's
        place."""
        try:
            if self.timestamped:
                data, ancillary, _, address = self.sock.recvmsg(MAX_DATAGRAM, self._ancillary)
            else:
                data, address = self.sock.recvfrom(MAX_DATAGRAM)
                ancillary = None
        except BlockingIOError:
            return False
        except OSError:
            self.errors += 1
            return True
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
        self.received += 1
        deliver(self.channel, data, address, arrival)
        return True


class PolledSet:
    """Polled sockets read together: one `epoll_wait(0)` finds the readable ones, each is read
    (one datagram with `one_each`, else up to its `max_batch`), and again while any is readable, at
    most `max_rounds` times whatever a peer floods us with. A socket read until it fails costs
    a failed read and its exception per socket (~2 µs); here a quiet tick costs one
    `epoll_wait` that finds nothing. Used by a room's SIP legs and by the conference legs' ICE
    sockets (xmpp.datagram_poller). `available` is False without epoll (not Linux)."""

    def __init__(self, max_rounds: int = MAX_READ_ROUNDS, one_each: bool = True) -> None:
        self._epoll = select.epoll() if hasattr(select, "epoll") else None
        self.available = self._epoll is not None
        self.max_rounds = max_rounds
        self._one = one_each
        # fd -> the socket and the bound methods a read needs (looked up once, not per packet).
        self._entries: dict[int, tuple[PolledUdp, _Read, _Deliver]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, polled: PolledUdp, deliver: _Deliver) -> None:
        assert self._epoll is not None, "no epoll here: check `available`"
        fd = polled.sock.fileno()
        self._epoll.register(fd, select.EPOLLIN)
        read: _Read = polled.read_one if self._one else polled.drain
        self._entries[fd] = (polled, read, deliver)

    def remove(self, sock: socket.socket) -> bool:
        """Forget `sock` (before it is closed: a new socket may get its descriptor); False if
        it was not in the set."""
        fd = sock.fileno()
        if fd < 0:  # already closed: find it by object
            fd = next((f for f, (p, _, _) in self._entries.items() if p.sock is sock), -1)
        if self._entries.pop(fd, None) is None:
            return False
        if self._epoll is not None:
            with contextlib.suppress(OSError, ValueError):  # closed: the kernel dropped it
                self._epoll.unregister(fd)
        return True

    def read(self, now: float, offset: float) -> None:
        """Read what is waiting; `offset` converts kernel stamps to `now`'s clock."""
        epoll = self._epoll
        if epoll is None or not self._entries:
            return
        entries = self._entries
        for _ in range(self.max_rounds):
            ready = epoll.poll(0)
            if not ready:
                return
            for fd, _events in ready:
                entry = entries.get(fd)
                if entry is not None:
                    _, read, deliver = entry
                    read(deliver, now, offset)


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
        self.polled = [self.rtp] if self.rtcp is None else [self.rtp, self.rtcp]
        self.drains = 0
        self.send_errors = 0

    def offset(self) -> float:
        """Our clock minus the realtime clock the kernel stamps arrivals with."""
        return self._clock() - time.time()

    def drain(self, deliver: _Deliver, now: float) -> None:
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


class _Room:
    """The SIP legs of a room with one codec, whose per-call work is done for all of them at
    once where that saves numpy calls (`FrameResampler.process_many`: one call per filter step
    for the room instead of one per call and step; at 48 -> 8 kHz 2.2 µs per frame for eight
    calls instead of 4.8 µs, and the same for 8 -> 48 kHz), at the first pull or hand-over of
    the tick:

    * `pull_all`: every member's sockets drained and jitter buffer pulled, the frames resampled
      to 48 kHz together;
    * towards the phones, the full mix resampled (and, for a stateless codec, encoded) once for
      all the legs that get it (`get`), and every other member leg's own mix resampled (and,
      stateless, encoded) together (`prepare`).
    """

    def __init__(self, info: CodecInfo) -> None:
        self.resampler = FrameResampler(SAMPLE_RATE, info.sample_rate, info.frame_ms)
        self.encoder: CodecEncoder | None = (
            create_encoder(info.name) if info.name.lower() in _STATELESS else None
        )
        self.tick = -1
        self.pcm: PCM = np.zeros(info.frame_samples, dtype=np.int16)
        self.payload = b""
        self.users = 0  # legs served, over the downlink's lifetime
        self.members: list[CallPipeline] = []  # the room's pipelines with this codec
        self.batch_tick = -1
        self.pull_tick = -1
        # Batches for FIR resampling only (a 48 kHz codec has nothing to resample).
        self.batched = self.resampler.engine == "fir"
        # The members' sockets, read together (Linux: epoll).
        polled = PolledSet() if self.batched else None
        self._sockets = polled if polled is not None and polled.available else None

    def add(self, pipeline: CallPipeline) -> None:
        self.members.append(pipeline)
        if self._sockets is not None:
            for polled in pipeline.sockets.polled:
                self._sockets.add(polled, pipeline._deliver)

    def remove(self, pipeline: CallPipeline) -> None:
        self.members.remove(pipeline)
        if self._sockets is not None:
            for polled in pipeline.sockets.polled:
                self._sockets.remove(polled.sock)

    def pull_all(self, mixer: RoomMixer, now: float) -> None:
        """At the first pull of a tick: every member's frame of the tick. Every socket of the
        room is then drained at that moment rather than each right before its own pull:
        what arrived before the tick is read either way."""
        tick = mixer.stats.ticks
        if self.pull_tick == tick:
            return
        self.pull_tick = tick
        members = [p for p in self.members if not p.closed and p.mixer is mixer]
        if self._sockets is not None:
            # One clock offset for the read: the members' clocks are the media clock's.
            offset = members[0]._clock() - time.time() if members else 0.0
            self._sockets.read(now, offset)
            for pipeline in members:
                pipeline.stats.drains += 1
                pipeline.sockets.drains += 1
        else:
            for pipeline in members:
                pipeline.stats.drains += 1
                pipeline.sockets.drain(pipeline._deliver, now)
        frames = JitterBuffer.pull_many([p.jitter for p in members], now)
        for pipeline, frame in zip(members, frames, strict=True):
            pipeline._frame = frame
            pipeline._frame_tick = tick

    def get(self, mixer: RoomMixer) -> PCM:
        tick = mixer.stats.ticks
        if self.tick != tick:
            self.tick = tick
            self.pcm = self.resampler.process(mixer.full_mix)
            if self.encoder is not None:
                self.payload = self.encoder.encode(self.pcm)
        self.users += 1
        return self.pcm

    def prepare(self, mixer: RoomMixer) -> None:
        """At the first hand-over of a tick: the payload of every member leg mixed in this tick
        that does not take the shared stream (`CallPipeline._takes_own`)."""
        tick = mixer.stats.ticks
        if self.batch_tick == tick:
            return
        self.batch_tick = tick
        batch: list[CallPipeline] = []
        mixes: list[PCM] = []
        for pipeline in self.members:
            leg = pipeline.leg
            if pipeline.closed or leg is None or leg.tick != tick or pipeline.mixer is not mixer:
                continue
            if pipeline._takes_own(leg, mixer):
                batch.append(pipeline)
                mixes.append(leg.mix)
        if not batch:
            return
        pcm = FrameResampler.process_many([p._down for p in batch], mixes)
        if self.encoder is not None:
            payloads = self.encoder.encode_many(pcm)
        else:
            payloads = [p.encoder.encode(row) for p, row in zip(batch, pcm, strict=True)]
        for pipeline, payload in zip(batch, payloads, strict=True):
            pipeline._payload = payload
            pipeline._payload_tick = tick


def _room_media(mixer: RoomMixer, info: CodecInfo) -> _Room:
    """The room's downlink for a codec (name, rate), kept with the room: a room that is gone
    takes its downlinks with it."""
    downlinks: dict[tuple[str, int], _Room] = mixer.attachments.setdefault("downlinks", {})
    key = (info.name.lower(), info.sample_rate)
    downlink = downlinks.get(key)
    if downlink is None:
        downlink = downlinks[key] = _Room(info)
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
        self._deliver = self.rtp.datagram_received  # bound once: the drain runs every tick
        self.jitter = JitterBuffer(create_decoder(info.name), cfg.jitter)
        self._put = self.rtp.on_audio = self.jitter.put_valid
        self.encoder = create_encoder(info.name)
        self._down = FrameResampler(SAMPLE_RATE, info.sample_rate, info.frame_ms)
        self._frame_ticks = info.frame_ticks
        self.uplink = uplink
        self.stats = PipelineStats()
        self.mixer: RoomMixer | None = None
        self.leg_id: Hashable | None = None
        self.leg: MixerLeg | None = None
        self._room: _Room | None = None
        self._was_shared = False
        self._payload = b""  # this tick's, when the room's batch made it
        self._payload_tick = -1
        self._frame = _SILENT_FRAME  # this tick's, when the room's batch pulled it
        self._frame_tick = -1
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
        self.leg = leg
        self._room = _room_media(mixer, self.codec)
        self._room.add(self)
        self._was_shared = False
        return leg

    def detach(self) -> None:
        if self.mixer is not None:
            self.mixer.remove_leg(self.leg_id)
        if self._room is not None:
            self._room.remove(self)
        self.mixer = None
        self.leg_id = None
        self.leg = None
        self._room = None

    # -- receive -------------------------------------------------------------------------------

    def _on_packet(self, packet: RtpPacket, arrival: float) -> None:
        # A parsed packet's fields are in range: the buffer need not check them again.
        self._put(
            packet.sequence,
            packet.timestamp,
            packet.payload,
            packet.marker,
            None,
            arrival,
            None,
            packet.payload_type == CN_PAYLOAD_TYPE,
        )

    def drain(self, now: float) -> None:
        """Read the SIP leg's sockets (RTCP every `rtcp_poll_ticks` drains)."""
        self.stats.drains += 1
        self.sockets.drain(self._deliver, now)

    @property
    def send_errors(self) -> int:
        return self.sockets.send_errors

    def pull(self, now: float) -> JitterFrame:
        """The phone's next 48 kHz frame (the mixer's local source): drain, then pull."""
        if self.closed:
            return _SILENT_FRAME
        room = self._room
        mixer = self.mixer
        if room is not None and mixer is not None and room.batched:
            tick = mixer.stats.ticks
            if room.pull_tick != tick:  # the first pull of the tick pulls the whole room
                room.pull_all(mixer, now)
            if self._frame_tick == tick:
                return self._frame
        self.stats.drains += 1  # drain(), inline
        self.sockets.drain(self._deliver, now)
        return self.jitter.pull(now)

    # -- send ----------------------------------------------------------------------------------

    def send_to_phone(self, mix: PCM, now: float, frames: int = 1, silence: bool = False) -> None:
        """One 48 kHz frame to the phone: resample, encode, send (RTCP when due)."""
        payload = self.encoder.encode(self._down.process(mix))
        self._send(payload, now, frames, silence)

    def _send(self, payload: bytes, now: float, frames: int, silence: bool) -> None:
        rtp = self.rtp
        rtp.send_frame(payload, self._frame_ticks * frames, now, silence)
        if now >= rtp.rtcp_timer.next_time:  # RTCP due (the test of rtp.tick(), inline)
            rtp.tick(now)
        self.stats.frames_sent += 1

    def on_mix(self, leg: MixerLeg, now: float, frames: int) -> None:
        """The mixer's first hand-over of the tick: the leg's mix to the phone."""
        if self.closed:
            return
        self.stats.ticks += 1
        room = self._room
        mixer = self.mixer
        silence = not leg.mix_active
        if room is not None and mixer is not None:
            if room.batched:
                tick = mixer.stats.ticks
                if room.batch_tick != tick:  # the first hand-over prepares the whole room
                    room.prepare(mixer)
                if self._payload_tick == tick:
                    self._send(self._payload, now, frames, silence)
                    return
            elif self._takes_own(leg, mixer):
                self.send_to_phone(leg.mix, now, frames, silence)
                return
            # The room's shared stream.
            pcm = room.get(mixer)
            payload = room.payload if room.encoder else self.encoder.encode(pcm)
            self.stats.shared_frames += 1
            self._send(payload, now, frames, silence)
            return
        self.send_to_phone(leg.mix, now, frames, silence)

    def _takes_own(self, leg: MixerLeg, mixer: RoomMixer) -> bool:
        """Whether this tick's frame to the phone is the leg's mix through this call's own
        resampler, or the room's shared stream (False); moves between the two."""
        room = self._room
        if room is None or not self.config.share_downlink:
            return True
        if leg.shared:
            if self._was_shared:
                return False
            # Joining the shared stream: this frame still goes through our own resampler (the
            # shared one's history may differ: it held this phone's voice). After it both
            # histories are the tail of this same frame (which the shared resampler takes in
            # now too), and the streams are equal.
            room.get(mixer)
            self._was_shared = True
            return True
        if self._was_shared:
            # Leaving it: take over the shared filter history (see the module doc).
            self._down.process(mixer.previous_full_mix)
            self._was_shared = False
        return True

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
