"""The load generator's side of bench/load.py: what the phones play (pcap files for SIPp), a
light videobridge for many legs, and the probe call that measures added delay.

The bridge is the test emulator's `BridgeEndpoint` (ICE, DTLS, SRTP as JVB does them,
reference/jingle.md) with its per-endpoint work taken out so that one generator core can feed
dozens of legs: one `LoadHub` ticks every 20 ms for all of them and sends each web talker's
packet - Opus encoded once, before the run - to every leg of its room, the same bytes to all,
as the bridge forwards one packet to every receiver. What a leg sends is relayed to the other
legs of its room unless it is marked silent (RFC 6464 level 127), as JVB drops silence
(jingle.md §8.1); pygasi must take those copies of its own phones and ignore them, which is
part of its cost. Nothing is decoded except on the probe's leg.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from media.codecs import create_decoder, create_encoder
from media.codecs.opus import OpusDecoder, OpusEncoder
from media.errors import MediaParseError
from media.frame import FRAME_SAMPLES, PCM, SAMPLE_RATE
from media.level import SILENCE, audio_level
from media.rtp import RtpPacket
from media.tones import ToneGenerator
from tests.xmpp.bridge import AUDIO_LEVEL_ID, OPUS_PT, BridgeEndpoint

TICK = 0.02
CYCLE = 50  # frames in one second: integer-Hz signals repeat exactly
HARMONIC_LEVELS = [-26.0, -29.0, -32.0, -35.0]  # about -28 dBFS RMS: telephone speech level
BURST_FRAMES = 3  # a probe burst: 60 ms of tone
BURST_PERIOD = 25  # frames between burst starts (500 ms)
BURST_HZ = 2400.0  # far from every talker's harmonics (bench/load.py's fundamentals)
ONSET_DBFS = -30.0  # a frame with the burst's frequency this loud after silence: an onset
QUIET_FRAMES = 5  # ... after at least this many quiet frames
PROBE_NAME = "Probe"  # the probe call's display name: its leg is the one decoded


def voiced(f0: float, rate: int) -> ToneGenerator:
    """A speech-like harmonic series (a fundamental and three harmonics), started at a phase of
    its own so that talkers do not peak together."""
    harmonics = [f0 * k for k in range(1, 5) if f0 * k < rate * 0.45]
    gen = ToneGenerator(harmonics, rate, HARMONIC_LEVELS[: len(harmonics)])
    gen.next(round(f0 * 37.0) % 997 * rate // 8000)
    return gen


def tone_dbfs(pcm: PCM, rate: int, frequency: float) -> float:
    """The level of one frequency in a frame (Hann-windowed DFT at that frequency), in dB
    relative to a full-scale sine: a burst is found among other talkers by its frequency."""
    n = len(pcm)
    window = np.hanning(n)
    phase = np.exp(-2j * np.pi * frequency / rate * np.arange(n))
    amplitude = 2.0 * abs(np.dot(pcm.astype(np.float64) * window, phase)) / window.sum()
    return 20.0 * float(np.log10(max(amplitude, 1e-3) / 32768.0))


# -- what the phones play ---------------------------------------------------------------------


def _checksum(header: bytes) -> int:
    total = sum(struct.unpack("!10H", header))
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return int(~total & 0xFFFF)


def write_pcap(path: Path, payloads: list[bytes], payload_type: int, clock_step: int) -> None:
    """An RTP stream for SIPp's ``play_pcap_audio``: Ethernet/IPv4/UDP frames 20 ms apart
    (SIPp keeps the pcap's timing and replaces the addresses and ports)."""
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    ssrc = 0x5EED0001
    for index, payload in enumerate(payloads):
        rtp = struct.pack(
            "!BBHII",
            0x80,
            (0x80 if index == 0 else 0) | payload_type,
            index & 0xFFFF,
            (index * clock_step) & 0xFFFFFFFF,
            ssrc,
        )
        udp_payload = rtp + payload
        udp = struct.pack("!HHHH", 4000, 4000, 8 + len(udp_payload), 0) + udp_payload
        ip = bytearray(
            struct.pack(
                "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), index & 0xFFFF, 0, 64, 17, 0,
                bytes((127, 0, 0, 1)), bytes((127, 0, 0, 1)),
            )
        )  # fmt: skip
        ip[10:12] = struct.pack("!H", _checksum(bytes(ip)))
        frame = b"\x00" * 12 + b"\x08\x00" + bytes(ip) + udp
        micros = index * 20_000
        out += struct.pack("<IIII", micros // 1_000_000, micros % 1_000_000, len(frame), len(frame))
        out += frame
    path.write_bytes(bytes(out))


def phone_payloads(codec: str, f0: float | None, frames: int) -> list[bytes]:
    """``frames`` packets of a phone talking at ``f0`` (None: silence) in PCMU or Opus."""
    if codec == "opus":
        encoder = OpusEncoder()
        gen48 = voiced(f0, SAMPLE_RATE) if f0 else None
        silent = np.zeros(FRAME_SAMPLES, dtype=np.int16)
        one_second = [
            encoder.encode(gen48.next(FRAME_SAMPLES) if gen48 else silent) for _ in range(CYCLE)
        ]
    else:
        g711 = create_encoder("pcmu")
        gen8 = voiced(f0, 8000) if f0 else None
        one_second = [g711.encode(gen8.next(160)) if gen8 else b"\xff" * 160 for _ in range(CYCLE)]
    return [one_second[i % CYCLE] for i in range(frames)]


async def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# -- the bridge -------------------------------------------------------------------------------


@dataclass
class WebTalker:
    """A talking web participant as the bridge forwards it: one packet per 20 ms, encoded once
    before the run (a one-second loop). With ``bursts`` it is the probe's talker: a 60 ms tone
    every 500 ms, then three packets marked silent, then nothing (JVB drops silence), the
    timestamp running on."""

    ssrc: int
    f0: float
    bursts: bool = False
    sent_bursts: list[float] = field(default_factory=list)  # loop time of each burst's first packet
    _payloads: list[tuple[bytes, int]] = field(default_factory=list)
    _silent: bytes = b""
    _seq: int = 1
    _ts: int = 0
    _frame: int = 0

    def __post_init__(self) -> None:
        encoder = OpusEncoder()
        if self.bursts:
            tone = ToneGenerator(BURST_HZ, SAMPLE_RATE, -10.0)
            for _ in range(BURST_FRAMES):
                pcm = tone.next(FRAME_SAMPLES)
                self._payloads.append((encoder.encode(pcm), audio_level(pcm)))
            self._silent = encoder.encode(np.zeros(FRAME_SAMPLES, dtype=np.int16))
        else:
            gen = voiced(self.f0, SAMPLE_RATE)
            for _ in range(CYCLE):
                pcm = gen.next(FRAME_SAMPLES)
                self._payloads.append((encoder.encode(pcm), audio_level(pcm)))

    def packet(self, now: float) -> bytes | None:
        ts = self._ts
        self._ts = (ts + FRAME_SAMPLES) & 0xFFFFFFFF
        frame = self._frame
        self._frame += 1
        if self.bursts:
            pos = frame % BURST_PERIOD
            if pos < BURST_FRAMES:
                payload, level = self._payloads[pos]
                voice, marker = True, pos == 0
                if marker:
                    self.sent_bursts.append(now)
            elif pos < BURST_FRAMES + 3:
                payload, level, voice, marker = self._silent, SILENCE, False, False
            else:
                return None
        else:
            payload, level = self._payloads[frame % CYCLE]
            voice, marker = True, frame == 0
        ext = {AUDIO_LEVEL_ID: bytes(((0x80 if voice else 0) | level,))}
        data = RtpPacket(OPUS_PT, self._seq, ts, self.ssrc, payload, marker, extensions=ext)
        self._seq = (self._seq + 1) & 0xFFFF
        return data.serialize()


class Onsets:
    """Finds the onsets of the probe's bursts in a decoded stream at ``rate``: the arrival time
    of the first frame with the burst's frequency after a stretch without it."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.quiet = 0
        self.last_loud = float("-inf")
        self.times: list[float] = []
        self.frames = 0

    def frame(self, pcm: PCM, arrival: float) -> None:
        self.frames += 1
        if tone_dbfs(pcm, self.rate, BURST_HZ) > ONSET_DBFS:
            # Quiet: frames without the tone, or no packets at all (a translated stream
            # stops between talk-spurts).
            if self.quiet >= QUIET_FRAMES or arrival - self.last_loud > QUIET_FRAMES * TICK:
                self.times.append(arrival)
            self.quiet = 0
            self.last_loud = arrival
        else:
            self.quiet += 1


def delays(sent: list[float], onsets: list[float], limit: float = 0.4) -> list[float]:
    """Each onset matched with the latest burst sent before it (within ``limit``)."""
    out: list[float] = []
    for arrival in onsets:
        before = [t for t in sent if t <= arrival and arrival - t < limit]
        if before:
            out.append(arrival - before[-1])
    return out


class LoadEndpoint(BridgeEndpoint):
    """A bridge endpoint that relays its leg's voiced packets to the room's other legs, counts
    what it gets, and (on the probe's leg) decodes it to find the bursts."""

    def __init__(self, hub: LoadHub, room: str, probe: bool) -> None:
        super().__init__(("127.0.0.1",))
        self.hub = hub
        self.room = room
        self.packets = 0
        self.onsets = Onsets(SAMPLE_RATE) if probe else None
        self._decoder: OpusDecoder | None = OpusDecoder() if probe else None

    def _rtp_received(self, data: bytes) -> None:
        self.packets += 1
        try:
            packet = RtpPacket.parse(data)
        except MediaParseError:
            self.malformed += 1
            return
        if packet.payload_type != OPUS_PT:
            return
        if self.onsets is not None and self._decoder is not None:
            now = asyncio.get_running_loop().time()
            try:
                self.onsets.frame(self._decoder.decode(packet.payload), now)
            except MediaParseError:
                pass
        level = packet.get_audio_level(AUDIO_LEVEL_ID)
        if level is not None and level.level >= SILENCE:
            return  # JVB drops silence (jingle.md §8.1)
        for other in self.hub.rooms.get(self.room, ()):
            if other is not self:
                other._transmit(data)


class LoadHub:
    """The bridge of the whole load: endpoints by room, one 20 ms tick for every web talker."""

    def __init__(self, leg_of: Callable[[str], tuple[str, str | None] | None]) -> None:
        self.leg_of = leg_of  # a leg's nick -> its room name and display name
        self.rooms: dict[str, list[LoadEndpoint]] = {}
        self.talkers: dict[str, list[WebTalker]] = {}
        self._task: asyncio.Task[None] | None = None
        self.late_ticks = 0
        # How late each tick ran (s): the generator's own send jitter (bench/load.py).
        self.tick_lateness: list[float] = []

    async def allocate(self, nick: str) -> LoadEndpoint:
        room, display = self.leg_of(nick) or ("?", None)
        endpoint = LoadEndpoint(self, room, probe=display == PROBE_NAME)
        self.rooms.setdefault(room, []).append(endpoint)
        return endpoint

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        await _cancel(self._task)
        for endpoints in self.rooms.values():
            for endpoint in endpoints:
                await endpoint.close()
        self.rooms.clear()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        while True:
            now = loop.time()
            if now - deadline > TICK:
                self.late_ticks += 1
            self.tick_lateness.append(max(0.0, now - deadline))
            for room, talkers in self.talkers.items():
                endpoints = self.rooms.get(room, ())
                for talker in talkers:
                    data = talker.packet(now)
                    if data is None:
                        continue
                    for endpoint in endpoints:
                        endpoint._transmit(data)
            deadline += TICK
            await asyncio.sleep(max(0.0, deadline - loop.time()))


# -- the probe phone --------------------------------------------------------------------------


# Linux SO_TIMESTAMPNS (not exported by Python's socket module; as in media/pipeline.py): a
# struct timespec of CLOCK_REALTIME with each datagram.
_SO_TIMESTAMPNS = 35
_TIMESPEC = struct.Struct("@qq")


class ProbePhone:
    """The probe call's RTP phone (PCMU or Opus): silence with a 60 ms tone burst every 500 ms,
    and the bursts it hears from the probe room's web talker. What it hears is stamped with the
    kernel's arrival time (SO_TIMESTAMPNS), not the time the generator's busy loop got to it."""

    def __init__(self, codec: str) -> None:
        self.codec = codec
        self.pt, self.step = (111, 960) if codec == "opus" else (0, 160)
        self.sent_bursts: list[float] = []
        self.onsets = Onsets(SAMPLE_RATE if codec == "opus" else 8000)
        self.received = 0
        self.sent = 0
        self._sock: socket.socket | None = None
        self._remote: tuple[str, int] | None = None
        self.send_lateness: list[float] = []  # seconds, per send (see LoadHub)
        self._task: asyncio.Task[None] | None = None
        self._encoder = create_encoder("opus" if codec == "opus" else "pcmu")
        self._decoder = create_decoder("opus" if codec == "opus" else "pcmu")
        rate = SAMPLE_RATE if codec == "opus" else 8000
        samples = FRAME_SAMPLES if codec == "opus" else 160
        tone = ToneGenerator(BURST_HZ, rate, -10.0)
        self._burst = [self._encoder.encode(tone.next(samples)) for _ in range(BURST_FRAMES)]
        self._silence = self._encoder.encode(np.zeros(samples, dtype=np.int16))
        self.port = 0

    async def open(self) -> int:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        self._sock = sock
        self.port = sock.getsockname()[1]
        loop.add_reader(sock.fileno(), self._readable)
        self._task = asyncio.create_task(self._send_loop())
        return self.port

    async def close(self) -> None:
        await _cancel(self._task)
        if self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None

    def _readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        loop = asyncio.get_running_loop()
        offset = loop.time() - time.time()  # the loop's clock minus the kernel's realtime
        while True:
            try:
                data, ancillary, _, addr = sock.recvmsg(2048, socket.CMSG_SPACE(_TIMESPEC.size))
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue  # e.g. ICMP unreachable before the call is up
            arrival = loop.time()
            for level, kind, raw in ancillary:
                if (level, kind) == (socket.SOL_SOCKET, _SO_TIMESTAMPNS):
                    seconds, nanoseconds = _TIMESPEC.unpack(raw[: _TIMESPEC.size])
                    arrival = seconds + nanoseconds * 1e-9 + offset
            self.datagram_received(data, addr, arrival)

    async def _send_loop(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        frame = 0
        while True:
            if self._remote is not None and self._sock is not None:
                self.send_lateness.append(max(0.0, loop.time() - deadline))
                pos = frame % BURST_PERIOD
                payload = self._burst[pos] if pos < BURST_FRAMES else self._silence
                header = struct.pack(
                    "!BBHII", 0x80, self.pt | (0x80 if pos == 0 else 0), frame & 0xFFFF,
                    (frame * self.step) & 0xFFFFFFFF, 0x9E0BE001,
                )  # fmt: skip
                if pos == 0:
                    self.sent_bursts.append(loop.time())
                with contextlib.suppress(OSError):  # a full buffer: the packet is lost
                    self._sock.sendto(header + payload, self._remote)
                self.sent += 1
                frame += 1
            deadline += TICK
            await asyncio.sleep(max(0.0, deadline - loop.time()))

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...], arrival: float) -> None:
        if len(data) < 12 or data[0] >> 6 != 2 or (data[1] & 0x7F) != self.pt:
            return
        if self._remote is None:
            self._remote = (str(addr[0]), int(addr[1]))  # symmetric RTP: answer where it comes from
        self.received += 1
        try:
            packet = RtpPacket.parse(data)
            self.onsets.frame(self._decoder.decode(packet.payload), arrival)
        except MediaParseError:
            pass

    def start(self, remote: tuple[str, int]) -> None:
        self._remote = remote


__all__ = [
    "PROBE_NAME",
    "LoadEndpoint",
    "LoadHub",
    "ProbePhone",
    "WebTalker",
    "delays",
    "phone_payloads",
    "voiced",
    "write_pcap",
]
