"""pygasi under real traffic: N concurrent dial-in calls through the real daemon.

Run: .venv/bin/python bench/load.py [--scenario rooms|crowded|translator|leak|workers|all]
                                    [--calls N] [--seconds T] [--json]

Everything is real except the conference: Prosody, `pygasi run` (its own process, pinned to
core 0), SIPp placing the calls with RTP from a pcap, and the Jicofo + videobridge emulator of
tests/ (bench/load_peers.py: one light bridge for every leg, ICE, DTLS and SRTP included). The
load generator - this process, Prosody and SIPp - is pinned to core 1, so pygasi's CPU time
(/proc/<pid>/stat) is its own. See bench/README.md for what each figure means.
"""

from __future__ import annotations

import os

# pygasi's daemon sets these itself; the generator's numpy should not spin threads either.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import asyncio  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import zlib  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from aiohttp import ClientSession  # noqa: E402

from bench.load_peers import (  # noqa: E402
    CYCLE,
    PROBE_NAME,
    TICK,
    LoadHub,
    ProbePhone,
    WebTalker,
    delays,
    phone_payloads,
    voiced,
    write_pcap,
)
from bench.media import paced_floor  # noqa: E402
from gateway.memory import LATE_DELAY  # noqa: E402
from media.codecs import create_decoder, create_encoder  # noqa: E402
from media.codecs.opus import OpusConfig, OpusDecoder, OpusEncoder, libopus_version  # noqa: E402
from media.frame import FRAME_SAMPLES, PCM, SAMPLE_RATE  # noqa: E402
from media.resample import FrameResampler  # noqa: E402
from tests.peers import free_port, stop_process  # noqa: E402
from tests.xmpp.jicofo import JicofoEmulator  # noqa: E402
from tests.xmpp.prosody import Prosody, prosody  # noqa: E402

HERE = Path(__file__).resolve().parent
SCENARIO = HERE / "scenarios" / "load_call.xml"
PROBE_SCENARIO = ROOT / "tests" / "gateway" / "scenarios" / "dialin.xml"
PYGASI_CORE, GENERATOR_CORE = 0, 1
PROBE_ROOM = "probe"
RTPMAP = {"PCMU": (0, "0 PCMU/8000", 160), "opus": (111, "111 opus/48000/2", 960)}
CLK_TCK = os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def lateness_ms(seconds: list[float]) -> dict[str, float | None]:
    """A 20 ms sender's lateness (the load generator's own send jitter: its loop shares a core
    with SIPp, Prosody and the bridge; pygasi's adaptive buffers absorb it)."""
    ms = [s * 1000.0 for s in seconds]
    return {"p50": percentile(ms, 50), "p99": percentile(ms, 99), "max": max(ms, default=None)}


# -- pygasi, the process under test -----------------------------------------------------------


@dataclass
class Worker:
    """One ``pygasi run`` process."""

    index: int
    sip_port: int
    api_port: int
    config: Path
    process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def cpu(self) -> float:
        """User + system CPU seconds so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def resources(self) -> dict[str, float]:
        status = Path(f"/proc/{self.pid}/status").read_text()
        values = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        return {
            "rss_mib": int(values["VmRSS"].split()[0]) / 1024.0,
            # Anonymous memory is the heap; file-backed is library code and data paged in.
            "anon_mib": int(values["RssAnon"].split()[0]) / 1024.0,
            "file_mib": int(values["RssFile"].split()[0]) / 1024.0,
            "threads": int(values["Threads"]),
            "fds": len(os.listdir(f"/proc/{self.pid}/fd")),
        }

    def socket_drops(self) -> int:
        """Datagrams the kernel dropped on this process's UDP sockets (receive buffer full:
        pygasi did not read in time)."""
        inodes = set()
        for fd in os.listdir(f"/proc/{self.pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{self.pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        drops = 0
        for table in ("udp", "udp6"):
            path = Path(f"/proc/{self.pid}/net/{table}")
            if not path.exists():
                continue
            for line in path.read_text().splitlines()[1:]:
                parts = line.split()
                if len(parts) >= 13 and parts[9] in inodes:
                    drops += int(parts[12])
        return drops

    async def stats(self, session: ClientSession) -> dict[str, Any]:
        async with session.get(f"http://127.0.0.1:{self.api_port}/about/stats") as answer:
            result: dict[str, Any] = await answer.json()
            return result


def write_config(
    path: Path, worker: int, server: Prosody, sip_port: int, api_port: int, translator: bool
) -> None:
    base = 20000 + 4000 * worker
    codecs = '["opus"]' if translator else '["PCMU"]'
    path.write_text(
        f"""# bench/load.py, worker {worker}
[sip]
listen = "127.0.0.1:{sip_port}"
rtp_ports = "{base}-{base + 1999}"
codecs = {codecs}
translator = {"true" if translator else "false"}

