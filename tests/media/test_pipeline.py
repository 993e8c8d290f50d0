"""The per-call pipeline end to end over real loopback UDP: phones send G.711 tones, each hears
the other through the room mixer, and each phone's audio goes up as Opus with its RFC 6464
level."""

from __future__ import annotations

import asyncio
import itertools
import random
import socket
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from media.clock import MediaClock
from media.codecs import create_decoder, create_encoder
from media.codecs.opus import OpusDecoder
from media.frame import PCM
from media.level import audio_level
from media.mixer import RoomMixer
from media.pipeline import CallPipeline, ConferenceUplink, PipelineConfig
from media.ports import PortAllocator
from media.rtp import RtpPacket
from media.rtp_session import RtpSessionConfig
from media.tones import ToneGenerator, analyse_mixture, dominant_frequency

HOST = "127.0.0.1"
TICK = 0.02


class Phone:
    """A SIP phone on loopback: sends one PCMU packet of its tone (or silence) per call to
    `send()`, collects what the gateway sends back."""

    def __init__(self, frequency: float | None, talks: Callable[[int], bool] | None = None) -> None:
        self.talks = talks or (lambda k: True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.setblocking(False)
        self.gen = ToneGenerator(frequency, 8000, -10.0) if frequency else None
        self.encoder = create_encoder("pcmu")
        self.seq = 100
        self.ts = 8000
        self.received: list[RtpPacket] = []

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.sock.getsockname()[:2]
        return host, port

    def send(self, to: tuple[str, int]) -> None:
        pcm = self.gen.next(160) if self.gen else np.zeros(160, dtype=np.int16)
        if not self.talks(self.seq - 100):
            pcm = np.zeros(160, dtype=np.int16)
        packet = RtpPacket(0, self.seq & 0xFFFF, self.ts, 0x5EED, self.encoder.encode(pcm))
        self.sock.sendto(packet.serialize(), to)
        self.seq += 1
        self.ts += 160

    def receive(self) -> None:
        while True:
            try:
                data = self.sock.recv(2048)
            except BlockingIOError:
                return
            self.received.append(RtpPacket.parse(data))

    def heard(self, last: int) -> PCM:
        decoder = create_decoder("pcmu")
        return np.concatenate([decoder.decode(p.payload).copy() for p in self.received[-last:]])

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def allocator() -> Iterator[PortAllocator]:
    low = random.Random().randrange(20000, 60000, 2)
    yield PortAllocator((low, low + 400), host=HOST, quarantine=0.0)


def make_call(
    allocator: PortAllocator,
    phone: Phone,
    ssrc: int,
    now: float,
    timestamps: bool,
    share: bool = True,
) -> tuple[CallPipeline, list[RtpPacket]]:
    up: list[RtpPacket] = []
    pipeline = CallPipeline(
        RtpSessionConfig(payload_type=0, clock_rate=8000),
        allocator,
        now,
        uplink=ConferenceUplink(ssrc, up.append, payload_type=111, audio_level_id=1),
        config=PipelineConfig(kernel_timestamps=timestamps, share_downlink=share),
    )
    pipeline.set_remote(*phone.address)
    return pipeline, up


def opus_tone(packets: list[RtpPacket]) -> float:
    decoder = OpusDecoder()
    pcm = np.concatenate([decoder.decode(p.payload).copy() for p in packets])
    return dominant_frequency(pcm[4800:], 48000)


def test_g711_tones_end_to_end_through_the_mixer(allocator: PortAllocator) -> None:
    """Fake time (arrival = tick time): deterministic, fast."""
    a, b, c = Phone(1000.0), Phone(600.0), Phone(None)
    mixer = RoomMixer()
    calls = {}
    for name, phone, ssrc in (("a", a, 0xA), ("b", b, 0xB), ("c", c, 0xC)):
        calls[name] = make_call(allocator, phone, ssrc, 0.0, timestamps=False)
        calls[name][0].attach(mixer, name)
    pa, up_a = calls["a"]
    pc, up_c = calls["c"]
    assert mixer.leg("a").bridge_ssrcs == {0xA}
    try:
        for k in range(100):
            for phone, (pipeline, _) in zip((a, b, c), calls.values(), strict=True):
                phone.send(pipeline.local_address)
            mixer.tick(k * TICK)
            for phone in (a, b, c):
                phone.receive()
        # Each phone hears the other talker, never itself; the silent one hears both.
        assert len(a.received) == len(b.received) == len(c.received) == 100
        assert dominant_frequency(a.heard(50), 8000) == pytest.approx(600.0, abs=2.0)
        assert dominant_frequency(b.heard(50), 8000) == pytest.approx(1000.0, abs=2.0)
        mixture = analyse_mixture(c.heard(50), 8000, [600.0, 1000.0, 800.0])
        assert mixture.present == {600.0, 1000.0}
        # The SIP leg's packets: PCMU, one SSRC, sequence +1 and timestamp +160 per packet.
        sent = a.received
        assert {p.payload_type for p in sent} == {0} and len({p.ssrc for p in sent}) == 1
        assert {(q.sequence - p.sequence) & 0xFFFF for p, q in itertools.pairwise(sent)} == {1}
        assert {(q.timestamp - p.timestamp) & 0xFFFFFFFF for p, q in itertools.pairwise(sent)} == {
            160
        }
        # Towards the conference: Opus at 48 kHz with the phone's level (-10 dBFS tone:
        # 13 -dBov, voice), marker on the first packet only.
        assert len(up_a) == 100 and up_a[0].marker and not any(p.marker for p in up_a[1:])
        talking = up_a[10:]
        assert {p.extensions[1] if p.extensions else b"" for p in talking} == {bytes([0x80 | 13])}
        assert {(q.timestamp - p.timestamp) for p, q in itertools.pairwise(talking)} == {960}
        assert opus_tone(up_a[20:]) == pytest.approx(1000.0, abs=2.0)
        # The silent phone: three packets at level 127, then nothing.
        assert len(up_c) == 3 and pc.uplink is not None and pc.uplink.stats.suppressed == 97
        assert {p.extensions[1] if p.extensions else b"" for p in up_c} == {bytes([127])}
        # The bridge copy of a's uplink is not mixed again.
        assert not mixer.put_remote_packet("b", up_a[50], 2.0, 1)
        assert mixer.stats.own_copies_ignored == 1
        assert pa.rtp.counters.packets_received == 100 and pa.jitter.stats.late == 0
    finally:
        for pipeline, _ in calls.values():
            pipeline.close(2.0)
        for phone in (a, b, c):
            phone.close()
    assert allocator.in_use == 0


def test_the_shared_downlink_is_bit_exact(allocator: PortAllocator) -> None:
    """Calls whose phone is silent share one resampling/encoding of the full mix; phones start
    and stop talking. Every phone receives exactly the bytes it would get from its own
    resampler and encoder."""

    def b_talks(k: int) -> bool:
        return 40 <= k < 70 or k >= 100

    heard: dict[bool, list[list[bytes]]] = {}
    shared_frames = {}
    for share in (True, False):
        phones = [
            Phone(1000.0),
            Phone(600.0, b_talks),
            Phone(None),
            Phone(1500.0, lambda k: k < 55),
        ]
        mixer = RoomMixer()
        calls = []
        for i, phone in enumerate(phones):
            pipeline, _ = make_call(allocator, phone, 0x10 + i, 0.0, False, share)
            pipeline.attach(mixer, i)
            calls.append(pipeline)
        for k in range(130):
            for phone, pipeline in zip(phones, calls, strict=True):
                phone.send(pipeline.local_address)
            mixer.tick(k * TICK)
            for phone in phones:
                phone.receive()
        heard[share] = [[p.payload for p in phone.received] for phone in phones]
        shared_frames[share] = [pipeline.stats.shared_frames for pipeline in calls]
        for pipeline in calls:
            pipeline.close(3.0)
        for phone in phones:
            phone.close()
    assert heard[True] == heard[False]
    assert all(len(h) == 130 for h in heard[True])
    assert shared_frames[False] == [0, 0, 0, 0]
    # b shares while silent (ticks ~0-40 and 70-100), c always, d after it stops at 55.
    b, c, d = shared_frames[True][1:]
    assert 50 <= b <= 70 and c >= 125 and 60 <= d <= 75
    assert shared_frames[True][0] <= 3  # a talks all along (but its first frames are silence)


def test_silence_suppression_ends_with_a_marked_talk_spurt() -> None:
    sent: list[RtpPacket] = []
    uplink = ConferenceUplink(7, sent.append, silence_packets=2, initial_timestamp=0)
    tone = ToneGenerator(500.0, 48000, -20.0)
    zeros: PCM = np.zeros(960, dtype=np.int16)
    for _ in range(5):
        uplink.frame(zeros, 127, False)
    uplink.frame(tone.next(), audio_level(tone.next()), True, frames=3)  # after 2 skipped ticks
    assert [p.marker for p in sent] == [True, False, True]
    assert [p.timestamp for p in sent] == [0, 960, 7 * 960]
    assert [p.sequence for p in sent] == [0, 1, 2]
    assert uplink.stats.suppressed == 3 and uplink.stats.sent == 3
    uplink.muted = True
    uplink.frame(tone.next(), 20, True)
    assert sent[-1].extensions == {1: bytes([127])}  # muted: sent as silence


def test_standalone_call_sends_silence_to_the_phone_and_its_audio_up(
    allocator: PortAllocator,
) -> None:
    phone = Phone(800.0)
    pipeline, up = make_call(allocator, phone, 0x51, 0.0, timestamps=False)
    try:
        for k in range(40):
            phone.send(pipeline.local_address)
            pipeline.tick(k * TICK)
            phone.receive()
        assert len(phone.received) == 40
        assert not phone.heard(40).any()
        assert opus_tone(up[10:]) == pytest.approx(800.0, abs=2.0)
    finally:
        pipeline.close(1.0)
        phone.close()


async def test_real_time_with_the_clock_and_kernel_arrival_times(
    allocator: PortAllocator,
) -> None:
    loop = asyncio.get_running_loop()
    a, b = Phone(1000.0), Phone(None)
    mixer = RoomMixer()
    (pa, _), (pb, _) = (
        make_call(allocator, a, 1, loop.time(), timestamps=True),
        make_call(allocator, b, 2, loop.time(), timestamps=True),
    )
    pa.attach(mixer, "a")
    pb.attach(mixer, "b")
    clock = MediaClock()
    clock.add(mixer)
    sent_at: dict[int, float] = {}
    arrived_at: dict[int, float] = {}
    deliver = pa.rtp.on_packet
    put = pa.rtp.on_audio
    assert deliver is not None and put is not None

    def record(packet: RtpPacket, arrival: float) -> None:  # the first, before latching
        arrived_at[packet.sequence] = arrival
        deliver(packet, arrival)

    def record_fields(
        seq: int,
        ts: int,
        payload: bytes,
        marker: bool,
        level: int | None,
        arrival: float,
        voice: bool | None,
        comfort_noise: bool,
    ) -> None:  # the rest: the fields fast path
        arrived_at[seq] = arrival
        put(seq, ts, payload, marker, level, arrival, voice, comfort_noise)

    pa.rtp.on_packet = record
    pa.rtp.on_audio = record_fields

    async def phones() -> None:
        # The phones send on their own 20 ms schedule, unsynchronised with the clock.
        start = loop.time() + 0.007
        k = 0
        while True:
            sent_at[a.seq] = loop.time()
            a.send(pa.local_address)
            b.send(pb.local_address)
            k += 1
            await asyncio.sleep(max(0.0, start + k * TICK - loop.time()))
            a.receive()
            b.receive()

    task = asyncio.create_task(phones())
    clock.start()
    try:
        await asyncio.sleep(1.2)
    finally:
        await clock.stop()
        task.cancel()
    try:
        assert pa.sockets.rtp.timestamped
        assert 55 <= len(b.received) <= 62
        assert dominant_frequency(b.heard(30), 8000) == pytest.approx(1000.0, abs=2.0)
        stats = pa.jitter.stats
        assert stats.received >= 55 and stats.late == 0
        # The arrival times are the kernel's: within a millisecond or so of the send (loopback),
        # where the time of the tick that read the packet would be 0-20 ms later.
        delays = [arrived_at[seq] - sent_at[seq] for seq in arrived_at]
        assert len(delays) >= 55
        assert sum(-0.001 < d < 0.003 for d in delays) >= 0.9 * len(delays)
    finally:
        pa.close(loop.time())
        pb.close(loop.time())
        a.close()
        b.close()
