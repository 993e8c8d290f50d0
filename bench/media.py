"""The media engine's CPU cost per call, against the bare codec cost of the same load.

Run: .venv/bin/python bench/media.py [--rooms R] [--calls C] [--talking S] [--seconds T]
                                     [--crowded-seconds T2] [--json] [--profile]

Load: R rooms x C calls, every phone talking (a voiced, speech-like harmonic signal), plus S
talking web participants per room. This process runs the real media path, driven by one
`MediaClock`:

* SIP leg: G.711 (PCMU) RTP in and out over real loopback UDP sockets (`CallPipeline`: polled
  sockets, RTP session, jitter buffer, decode, 8 <-> 48 kHz resampling, encode, send, RTCP);
* one `RoomMixer` per room: the web participants' Opus decoded once per room, N-1 mixes;
* towards the conference: each phone's audio encoded to Opus with its RFC 6464 level.

The phones run in a subprocess (the load generator: it sends each call's RTP every 20 ms and
reads what comes back), so this process's CPU time (`time.process_time`) is pygasi's share
alone. The fake bridge runs in this process: every tick it hands each web participant's Opus
packet to every leg of its room (the bridge sends every SSRC to every leg), and our own phones'
uplink packets back to the other legs, through `RoomMixer.put_remote_packet`; that is pygasi's
work (taking one copy, ignoring the rest) and counted in its share, its own loop included (its
time is printed). What the conference leg costs on top (ICE/DTLS/SRTP in aiortc) is not part of
the media engine and not measured here.

Codec floor: the Opus encodes and decodes the load needs and nothing else - one encode per
talking phone per 20 ms, one decode per talking web participant per room per 20 ms - with the
same encoder settings as the pipeline and the same signals, timed in this process after the
load. The ratio of the two says how much the engine adds to the unavoidable codec work.

Crowded room: one room with 35 calls (3 phones talking, 32 silent) and 3 talking web
participants, as a fraction of one core (Jigasi: ~90 % of 8 cores for 35 calls in one room,
reference/anchors.md §2).
"""

from __future__ import annotations

import os

# OpenBLAS (numpy's BLAS, used by the resampler's matrix product) starts a worker thread that
# busy-waits between calls: measured here, it doubles the CPU time of an 8 -> 48 kHz frame
# (14.7 µs instead of 7.6 µs of process time). pygasi runs on one thread; the daemon must set
# this before numpy is imported, and so does the benchmark.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import asyncio  # noqa: E402
import cProfile  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import pstats  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import deque  # noqa: E402
from dataclasses import asdict, dataclass, field, replace  # noqa: E402
from enum import Enum  # noqa: E402
from itertools import repeat  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Protocol  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import media  # noqa: E402
from media.clock import MediaClock  # noqa: E402
from media.codecs import create_decoder, create_encoder  # noqa: E402
from media.codecs.opus import (  # noqa: E402
    PHONE_BANDWIDTH,
    OpusConfig,
    OpusDecoder,
    OpusEncoder,
    libopus_version,
)
from media.frame import FRAME_SAMPLES, PCM, SAMPLE_RATE  # noqa: E402
from media.level import audio_level  # noqa: E402
from media.mixer import RoomMixer  # noqa: E402
from media.pipeline import CallPipeline, ConferenceUplink  # noqa: E402
from media.ports import PortAllocator  # noqa: E402
from media.resample import FrameResampler  # noqa: E402
from media.rtp import RtpPacket  # noqa: E402
from media.rtp_session import RtpSessionConfig  # noqa: E402
from media.tones import ToneGenerator, tone_amplitudes  # noqa: E402

SCRIPT = str(Path(__file__).resolve())
HOST = "127.0.0.1"
TICK = 0.02
CYCLE = 50  # frames in one second: integer-Hz signals repeat exactly
OPUS_PT = 111
LEVEL_ID = 1
HARMONIC_LEVELS = [-26.0, -29.0, -32.0, -35.0]  # about -28 dBFS RMS: telephone speech level
OPUS_CONFIG = OpusConfig()  # what ConferenceUplink uses by default; the web talkers' encoder
# The phones' uplink encoder (and the floor's): OPUS_CONFIG, or with --opus-bandwidth phone the
# band of the phones' G.711 only, as [media] opus_bandwidth = "phone" makes the gateway do.
UPLINK_OPUS = OPUS_CONFIG