[inbound]
invite_timeout = 60

[xmpp]
server = "127.0.0.1:{server.c2s_port}"
domain = "{server.domain}"
muc_domain = "{server.muc_domain}"
focus = "{server.focus_domain}"
tls_verify = false
ice_addresses = ["127.0.0.1"]
ice_ports = "{base + 2000}-{base + 3999}"

[api]
listen = "127.0.0.1:{api_port}"

[drain]
timeout = 10

[logging]
level = "warning"

[runtime]
event_loop = "{EVENT_LOOP}"
"""
    )


async def start_worker(
    index: int, server: Prosody, workdir: Path, translator: bool, session: ClientSession
) -> Worker:
    worker = Worker(index, free_port(), free_port(), workdir / f"pygasi-{index}.toml")
    write_config(worker.config, index, server, worker.sip_port, worker.api_port, translator)
    log = (workdir / f"pygasi-{index}.log").open("wb")
    pygasi = Path(sys.executable).parent / "pygasi"
    pin = ["taskset", "-c", str(PYGASI_CORE)] if _two_cores() else []
    worker.process = await asyncio.create_subprocess_exec(
        *pin, str(pygasi), "run", "--config", str(worker.config),
        stdout=log, stderr=log, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        if worker.process.returncode is not None:
            raise RuntimeError(f"pygasi exited: see {workdir / f'pygasi-{index}.log'}")
        with contextlib.suppress(OSError, asyncio.TimeoutError):
            async with session.get(f"http://127.0.0.1:{worker.api_port}/about/health") as answer:
                if answer.status == 200:
                    return worker
        await asyncio.sleep(0.2)
    raise RuntimeError("pygasi did not become healthy within 30 s")


async def stop_worker(worker: Worker) -> None:
    if worker.process is not None:
        await stop_process(worker.process, grace=20.0)  # SIGTERM: a graceful drain


def _two_cores() -> bool:
    return (os.cpu_count() or 1) >= 2


# -- the calls --------------------------------------------------------------------------------


@dataclass
class Plan:
    """What one scenario runs."""

    name: str
    calls: int  # SIPp calls (the probe call comes on top)
    rooms: int
    talking_phones: int | None  # per room; None: every phone talks
    web_talkers: int  # per room
    codec: str = "PCMU"
    translator: bool = False
    seconds: float = 30.0  # the measurement window
    rate: float = 10.0  # new calls per second
    workers: int = 1
    probe: bool = True
    probe_in_room: bool = False  # the probe call joins the first room instead of its own

    @property
    def probe_room(self) -> str:
        return self.room_names()[0] if self.probe_in_room else f"{PROBE_ROOM}-{self.name}"

    def room_names(self) -> list[str]:
        return [f"{self.name}-{r}" for r in range(self.rooms)]

    def room_of_call(self, call: int) -> str:
        return self.room_names()[call % self.rooms]

    def talking(self, call: int) -> bool:
        if self.talking_phones is None:
            return True
        return call // self.rooms < self.talking_phones

    def worker_of(self, room: str) -> int:
        """Calls for one room go to one worker, so its mixer decodes each source once
        (the README's dispatcher hashes the room header the same way)."""
        return zlib.crc32(room.encode()) % self.workers


@dataclass
class SippRun:
    process: asyncio.subprocess.Process
    workdir: Path


async def start_sipp(
    plan: Plan, calls: list[int], worker: Worker, workdir: Path, hold_ms: int
) -> list[SippRun]:
    """SIPp placing ``calls`` (indices into the plan) on ``worker``: one SIPp per pcap (talking
    or silent), as ``play_pcap_audio`` takes no per-call value."""
    pt, rtpmap, step = RTPMAP[plan.codec]
    frames = int(hold_ms / 1000 / TICK) + 250
    runs = []
    for talking in sorted({plan.talking(c) for c in calls}):
        group = [c for c in calls if plan.talking(c) == talking]
        pcap = workdir / f"{plan.codec}-{'talk' if talking else 'silent'}-{frames}.pcap"
        if not pcap.exists():
            payloads = phone_payloads(plan.codec, 150.0 if talking else None, frames)
            write_pcap(pcap, payloads, pt, step)
        run_dir = Path(tempfile.mkdtemp(prefix=f"sipp-{worker.index}-", dir=workdir))
        scenario = run_dir / "load_call.xml"
        scenario.write_text(SCENARIO.read_text().replace("[field1]", str(pcap)))
        inject = run_dir / "calls.csv"
        lines = ["SEQUENTIAL"] + [f"{plan.room_of_call(c)};-;{pt};{rtpmap};" for c in group]
        inject.write_text("\n".join(lines) + "\n")
        rate = plan.rate * len(group) / len(calls)
        command = [
            "sipp", "-sf", str(scenario), "-inf", str(inject),
            "-i", "127.0.0.1", "-p", str(free_port()),
            "-mi", "127.0.0.1", "-mp", str(free_port(even=True)),
            "-m", str(len(group)), "-l", str(len(group)),
            "-r", f"{rate:.3f}", "-d", str(hold_ms),
            "-nostdin", "-timeout", str(int(hold_ms / 1000 + len(calls) / plan.rate + 120)),
            "-trace_rtt", "-rtt_freq", "1", "-trace_err",
            f"127.0.0.1:{worker.sip_port}",
        ]  # fmt: skip
        process = await asyncio.create_subprocess_exec(
            *command,
            cwd=run_dir,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        runs.append(SippRun(process, run_dir))
    return runs


def sipp_setup_times(run: SippRun) -> list[float]:
    """INVITE sent -> 200 OK received, per call, from SIPp's response-time trace (ms)."""
    times: list[float] = []
    for path in run.workdir.glob("*_rtt.csv"):
        for line in path.read_text().splitlines()[1:]:
            parts = line.split(";")
            if len(parts) >= 3:
                with contextlib.suppress(ValueError):
                    times.append(float(parts[1]))
    return times


async def start_probe(
    plan: Plan, worker: Worker, workdir: Path, hold_ms: int
) -> tuple[ProbePhone, asyncio.subprocess.Process]:
    phone = ProbePhone(plan.codec)
    port = await phone.open()
    pt, rtpmap, _ = RTPMAP[plan.codec]
    keys = {
        "room_header": "X-Room-Name",
        "room": plan.probe_room,
        "extra_header": "X-Probe",
        "extra_value": "1",
        "caller": "+15550000000",
        "caller_name": PROBE_NAME,
        "phone_port": str(port),
        "pt": str(pt),
        "rtpmap": rtpmap,
        "te_rate": "48000" if plan.codec == "opus" else "8000",
    }
    args = [arg for key, value in keys.items() for arg in ("-key", key, value)]
    process = await asyncio.create_subprocess_exec(
        "sipp", "-sf", str(PROBE_SCENARIO), *args,
        "-i", "127.0.0.1", "-p", str(free_port()), "-m", "1", "-d", str(hold_ms),
        "-s", "probe", "-nostdin", "-timeout", str(int(hold_ms / 1000 + 120)),
        f"127.0.0.1:{worker.sip_port}",
        cwd=workdir, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    return phone, process


# -- profiling --------------------------------------------------------------------------------

PROFILE = False  # --profile
EVENT_LOOP = "asyncio"  # --loop


def start_profile(
    worker: Worker, plan: Plan, workdir: Path
) -> tuple[asyncio.Task[int], Path] | None:
    """py-spy (the dev extra) samples worker 0 during the window; its own CPU is on the
    generator's core and pygasi is not slowed but for the sampling reads."""
    spy = shutil.which("py-spy", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    if spy is None:
        print("py-spy is not installed: no profile", file=sys.stderr)
        return None
    output = workdir / f"profile-{plan.name}.txt"
    command = [
        spy, "record", "--pid", str(worker.pid), "--duration", str(int(plan.seconds) - 1),
        "--rate", "250", "--function", "--format", "raw", "--output", str(output), "--nonblocking",
    ]  # fmt: skip

    async def run() -> int:
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
        return await process.wait()

    return asyncio.create_task(run()), output


async def finish_profile(task: asyncio.Task[int], output: Path) -> dict[str, Any]:
    await task
    return read_profile(output)


def read_profile(output: Path, top: int = 30) -> dict[str, Any]:
    """The functions where pygasi's samples were (self) and under (total), in percent."""
    own: dict[str, int] = {}
    total: dict[str, int] = {}
    samples = 0
    if output.exists():
        for line in output.read_text().splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            samples += count
            frames = [re.sub(r" \((?:/[^/]*)*/", " (", f) for f in stack.split(";")]
            own[frames[-1]] = own.get(frames[-1], 0) + count
            for frame in set(frames):
                total[frame] = total.get(frame, 0) + count

    def table(counts: dict[str, int]) -> list[tuple[str, float]]:
        ranked = sorted(counts.items(), key=lambda item: -item[1])[:top]
        return [(name, round(100.0 * n / max(1, samples), 1)) for name, n in ranked]

    return {"samples": samples, "self": table(own), "total": table(total)}


# -- the codec floor --------------------------------------------------------------------------


class CodecFloor:
    """The codec work of the same traffic and nothing else, per 20 ms: for every call the G.711
    decode and encode; an Opus encode per talking phone (pygasi sends a silent phone's first
    three silent packets only, as JVB would drop the rest, jingle.md §8.1); one Opus decode per
    talking web participant per room (a room's own phones are mixed locally, not decoded). The
    probe's bursts are left out. In translator mode nothing is decoded or encoded: no floor."""

    def __init__(self, plan: Plan) -> None:
        calls = plan.calls + (1 if plan.probe else 0)
        talking = sum(1 for c in range(plan.calls) if plan.talking(c))
        self.g711_encoder = create_encoder("pcmu")
        self.g711_decoder = create_decoder("pcmu")
        self.calls = calls
        self.encoders = [OpusEncoder(OpusConfig()) for _ in range(talking)]
        gen = voiced(150.0, 8000)
        up = FrameResampler(8000, SAMPLE_RATE)
        self.narrow = [self.g711_encoder.encode(gen.next(160)) for _ in range(CYCLE)]
        self.wide: list[PCM] = [up.process(self.g711_decoder.decode(p)).copy() for p in self.narrow]
        encoder = OpusEncoder()
        web = voiced(317.0, SAMPLE_RATE)
        self.web_payloads = [encoder.encode(web.next(FRAME_SAMPLES)) for _ in range(CYCLE)]
        self.decoders = [OpusDecoder() for _ in range(plan.rooms * plan.web_talkers)]
        self.zero = plan.translator
        self.k = 0
        self.cpu = 0.0
        self.ticks = 0

    def tick(self, now: float = 0.0, frames: int = 1) -> None:
        start = time.thread_time()
        i = self.k % CYCLE
        if not self.zero:
            narrow = self.wide[i][::6]
            for _ in range(self.calls):
                self.g711_decoder.decode(self.narrow[i])
                self.g711_encoder.encode(narrow)
            for encoder in self.encoders:
                encoder.encode(self.wide[i])
            for decoder in self.decoders:
                decoder.decode(self.web_payloads[i])
        self.k += 1
        self.ticks += 1
        self.cpu += time.thread_time() - start


async def codec_floor(plan: Plan, seconds: float = 5.0) -> float | None:
    """CPU seconds per call-second of the floor, paced as bench/media.py paces its own (one
    frame of work every 20 ms, nothing else running), on pygasi's core."""
    if plan.translator:
        return None
    if _two_cores():
        os.sched_setaffinity(0, {PYGASI_CORE})
    try:
        per_tick = await paced_floor(CodecFloor(plan), seconds)
    finally:
        if _two_cores():
            os.sched_setaffinity(0, {GENERATOR_CORE})
    calls = plan.calls + (1 if plan.probe else 0)
    return per_tick / TICK / calls


# -- one scenario -----------------------------------------------------------------------------


@dataclass
class Sample:
    rss_mib: float
    anon_mib: float  # RssAnon: the heap
    file_mib: float  # RssFile: library code and data paged in
    threads: int
    fds: int


@dataclass
class Conference:
    """Prosody, the Jicofo emulator and the light bridge, shared by the scenarios."""

    server: Prosody
    jicofo: JicofoEmulator
    hub: LoadHub
    web: dict[str, list[str]] = field(default_factory=dict)  # room -> web talker nicks


def _leg_of(jicofo: JicofoEmulator, nick: str) -> tuple[str, str | None] | None:
    for room in jicofo.rooms.values():
        occupant = room.occupants.get(nick)
        if occupant is not None:
            return room.jid.split("@")[0], occupant.display_name
    return None


async def add_web_talkers(conference: Conference, room: str, count: int, probe: bool) -> None:
    talkers = conference.hub.talkers.setdefault(room, [])
    for t in range(count):
        nick = f"w{len(talkers)}{zlib.crc32(room.encode()):08x}"[:8]
        fake = await conference.jicofo.add_fake_participant(room, nick)
        f0 = 700.0 if probe else [317.0, 419.0, 523.0][t % 3]
        talkers.append(WebTalker(fake.source.ssrc, f0, bursts=probe))
        conference.web.setdefault(room, []).append(nick)


async def clear_rooms(conference: Conference, rooms: list[str]) -> None:
    for room in rooms:
        for nick in conference.web.pop(room, []):
            with contextlib.suppress(Exception):
                await conference.jicofo.remove_fake_participant(room, nick)
        conference.hub.talkers.pop(room, None)
        for endpoint in conference.hub.rooms.pop(room, []):
            await endpoint.close()


async def wait_calls(
    workers: list[Worker], session: ClientSession, count: int, timeout: float
) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        total = 0
        for worker in workers:
            with contextlib.suppress(Exception):
                total += (await worker.stats(session))["calls"]
        if total == count:
            return True
        await asyncio.sleep(0.5)
    return False


def _media_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for direction in ("phone_to_meeting", "meeting_to_phone"):
        for key in ("received", "late", "lost", "concealed", "dropped"):
            out[f"{direction}_{key}"] = after[direction][key] - before[direction][key]
    return out


async def run_plan(
    plan: Plan, conference: Conference, session: ClientSession, workdir: Path
) -> dict[str, Any]:
    """Start the workers, warm up with one call, place the load, measure, hang up."""
    loop = asyncio.get_running_loop()
    rooms = plan.room_names()
    probe_room = plan.probe_room
    for room in rooms:
        await add_web_talkers(conference, room, plan.web_talkers, probe=False)
    if plan.probe:
        await add_web_talkers(conference, probe_room, 1, probe=True)
    workers = [
        await start_worker(i, conference.server, workdir, plan.translator, session)
        for i in range(plan.workers)
    ]
    result: dict[str, Any] = {"scenario": plan.name}
    try:
        # Warm-up: one short call per worker, so the baseline is taken after start-up costs.
        for worker in workers:
            warm = Plan(f"{plan.name}-warm", 1, 1, None, 1, plan.codec, plan.translator)
            await add_web_talkers(conference, warm.room_names()[0], 1, probe=False)
            for run in await start_sipp(warm, [0], worker, workdir, 3000):
                await run.process.wait()
            await clear_rooms(conference, warm.room_names())
        await asyncio.sleep(12.0)  # the warm-up call has left its room, memory released
        rest = [Sample(**w.resources()) for w in workers]  # type: ignore[arg-type]

        ramp = plan.calls / plan.rate
        hold_ms = int((ramp + 15.0 + plan.seconds + 5.0) * 1000)
        by_worker: dict[int, list[int]] = {}
        for call in range(plan.calls):
            by_worker.setdefault(plan.worker_of(plan.room_of_call(call)), []).append(call)
        runs = [
            run
            for w, calls in sorted(by_worker.items())
            for run in await start_sipp(plan, calls, workers[w], workdir, hold_ms)
        ]
        probe: tuple[ProbePhone, asyncio.subprocess.Process] | None = None
        if plan.probe:
            probe_worker = workers[plan.worker_of(probe_room)]
            probe = await start_probe(plan, probe_worker, workdir, hold_ms)
        expected = plan.calls + (1 if plan.probe else 0)
        if not await wait_calls(workers, session, expected, ramp + 30.0):
            raise RuntimeError(f"{plan.name}: not every call was set up")
        # Every leg's media connected, then a few seconds to settle.
        legs = [
            inv
            for room in conference.jicofo.rooms.values()
            for inv in room.invites.values()
            if room.jid.split("@")[0] in {*rooms, probe_room}
        ]
        deadline = time.monotonic() + 20.0
        while time.monotonic() < deadline and not all(
            inv.bridge.connected.is_set()  # type: ignore[attr-defined]
            for inv in legs
        ):
            await asyncio.sleep(0.2)
        await asyncio.sleep(3.0)

        stats0 = [await w.stats(session) for w in workers]
        drops0 = sum(w.socket_drops() for w in workers)
        cpu0 = [w.cpu() for w in workers]
        t0 = loop.time()
        hub_late0 = conference.hub.late_ticks
        hub_ticks0 = len(conference.hub.tick_lateness)
        probe_sends0 = len(probe[0].send_lateness) if probe is not None else 0
        profiler = start_profile(workers[0], plan, workdir) if PROFILE else None
        await asyncio.sleep(plan.seconds)
        if profiler is not None:
            result["profile"] = await finish_profile(*profiler)
        elapsed = loop.time() - t0
        cpu1 = [w.cpu() for w in workers]
        drops1 = sum(w.socket_drops() for w in workers)
        stats1 = [await w.stats(session) for w in workers]
        loaded = [Sample(**w.resources()) for w in workers]  # type: ignore[arg-type]
        calls_now = sum(s["calls"] for s in stats1)

        for run in runs:
            await run.process.wait()
        if probe is not None:
            await probe[1].wait()
        await wait_calls(workers, session, 0, 30.0)
        await asyncio.sleep(12.0)  # legs left their rooms (5 s), memory released (10 s idle)
        after = [Sample(**w.resources()) for w in workers]  # type: ignore[arg-type]

        cpu = sum(cpu1) - sum(cpu0)
        per_call_second = cpu / (elapsed * calls_now)
        result.update(
            calls=calls_now,
            rooms=len({*rooms, probe_room}) if plan.probe else plan.rooms,
            workers=plan.workers,
            codec=plan.codec,
            translator=plan.translator,
            window_seconds=round(elapsed, 1),
            cpu_seconds=round(cpu, 2),
            cpu_per_call_second=per_call_second,
            calls_per_core=1.0 / per_call_second,
            core_fraction=cpu / elapsed,
            cpu_per_worker=[round(b - a, 2) for a, b in zip(cpu0, cpu1, strict=True)],
        )
        media = [_media_delta(a["media"], b["media"]) for a, b in zip(stats0, stats1, strict=True)]
        inside = {k: sum(m[k] for m in media) for k in media[0]}
        inside["socket_drops"] = drops1 - drops0
        inside["clock_max_tick_ms"] = max(s["media"]["clock"]["max_tick_ms"] for s in stats1)
        inside["clock_skipped"] = sum(
            b["media"]["clock"]["skipped"] - a["media"]["clock"]["skipped"]
            for a, b in zip(stats0, stats1, strict=True)
        )
        result["inside_pygasi"] = inside
        result["generator_late_ticks"] = conference.hub.late_ticks - hub_late0

        setup = [t for run in runs for t in sipp_setup_times(run)]
        shares = [
            (inv.accepted_at - inv.initiated_at) * 1000.0
            for inv in legs
            if inv.accepted_at is not None
        ]
        result["setup_ms"] = {
            "invite_to_200_p50": percentile(setup, 50),
            "invite_to_200_p99": percentile(setup, 99),
            "initiate_to_accept_p50": percentile(shares, 50),
            "initiate_to_accept_p99": percentile(shares, 99),
            "samples": len(setup),
        }
        if probe is not None:
            phone = probe[0]
            endpoints = conference.hub.rooms.get(probe_room, [])
            up_onsets = [t for e in endpoints if e.onsets for t in e.onsets.times]
            down_sent = [
                t for w in conference.hub.talkers.get(probe_room, []) for t in w.sent_bursts
            ]
            up = [d * 1000.0 for d in delays(phone.sent_bursts, up_onsets)]
            down = [d * 1000.0 for d in delays(down_sent, phone.onsets.times)]
            result["delay_ms"] = {
                "phone_to_meeting_p50": percentile(up, 50),
                "phone_to_meeting_p99": percentile(up, 99),
                "meeting_to_phone_p50": percentile(down, 50),
                "meeting_to_phone_p99": percentile(down, 99),
                "samples": [len(up), len(down)],
                "bursts_sent": [len(phone.sent_bursts), len(down_sent)],
                "probe_packets": [phone.sent, phone.received],
                # The generator's own send jitter over the window (its loop shares core 1 with
                # SIPp, Prosody and the bridge): pygasi's adaptive buffers absorb it, so it is
                # part of the delays above. Arrivals at the probe phone are kernel-stamped.
                "generator_lateness_ms": {
                    "probe_phone_sends": lateness_ms(phone.send_lateness[probe_sends0:]),
                    "bridge_ticks": lateness_ms(conference.hub.tick_lateness[hub_ticks0:]),
                },
            }
            await phone.close()
        result["resources"] = {
            "at_rest": [vars(s) for s in rest],
            "loaded": [vars(s) for s in loaded],
            "after": [vars(s) for s in after],
            "rss_mib_per_call": (sum(s.rss_mib for s in loaded) - sum(s.rss_mib for s in rest))
            / max(1, calls_now),
        }
        floor = await codec_floor(plan)
        result["codec_floor_per_call_second"] = floor
        result["ratio"] = per_call_second / floor if floor else None
    finally:
        for worker in workers:
            await stop_worker(worker)
        await clear_rooms(conference, list({*rooms, probe_room}))
    return result


async def run_leak(
    conference: Conference, session: ClientSession, workdir: Path, rounds: int, calls: int
) -> dict[str, Any]:
    """``rounds`` rounds of ``calls`` calls on one worker: the process's RSS, threads and fds
    after each round, against the level after the warm-up."""
    plan = Plan("leak", calls, max(1, calls // 2), None, 1, rate=20.0, probe=False)
    for room in plan.room_names():
        await add_web_talkers(conference, room, 1, probe=False)
    worker = await start_worker(0, conference.server, workdir, False, session)
    samples: list[dict[str, float]] = []
    try:
        for warm in await start_sipp(plan, [0], worker, workdir, 2000):
            await warm.process.wait()
        await wait_calls([worker], session, 0, 30.0)
        await asyncio.sleep(LATE_DELAY + 2.0)  # both idle releases done (gateway.memory)
        samples.append(worker.resources())
        for _ in range(rounds):
            for run in await start_sipp(plan, list(range(calls)), worker, workdir, 4000):
                await run.process.wait()
            await wait_calls([worker], session, 0, 30.0)
            await asyncio.sleep(12.0)  # legs left their rooms (5 s), memory released (10 s idle)
            samples.append(worker.resources())
        # The late release: the ended calls' last timers have fired, their garbage is collected.
        await asyncio.sleep(LATE_DELAY - 10.0)
        rest = worker.resources()
    finally:
        await stop_worker(worker)
        await clear_rooms(conference, plan.room_names())
    return {
        "scenario": "leak",
        "rounds": rounds,
        "calls_per_round": calls,
        "after_each_round": samples,
        "at_rest": rest,
        "rss_growth_mib": samples[-1]["rss_mib"] - samples[0]["rss_mib"],
        "rest_growth_mib": {
            k: rest[k] - samples[0][k] for k in ("rss_mib", "anon_mib", "file_mib")
        },
        "threads_growth": samples[-1]["threads"] - samples[0]["threads"],
        "fds_growth": samples[-1]["fds"] - samples[0]["fds"],
    }


# -- main -------------------------------------------------------------------------------------


def plans(args: argparse.Namespace) -> list[Plan]:
    n = args.calls
    rooms = Plan("rooms", n, max(1, n // 2), None, 1, seconds=args.seconds)
    # 35 calls in one room: 3 phones talking, 31 silent and the probe (silent between its
    # bursts); 3 web participants talking and the probe's (silent between its bursts).
    crowded = Plan("crowded", 34, 1, 3, 3, seconds=args.seconds, probe_in_room=True)
    translator = Plan("translator", n, max(1, n // 2), None, 1, "opus", True, seconds=args.seconds)
    one = Plan("workers-1", n, max(1, n // 2), None, 1, seconds=args.seconds, probe=False)
    two = Plan("workers-2", n, max(1, n // 2), None, 1, seconds=args.seconds, workers=2)
    two.probe = False
    chosen = {
        "rooms": [rooms],
        "crowded": [crowded],
        "translator": [translator],
        "workers": [one, two],
        "leak": [],
        "all": [rooms, crowded, translator],
    }[args.scenario]
    return chosen


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    for tool in ("prosody", "sipp"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing (run scripts/install-test-deps as root)")
    if _two_cores():
        os.sched_setaffinity(0, {GENERATOR_CORE})  # Prosody and SIPp inherit it
    workdir = Path(tempfile.mkdtemp(prefix="pygasi-load-"))
    report: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "cpu": _cpu_model(),
            "cores": os.cpu_count(),
            "libopus": libopus_version(),
            "pinned": _two_cores(),
            "event_loop": args.loop,
        },
        "scenarios": [],
    }
    try:
        async with prosody(domain="meet.load") as server, ClientSession() as session:
            hub_ref: dict[str, LoadHub] = {}

            async def allocate(nick: str) -> Any:
                return await hub_ref["hub"].allocate(nick)

            jicofo = JicofoEmulator(server, bridge_factory=allocate, min_participants=2)
            hub = LoadHub(lambda nick: _leg_of(jicofo, nick))
            hub_ref["hub"] = hub
            await jicofo.start()
            hub.start()
            conference = Conference(server, jicofo, hub)
            try:
                for plan in plans(args):
                    _progress(args, f"scenario {plan.name}: {plan.calls} calls ...")
                    report["scenarios"].append(await run_plan(plan, conference, session, workdir))
                if args.scenario in ("leak", "all") and args.rounds > 0:
                    _progress(args, f"leak: {args.rounds} rounds of {args.leak_calls} calls ...")
                    report["scenarios"].append(
                        await run_leak(conference, session, workdir, args.rounds, args.leak_calls)
                    )
            finally:
                await hub.stop()
                await jicofo.stop()
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"work directory kept: {workdir}", file=sys.stderr)
    return report


def _progress(args: argparse.Namespace, text: str) -> None:
    print(text, file=sys.stderr if args.json else sys.stdout, flush=True)


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def print_report(report: dict[str, Any]) -> None:
    m = report["machine"]
    print(
        f"pygasi load benchmark: {m['cpu']}, {m['cores']} cores, Python {m['python']}, "
        f"libopus {m['libopus']}; pygasi pinned to core {PYGASI_CORE}: {m['pinned']}, "
        f"event loop {m['event_loop']}"
    )
    for r in report["scenarios"]:
        print()
        if r["scenario"] == "leak":
            print(f"Leak check: {r['rounds']} rounds of {r['calls_per_round']} calls")
            rows = [("after warm-up", r["after_each_round"][0])]
            rows += [(f"after round {i}", s) for i, s in enumerate(r["after_each_round"]) if i]
            for label, s in [*rows, ("at rest (60 s)", r["at_rest"])]:
                print(
                    f"  {label:<16} RSS {s['rss_mib']:7.1f} MiB (anon {s['anon_mib']:6.1f},"
                    f" file {s['file_mib']:5.1f})  threads {s['threads']:3d}  fds {s['fds']:4d}"
                )
            rest = r["rest_growth_mib"]
            print(
                f"  growth: RSS {r['rss_growth_mib']:+.1f} MiB, threads {r['threads_growth']:+d},"
                f" fds {r['fds_growth']:+d}; at rest: RSS {rest['rss_mib']:+.1f} MiB"
                f" (anon {rest['anon_mib']:+.1f}, file {rest['file_mib']:+.1f})"
            )
            continue
        mode = "translator" if r["translator"] else "mixed"
        print(
            f"Scenario {r['scenario']}: {r['calls']} calls in {r['rooms']} rooms, "
            f"{r['codec']} on the SIP leg ({mode}), {r['workers']} worker(s), "
            f"{r['window_seconds']} s measured"
        )
        print(
            f"  pygasi CPU                       {r['cpu_seconds']:8.2f} s  {r['cpu_per_worker']}"
        )
        print(f"  CPU per call-second              {r['cpu_per_call_second'] * 1000:8.2f} ms")
        print(f"  calls per core                   {r['calls_per_core']:8.1f}")
        print(f"  fraction of one core             {r['core_fraction'] * 100:8.1f} %")
        floor = r["codec_floor_per_call_second"]
        ratio = r["ratio"]
        if floor is not None:
            print(f"  codec floor per call-second      {floor * 1000:8.2f} ms")
        print(f"  ratio to the codec floor         {'-' if ratio is None else f'{ratio:8.2f}'}")
        res = r["resources"]
        for label in ("at_rest", "loaded", "after"):
            for i, s in enumerate(res[label]):
                print(
                    f"  {label:<8} (worker {i})          RSS {s['rss_mib']:7.1f} MiB  "
                    f"threads {s['threads']:3d}  fds {s['fds']:4d}"
                )
        print(f"  RSS per call                     {res['rss_mib_per_call'] * 1024:8.0f} KiB")
        s = r["setup_ms"]
        print(
            f"  setup INVITE -> 200 OK           p50 {_ms(s['invite_to_200_p50'])} ms, "
            f"p99 {_ms(s['invite_to_200_p99'])} ms ({s['samples']} calls)"
        )
        print(
            f"  session-initiate -> accept       p50 {_ms(s['initiate_to_accept_p50'])} ms, "
            f"p99 {_ms(s['initiate_to_accept_p99'])} ms (pygasi's share)"
        )
        d = r.get("delay_ms")
        if d:
            print(
                f"  added delay phone -> meeting     p50 {_ms(d['phone_to_meeting_p50'])} ms, "
                f"p99 {_ms(d['phone_to_meeting_p99'])} ms ({d['samples'][0]} bursts)"
            )
            print(
                f"  added delay meeting -> phone     p50 {_ms(d['meeting_to_phone_p50'])} ms, "
                f"p99 {_ms(d['meeting_to_phone_p99'])} ms ({d['samples'][1]} bursts)"
            )
            g = d["generator_lateness_ms"]
            phone_late, bridge_late = g["probe_phone_sends"], g["bridge_ticks"]
            print(
                f"  generator's own send lateness    probe phone p99 {_ms(phone_late['p99'])} ms"
                f" (max {_ms(phone_late['max'])}), bridge ticks p99 {_ms(bridge_late['p99'])} ms"
                f" (max {_ms(bridge_late['max'])})"
            )
        i = r["inside_pygasi"]
        print(
            f"  inside pygasi                    late {i['phone_to_meeting_late']} + "
            f"{i['meeting_to_phone_late']}, lost {i['phone_to_meeting_lost']} + "
            f"{i['meeting_to_phone_lost']} (phone->meeting + meeting->phone packets), "
            f"socket drops {i['socket_drops']}, clock: longest tick {i['clock_max_tick_ms']} ms,"
            f" skipped {i['clock_skipped']}"
        )
        profile = r.get("profile")
        if profile:
            print(f"  profile of worker 0 ({profile['samples']} samples), self time:")
            for name, percent in profile["self"]:
                print(f"    {percent:5.1f} %  {name}")
            print("  total time (the function and what it called):")
            for name, percent in profile["total"]:
                print(f"    {percent:5.1f} %  {name}")
        if r["generator_late_ticks"]:
            print(f"  (the generator was late {r['generator_late_ticks']} times: figures suspect)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--scenario",
        choices=["rooms", "crowded", "translator", "workers", "leak", "all"],
        default="all",
    )
    parser.add_argument("--calls", type=int, default=40, help="calls (rooms of two)")
    parser.add_argument("--seconds", type=float, default=30.0, help="measurement window")
    parser.add_argument("--rounds", type=int, default=10, help="leak check rounds")
    parser.add_argument("--leak-calls", type=int, default=50, help="calls per leak round")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--profile", action="store_true", help="py-spy profile of worker 0")
    parser.add_argument(
        "--loop", choices=["asyncio", "uvloop"], default="asyncio", help="pygasi's event loop"
    )
    args = parser.parse_args()
    global PROFILE, EVENT_LOOP
    PROFILE = args.profile
    EVENT_LOOP = args.loop
    report = asyncio.run(main_async(args))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)


if __name__ == "__main__":
    main()