def phone_f0(index: int) -> float:
    """Fundamentals 120, 130, ... Hz: all below twice the lowest, so no harmonic of one phone
    lands on another's fundamental."""
    return 120.0 + 10.0 * index


def web_f0(index: int) -> float:
    return [317.0, 419.0, 523.0, 293.0, 383.0, 467.0][index % 6]


def voiced(f0: float, rate: int) -> ToneGenerator:
    harmonics = [f0 * k for k in range(1, 5) if f0 * k < rate * 0.45]
    gen = ToneGenerator(harmonics, rate, HARMONIC_LEVELS[: len(harmonics)])
    # Start each talker at its own phase: the fundamentals share a 100 ms period, and
    # talkers in phase would peak together (real voices do not).
    gen.next(round(f0 * 37.0) % 997 * rate // 8000)
    return gen


# -- the load generator (subprocess): the phones ------------------------------------------------


# As in bench/load.py: pygasi's side on one core, the load generator (the phones) on the other,
# so that neither evicts the other's caches or waits for the other's time slice.
PYGASI_CORE, PHONES_CORE = 0, 1


def _pin(core: int) -> None:
    if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) >= 2:
        os.sched_setaffinity(0, {core})


def run_phones() -> None:
    """Subprocess entry: read the plan, bind one socket per call, report the ports, read the
    pipelines' ports, send and receive for the planned time, report counts and a check."""
    plan = json.loads(sys.stdin.readline())
    calls = plan["calls"]
    _pin(PHONES_CORE)
    encoder = create_encoder("pcmu")
    socks, payloads = [], []
    for call in calls:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((HOST, 0))
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        socks.append(sock)
        if call["f0"]:
            gen = voiced(call["f0"], 8000)
            payloads.append([encoder.encode(gen.next(160)) for _ in range(CYCLE)])
        else:
            payloads.append([b"\xff" * 160] * CYCLE)  # µ-law digital silence
    print(json.dumps({"ports": [s.getsockname()[1] for s in socks]}), flush=True)
    targets = [(HOST, port) for port in json.loads(sys.stdin.readline())["targets"]]
    sent = [0] * len(calls)
    received = [0] * len(calls)
    watched: list[bytes] = []  # call 0's audio, for the check
    seq = [1000 + 7 * i for i in range(len(calls))]
    start = time.monotonic() + 0.005
    end = start + plan["seconds"]
    k = 0
    while True:
        deadline = start + k * TICK
        now = time.monotonic()
        if now >= end:
            break
        if deadline > now:
            time.sleep(deadline - now)
        for i, sock in enumerate(socks):
            header = RtpPacket(0, seq[i] & 0xFFFF, (k * 160) & 0xFFFFFFFF, 0x1000 + i)
            header.payload = payloads[i][k % CYCLE]
            try:
                sock.sendto(header.serialize(), targets[i])
                sent[i] += 1
            except OSError:
                pass
            seq[i] += 1
            while True:
                try:
                    data = sock.recv(2048)
                except OSError:
                    break
                if len(data) < 12 or 200 <= data[1] <= 204:
                    continue  # RTCP
                received[i] += 1
                if i == 0:
                    watched.append(data[12:])
        k += 1
    check = None
    watch = plan.get("watch")
    if watch and len(watched) > 100:
        decoder = create_decoder("pcmu")
        pcm = np.concatenate([decoder.decode(p).copy() for p in watched[-100:]])
        amplitudes = tone_amplitudes(pcm, 8000, [*watch["hear"], *watch["not"]])
        check = {str(f): round(a, 1) for f, a in amplitudes.items()}
    print(json.dumps({"sent": sent, "received": received, "check": check}), flush=True)


# -- this process: pygasi ---------------------------------------------------------------------


class Uplinks:
    """What our conference legs send, per room; the fake bridge forwards it to the other legs."""

    def __init__(self) -> None:
        self.packets: list[tuple[int, RtpPacket]] = []
        self.octets = 0

    def sink(self, leg: int) -> Any:
        def send(packet: RtpPacket) -> None:
            self.packets.append((leg, packet))
            self.octets += len(packet.payload)

        return send


def _consume(calls: Any) -> None:
    deque(calls, maxlen=0)


class FakeBridge:
    """Registered on the clock before the rooms: each tick, every web participant's packet to
    every leg of its room, and our phones' packets of the last tick to the room's other legs."""

    def __init__(self) -> None:
        self.rooms: list[
            tuple[RoomMixer, list[int], list[WebTalker], Uplinks, dict[int, tuple[int, ...]]]
        ] = []
        self.cpu = 0.0
        self.puts = 0

    def tick(self, now: float, frames: int) -> None:
        t0 = time.thread_time()
        puts = 0
        # The feed's own loops run in C (map, consumed by a zero-length deque): what is timed
        # as pygasi's is then mostly `put_remote_packet` itself, the engine's work per copy.
        when, level_id = repeat(now), repeat(LEVEL_ID)
        for mixer, legs, talkers, uplinks, others in self.rooms:
            put = mixer.put_remote_packet
            for talker in talkers:
                _consume(map(put, legs, repeat(talker.next(frames)), when, level_id))
                puts += len(legs)
            for sender, packet in uplinks.packets:
                to = others[sender]
                _consume(map(put, to, repeat(packet), when, level_id))
                puts += len(to)
            uplinks.packets.clear()
        self.puts += puts
        self.cpu += time.thread_time() - t0

    def add_room(
        self, mixer: RoomMixer, legs: list[int], talkers: list[WebTalker], uplinks: Uplinks
    ) -> None:
        # Every leg of the room but the sender's: the bridge does not echo a stream back.
        others = {leg: tuple(other for other in legs if other != leg) for leg in legs}
        self.rooms.append((mixer, legs, talkers, uplinks, others))


class WebTalker:
    """A web participant: a cycle of Opus packets (with levels) of its voiced signal."""

    def __init__(self, ssrc: int, f0: float) -> None:
        self.ssrc = ssrc
        gen = voiced(f0, SAMPLE_RATE)
        encoder = OpusEncoder(OPUS_CONFIG)
        self.frames = [gen.next() for _ in range(CYCLE)]
        self.payloads = [encoder.encode(f) for f in self.frames]
        self.levels = [bytes([0x80 | audio_level(f)]) for f in self.frames]
        self.k = 0
        self.seq = 500

    def next(self, frames: int) -> RtpPacket:
        self.k += frames
        self.seq += 1
        i = self.k % CYCLE
        return RtpPacket(
            OPUS_PT,
            self.seq & 0xFFFF,
            (self.k * FRAME_SAMPLES) & 0xFFFFFFFF,
            self.ssrc,
            self.payloads[i],
            extensions={LEVEL_ID: self.levels[i]},
        )


@dataclass
class LoadResult:
    rooms: int
    calls_per_room: int
    talking_phones_per_room: int
    talking_web_per_room: int
    seconds: float
    cpu_s: float
    cpu_per_call_second: float
    bridge_feed_cpu_s: float
    bridge_puts: int
    opus_encodes: int
    opus_decodes: int
    needed_encodes: int
    needed_decodes: int
    clock: dict[str, float]
    phones_sent: int
    phones_received: int
    check: dict[str, float] | None
    profile: str | None = field(default=None, repr=False)


async def run_load(
    rooms: int,
    calls: int,
    talking_phones: int,
    talking_web: int,
    seconds: float,
    warmup: float,
    port_base: int,
    profile: bool = False,
) -> LoadResult:
    loop = asyncio.get_running_loop()
    plan_calls = [
        {"f0": phone_f0(p) if p < talking_phones else 0} for _ in range(rooms) for p in range(calls)
    ]
    watch = None
    if talking_phones >= 2 or talking_web:
        hear = [phone_f0(p) for p in range(1, talking_phones)] + [
            web_f0(s) for s in range(talking_web)
        ]
        watch = {"hear": hear, "not": [phone_f0(0)] if talking_phones else []}
    generator = await asyncio.create_subprocess_exec(
        sys.executable,
        SCRIPT,
        "--phones",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert generator.stdin is not None and generator.stdout is not None
    plan = {"calls": plan_calls, "seconds": warmup + seconds + 0.5, "watch": watch}
    generator.stdin.write((json.dumps(plan) + "\n").encode())
    await generator.stdin.drain()
    phone_ports = json.loads(await generator.stdout.readline())["ports"]

    allocator = PortAllocator((port_base, port_base + 4 * rooms * calls + 100), host=HOST)
    clock = MediaClock()
    bridge = FakeBridge()
    clock.add(bridge)
    pipelines: list[CallPipeline] = []
    mixers: list[RoomMixer] = []
    for r in range(rooms):
        mixer = RoomMixer()
        uplinks = Uplinks()
        talkers = [WebTalker(0x7000_0000 + 100 * r + s, web_f0(s)) for s in range(talking_web)]
        for talker in talkers:
            mixer.add_source(talker.ssrc)
        legs = []
        for p in range(calls):
            i = r * calls + p
            uplink = ConferenceUplink(
                0x5000_0000 + i, uplinks.sink(i), OPUS_PT, LEVEL_ID, opus=UPLINK_OPUS
            )
            pipeline = CallPipeline(
                RtpSessionConfig(payload_type=0, clock_rate=8000),
                allocator,
                loop.time(),
                uplink=uplink,
            )
            pipeline.set_remote(HOST, phone_ports[i], phone_ports[i])
            pipeline.attach(mixer, i)
            pipelines.append(pipeline)
            legs.append(i)
        bridge.add_room(mixer, legs, talkers, uplinks)
        mixers.append(mixer)
        clock.add(mixer)
    targets = {"targets": [p.ports.rtp_port for p in pipelines]}
    generator.stdin.write((json.dumps(targets) + "\n").encode())
    await generator.stdin.drain()

    clock.start()
    await asyncio.sleep(warmup)
    profiler = cProfile.Profile() if profile else None
    encodes0 = sum(p.uplink.stats.sent for p in pipelines if p.uplink)
    decodes0 = sum(s.frames_decoded for m in mixers for s in m.sources)
    bridge_cpu0 = bridge.cpu
    puts0 = bridge.puts
    ticks0 = clock.stats.ticks
    work0 = clock.stats.total_work_s
    clock.stats.max_slice_ms = clock.stats.max_work_ms = 0.0
    if profiler:
        profiler.enable()
    cpu0 = time.process_time()
    await asyncio.sleep(seconds)
    cpu = time.process_time() - cpu0
    if profiler:
        profiler.disable()
    stats = clock.stats
    ticks = stats.ticks - ticks0
    encodes = sum(p.uplink.stats.sent for p in pipelines if p.uplink) - encodes0
    decodes = sum(s.frames_decoded for m in mixers for s in m.sources) - decodes0
    clock_stats = {
        "ticks": ticks,
        "mean_tick_ms": round((stats.total_work_s - work0) * 1000.0 / max(ticks, 1), 3),
        "max_tick_ms": round(stats.max_work_ms, 2),
        "max_slice_ms": round(stats.max_slice_ms, 2),
        "skipped": stats.skipped,
        "catch_up_ticks": stats.catch_up_ticks,
    }
    report = json.loads(await generator.stdout.readline())
    await generator.wait()
    await clock.stop()
    for pipeline in pipelines:
        pipeline.close(loop.time())
    text = None
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(
            os.environ.get("BENCH_SORT", "tottime")
        ).print_stats(int(os.environ.get("BENCH_TOP", "25")))
        text = out.getvalue()
    n = rooms * calls
    frames = seconds / TICK
    return LoadResult(
        rooms=rooms,
        calls_per_room=calls,
        talking_phones_per_room=talking_phones,
        talking_web_per_room=talking_web,
        seconds=seconds,
        cpu_s=cpu,
        cpu_per_call_second=cpu / (n * seconds),
        bridge_feed_cpu_s=bridge.cpu - bridge_cpu0,
        bridge_puts=bridge.puts - puts0,
        opus_encodes=encodes,
        opus_decodes=decodes,
        needed_encodes=round(rooms * talking_phones * frames),
        needed_decodes=round(rooms * talking_web * frames),
        clock=clock_stats,
        phones_sent=sum(report["sent"]),
        phones_received=sum(report["received"]),
        check=report["check"],
        profile=text,
    )


class CodecWork:
    """The Opus work a load needs, and nothing else: one encoder per talking phone fed that
    phone's signal as the pipeline sees it (G.711, then resampled to 48 kHz), one decoder per
    talking web participant per room fed its packets; same encoder settings as the uplink."""

    def __init__(self, rooms: int, talking_phones: int, talking_web: int) -> None:
        g711 = create_encoder("pcmu")
        g711_decoder = create_decoder("pcmu")
        self.encoders: list[OpusEncoder] = []
        self.frames: list[list[PCM]] = []
        for _ in range(rooms):
            for p in range(talking_phones):
                gen = voiced(phone_f0(p), 8000)
                up = FrameResampler(8000, SAMPLE_RATE)
                frames = []
                for _ in range(CYCLE):
                    narrow = g711_decoder.decode(g711.encode(gen.next(160)))
                    frames.append(up.process(narrow).copy())
                self.frames.append(frames)
                self.encoders.append(OpusEncoder(UPLINK_OPUS))
        self.talkers = [
            WebTalker(1 + 100 * r + s, web_f0(s)) for r in range(rooms) for s in range(talking_web)
        ]
        self.decoders = [OpusDecoder() for _ in self.talkers]
        self.k = 0
        self.cpu = 0.0
        self.ticks = 0

    def tick(self, now: float = 0.0, frames: int = 1) -> None:
        """One 20 ms frame of the load's codec work (timed: thread time)."""
        start = time.thread_time()
        i = self.k % CYCLE
        for encoder, frames_ in zip(self.encoders, self.frames, strict=True):
            encoder.encode(frames_[i])
        for decoder, talker in zip(self.decoders, self.talkers, strict=True):
            decoder.decode(talker.payloads[i])
        self.k += 1
        self.ticks += 1
        self.cpu += time.thread_time() - start


def hot_loop_floor(work: CodecWork, frames: int) -> float:
    """CPU seconds per frame of the codec work, run back to back (hot caches)."""
    for _ in range(5):
        work.tick()
    start = time.process_time()
    for _ in range(frames):
        work.tick()
    return (time.process_time() - start) / frames


class PacedWork(Protocol):
    """A load's codec work, one frame per `tick`, timing itself (`cpu` over `ticks`)."""

    cpu: float
    ticks: int

    def tick(self, now: float = 0.0, frames: int = 1) -> None: ...


async def paced_floor(work: PacedWork, seconds: float) -> float:
    """CPU seconds per frame of the codec work, run every 20 ms by a `MediaClock` as the load
    is (the process does nothing else): what a real-time gateway cannot do with less."""
    clock = MediaClock()
    clock.add(work)
    clock.start()
    await asyncio.sleep(0.5)
    cpu0, ticks0 = work.cpu, work.ticks
    await asyncio.sleep(seconds)
    await clock.stop()
    return (work.cpu - cpu0) / max(1, work.ticks - ticks0)


async def measure_load(
    rooms: int,
    calls: int,
    talking: int,
    seconds: float,
    warmup: float,
    floor_seconds: float,
    port_base: int,
    profile: bool = False,
) -> dict[str, Any]:
    """One load and the codec floor of that same load, measured half right before and half
    right after it: the machine's pace drifts (the paced floor moved by +-10 % between runs),
    and the load's figure then sits between the two halves of its floor."""
    work = CodecWork(rooms, calls, talking)
    before = await paced_floor(work, floor_seconds / 2)
    result = await run_load(
        rooms, calls, calls, talking, seconds, warmup, port_base, profile=profile
    )
    after = await paced_floor(work, floor_seconds / 2)
    n = rooms * calls
    # Per call-second: a frame of the load's codec work every 20 ms, shared by its calls.
    floor = (before + after) / 2 / TICK / n
    floor_hot = hot_loop_floor(work, round(floor_seconds / TICK)) / TICK / n
    cpu = result.cpu_per_call_second
    return {
        "calls": n,
        # The work was all done: a load that fell behind (another process on this core) did
        # fewer encodes than it needed and its figures are not comparable.
        "complete": result.opus_encodes >= 0.99 * result.needed_encodes,
        "cpu_per_call_second": cpu,
        "codec_floor_per_call_second": floor,
        "ratio": cpu / floor,
        "calls_per_core": 1.0 / cpu,
        "codec_floor_hot_loop_per_call_second": floor_hot,
        "ratio_hot_loop": cpu / floor_hot,
        "codec_floor_before_after": [before / TICK / n, after / TICK / n],
        "load": _summary(result),
        "profile": result.profile,
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    main = await measure_load(
        args.rooms,
        args.calls,
        args.talking,
        args.seconds,
        args.warmup,
        args.floor_seconds,
        30000,
        profile=args.profile,
    )
    light = None
    if args.light_rooms > 0:
        light = await measure_load(
            args.light_rooms,
            args.calls,
            args.talking,
            args.light_seconds,
            args.warmup,
            args.floor_seconds,
            33000,
        )
        light.pop("profile")
    crowded = await run_load(1, 35, 3, 3, args.crowded_seconds, args.warmup, 36000)
    crowded_work = CodecWork(1, 3, 3)
    crowded_floor = await paced_floor(crowded_work, args.floor_seconds) / TICK
    crowded_hot = hot_loop_floor(crowded_work, round(args.floor_seconds / TICK)) / TICK
    crowded_fraction = crowded.cpu_s / crowded.seconds
    return {
        **main,
        "light_load": light,
        "crowded_room_core_fraction": crowded_fraction,
        "crowded_room_codec_floor_core_fraction": crowded_floor,
        "crowded_room_ratio": crowded_fraction / crowded_floor,
        "crowded_room_codec_floor_hot_loop_core_fraction": crowded_hot,
        "crowded_room": _summary(crowded),
        "opus_encoder": {
            k: v.name if isinstance(v, Enum) else str(v) for k, v in asdict(UPLINK_OPUS).items()
        },
        "libopus": libopus_version(),
        "python": platform.python_version(),
        # pygasi run uses glibc's malloc ([runtime] allocator); `make bench` sets it here too.
        "allocator": os.environ.get("PYTHONMALLOC", "pymalloc"),
        # media's per-packet modules compiled by mypyc (`make compile`), or their source.
        "media_compiled": media.COMPILED,
        "machine": platform.machine(),
    }


def _summary(result: LoadResult) -> dict[str, Any]:
    out = asdict(result)
    out.pop("profile")
    return out


def print_load(title: str, r: dict[str, Any]) -> None:
    load = r["load"]
    print(
        f"{title}: {load['rooms']} rooms x {load['calls_per_room']} calls (every phone talking), "
        f"{load['talking_web_per_room']} talking web participants per room, "
        f"{load['seconds']:.0f} s"
    )
    print(
        f"  pygasi CPU                        {load['cpu_s']:8.2f} s  "
        f"(of which fake-bridge feed {load['bridge_feed_cpu_s']:.2f} s, "
        f"{load['bridge_puts']} put_remote_packet calls)"
    )
    print(f"  CPU per call-second               {r['cpu_per_call_second'] * 1000:8.2f} ms")
    print(f"  calls per core                    {r['calls_per_core']:8.1f}")
    print(
        f"  codec floor per call-second       {r['codec_floor_per_call_second'] * 1000:8.2f} ms"
        f"  (paced every 20 ms; {load['needed_encodes']} encodes + {load['needed_decodes']} "
        f"decodes needed, the run did {load['opus_encodes']} + {load['opus_decodes']})"
    )
    halves = " / ".join(f"{f * 1000:.2f}" for f in r["codec_floor_before_after"])
    print(
        f"  ratio to the codec floor          {r['ratio']:8.2f}"
        f"  (floor before / after the load: {halves} ms)"
    )
    print(
        f"  codec floor, back-to-back loop    "
        f"{r['codec_floor_hot_loop_per_call_second'] * 1000:8.2f} ms  "
        f"(ratio {r['ratio_hot_loop']:.2f})"
    )
    c = load["clock"]
    print(
        f"  clock: mean tick {c['mean_tick_ms']} ms, longest {c['max_tick_ms']} ms, "
        f"longest slice {c['max_slice_ms']} ms, skipped {c['skipped']}"
    )
    print(f"  phones: {load['phones_sent']} packets sent, {load['phones_received']} received")
    if load["check"]:
        print(f"  check, phone 0 of room 0 hears (Hz: amplitude): {load['check']}")
    if not r["complete"]:
        print("  WARNING: the load fell behind (fewer encodes than needed): this core was busy")
    print()


def print_table(r: dict[str, Any]) -> None:
    crowded = r["crowded_room"]
    print(
        f"pygasi media engine (Python {r['python']}, {r['machine']}, {r['libopus']}, "
        f"{r['allocator']} allocator, media modules "
        f"{'compiled' if r['media_compiled'] else 'pure Python'})"
    )
    enc = r["opus_encoder"]
    print(
        f"Opus encoder (uplink and floor): {int(enc['bitrate']) // 1000} kbit/s, complexity "
        f"{enc['complexity']}, {enc['application']}, in-band FEC {enc['inband_fec']}, "
        f"loss {enc['packet_loss_perc']} %, DTX {enc['dtx']}, max bandwidth {enc['max_bandwidth']}"
    )
    print()
    print_load("Load", r)
    if r.get("light_load"):
        print_load("Light load", r["light_load"])
    print(
        "Crowded room: 35 calls (3 talking), 3 talking web participants, "
        f"{crowded['seconds']:.0f} s"
    )
    print(f"  fraction of one core              {r['crowded_room_core_fraction'] * 100:8.1f} %")
    print(
        f"  codec floor                       "
        f"{r['crowded_room_codec_floor_core_fraction'] * 100:8.1f} %  "
        f"(paced; back-to-back "
        f"{r['crowded_room_codec_floor_hot_loop_core_fraction'] * 100:.1f} %; "
        f"ratio {r['crowded_room_ratio']:.2f})"
    )
    c = crowded["clock"]
    print(
        f"  clock: mean tick {c['mean_tick_ms']} ms, longest {c['max_tick_ms']} ms, "
        f"longest slice {c['max_slice_ms']} ms, skipped {c['skipped']}"
    )
    if crowded["check"]:
        print(f"  check, phone 0 hears (Hz: amplitude): {crowded['check']}")
    if r.get("profile"):
        print()
        print(r["profile"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rooms", type=int, default=8)
    parser.add_argument("--calls", type=int, default=8, help="calls per room")
    parser.add_argument("--talking", type=int, default=2, help="talking web participants/room")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument(
        "--light-rooms", type=int, default=4, help="rooms of a second, lighter load (0: none)"
    )
    parser.add_argument("--light-seconds", type=float, default=15.0)
    parser.add_argument("--crowded-seconds", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument(
        "--floor-seconds", type=float, default=6.0, help="paced floor: half before, half after"
    )
    parser.add_argument(
        "--opus-bandwidth",
        choices=["full", "phone"],
        default="full",
        help="the phones' uplink encoder: fullband, or the G.711 band ([media] opus_bandwidth)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--profile", action="store_true", help="cProfile the main load")
    parser.add_argument("--phones", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phones:
        run_phones()
        return
    _pin(PYGASI_CORE)
    global UPLINK_OPUS
    if args.opus_bandwidth == "phone":
        UPLINK_OPUS = replace(OPUS_CONFIG, max_bandwidth=PHONE_BANDWIDTH[8000])
    result = asyncio.run(main_async(args))
    if args.json:
        result.pop("profile", None)
        print(json.dumps(result))
    else:
        print_table(result)


if __name__ == "__main__":
    main()
