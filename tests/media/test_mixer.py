"""The room mixer: N-1 mixes checked by tone frequency, decode-once per room, owner failover,
our own streams' bridge copies ignored, the soft limiter, K-loudest decoding."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media.clock import MediaClock
from media.codecs.opus import OpusEncoder
from media.errors import MediaParseError
from media.frame import FRAME_SAMPLES, PCM, SAMPLE_RATE
from media.jitterbuffer import FrameStatus, JitterFrame
from media.level import audio_level
from media.mixer import MixerConfig, MixerLeg, RemoteSource, RoomMixer, SoftLimiter
from media.rtp import RtpPacket
from media.tones import ToneGenerator, analyse_mixture, dbfs_to_amplitude, tone_amplitudes

TICK = 0.02
CANDIDATES = [400.0, 700.0, 1100.0, 1500.0, 1900.0]


class TonePhone:
    """A local source: a phone whose (already decoded, 48 kHz) audio is a tone, or silence."""

    def __init__(self, frequency: float | None, level_dbfs: float = -10.0) -> None:
        self.gen = ToneGenerator(frequency, SAMPLE_RATE, level_dbfs) if frequency else None
        self.zeros: PCM = np.zeros(FRAME_SAMPLES, dtype=np.int16)
        self.pulls = 0

    def pull(self, now: float) -> JitterFrame:
        self.pulls += 1
        if self.gen is None:
            return JitterFrame(self.zeros, FrameStatus.SILENCE, None, None)
        return JitterFrame(self.gen.next(), FrameStatus.NORMAL, None, None)


class Talker:
    """A conference participant: Opus packets of a tone with their RFC 6464 level."""

    def __init__(self, ssrc: int, frequency: float, level_dbfs: float = -10.0) -> None:
        self.ssrc = ssrc
        self.gen = ToneGenerator(frequency, SAMPLE_RATE, level_dbfs)
        self.encoder = OpusEncoder()
        self.seq = 1000
        self.ts = 50_000

    def packet(self, level: int | None = None) -> RtpPacket:
        pcm = self.gen.next()
        lvl = audio_level(pcm) if level is None else level
        pkt = RtpPacket(111, self.seq & 0xFFFF, self.ts & 0xFFFFFFFF, self.ssrc)
        pkt.payload = self.encoder.encode(pcm)
        pkt.set_audio_level(1, lvl, lvl < 127)
        self.seq += 1
        self.ts += FRAME_SAMPLES
        return pkt


class Room:
    """A mixer with recorders on its legs and a tick counter."""

    def __init__(self, config: MixerConfig | None = None) -> None:
        self.mixer = RoomMixer(config)
        self.heard: dict[str, list[PCM]] = {}
        self.k = 0

    def add_leg(
        self, name: str, phone: TonePhone | None, bridge_ssrcs: Sequence[int] = ()
    ) -> MixerLeg:
        self.heard[name] = []

        def record(leg: MixerLeg, now: float, frames: int) -> None:
            assert leg.mix.dtype == np.int16 and len(leg.mix) == FRAME_SAMPLES
            self.heard[name].append(leg.mix.copy())

        return self.mixer.add_leg(name, phone, record, bridge_ssrcs)

    def run(
        self, ticks: int, talkers: Sequence[Talker] = (), legs: Sequence[str] | None = None
    ) -> None:
        """Each tick: every talker's packet arrives on every leg in `legs` (default: all),
        5 ms before the mixer ticks."""
        for _ in range(ticks):
            now = self.k * TICK
            on = list(self.heard) if legs is None else legs
            for talker in talkers:
                pkt = talker.packet()
                for name in on:
                    self.mixer.put_remote_packet(name, pkt, now - 0.005, 1)
            self.mixer.tick(now)
            self.k += 1

    def tail(self, name: str, ticks: int) -> PCM:
        return np.concatenate(self.heard[name][-ticks:])


def tones_in(x: PCM) -> frozenset[float]:
    return analyse_mixture(x, SAMPLE_RATE, CANDIDATES, relative_db=-20.0).present


def test_each_leg_hears_the_others_never_itself_and_sources_come_and_go() -> None:
    room = Room()
    for name, f in (("a", 400.0), ("b", 700.0), ("c", 1100.0)):
        room.add_leg(name, TonePhone(f))
    room.run(25)
    assert tones_in(room.tail("a", 20)) == {700.0, 1100.0}
    assert tones_in(room.tail("b", 20)) == {400.0, 1100.0}
    assert tones_in(room.tail("c", 20)) == {400.0, 700.0}
    # Exact N-1: the other phones at their own level, nothing of the leg's own voice.
    amps = tone_amplitudes(room.tail("a", 20), SAMPLE_RATE, CANDIDATES)
    assert amps[700.0] == pytest.approx(dbfs_to_amplitude(-10.0), rel=0.02)
    assert amps[400.0] < 1.0

    # A fourth source (a conference participant) joins mid-way: everyone hears it.
    web = Talker(0xA1, 1500.0)
    room.mixer.add_source(web.ssrc)
    room.run(40, [web])
    assert tones_in(room.tail("a", 25)) == {700.0, 1100.0, 1500.0}
    assert tones_in(room.tail("c", 25)) == {400.0, 700.0, 1500.0}

    # It leaves (source-remove): it stops at once, even if stray packets still come.
    room.mixer.remove_source(web.ssrc)
    room.run(20, [web])
    assert tones_in(room.tail("b", 20)) == {400.0, 1100.0}
    assert room.mixer.stats.unknown_ssrc == 20 * 3

    # A call leaves: the others stop hearing its phone.
    room.mixer.remove_leg("c")
    room.run(20)
    assert tones_in(room.tail("a", 20)) == {700.0}
    assert tones_in(room.tail("b", 20)) == {400.0}
    assert room.mixer.stats.mixes == 3 * 85 + 2 * 20


def test_a_source_arriving_on_every_leg_is_decoded_once_per_tick() -> None:
    room = Room()
    for name in ("a", "b", "c"):
        room.add_leg(name, TonePhone(None))
    web = Talker(0xB2, 700.0)
    source = room.mixer.add_source(web.ssrc)
    assert source is not None
    room.run(100, [web])
    stats = source.stats
    assert stats.packets == 100 and stats.copies_ignored == 200
    # A conference leg can ask first and skip the copies before decrypting them.
    now = room.k * TICK
    assert room.mixer.wants("a", web.ssrc, now)
    assert not room.mixer.wants("b", web.ssrc, now)
    assert room.mixer.wants("b", web.ssrc, now + 1.0)  # the owner went quiet: failover
    assert not room.mixer.wants("b", 0x999, now)  # unknown, auto_add off
    assert source.owner == "a"
    # At most one decoder call per tick (the buffer decodes one 20 ms packet per pull).
    assert source.frames_decoded <= stats.frames_pulled <= 100
    assert source.frames_decoded >= 95
    for name in ("a", "b", "c"):
        assert tones_in(room.tail(name, 60)) == {700.0}
    # Every leg got the same (shared) mix: the phones are silent.
    assert room.mixer.stats.full_mixes == 100 and room.mixer.stats.own_mixes == 0
    assert room.mixer.levels() == {web.ssrc: audio_level(web.gen.next())}


def owner_of(source: RemoteSource) -> object:
    return source.owner


def test_owner_failover_when_the_owner_leg_leaves_or_goes_quiet() -> None:
    room = Room()
    for name in ("a", "b", "c"):
        room.add_leg(name, TonePhone(None))
    web = Talker(0xC3, 1100.0)
    source = room.mixer.add_source(web.ssrc)
    assert source is not None
    room.run(30, [web])
    assert owner_of(source) == "a"
    room.mixer.remove_leg("a")
    room.run(30, [web])
    assert owner_of(source) == "b" and source.stats.failovers == 1
    # The stream went on without a gap: the buffer and decoder survived the change.
    heard = room.tail("b", 45)
    assert tones_in(heard) == {1100.0}
    assert source.jitter.stats.concealed == 0 and source.jitter.stats.lost == 0
    # "b" keeps delivering nothing (its transport died) while "c" still does: after the
    # owner timeout "c" takes over.
    room.run(30, [web], legs=["c"])
    assert owner_of(source) == "c" and source.stats.failovers == 2
    heard = room.tail("c", 30).reshape(30, FRAME_SAMPLES)
    assert tones_in(heard[-15:].reshape(-1)) == {1100.0}
    # The gap lasts about the owner timeout (concealment first, then silence).
    silent = int((np.abs(heard).max(axis=1) == 0).sum())
    assert 3 <= silent <= 0.3 / TICK


def test_a_local_phones_bridge_copy_is_ignored() -> None:
    """Phone "a" talks; its audio also comes back from the bridge on SSRC 0xA0 (our uplink's
    SSRC). "b" hears it once, directly, at its own level (not twice as loud)."""
    room = Room(MixerConfig(auto_add=True))
    room.add_leg("a", TonePhone(400.0), bridge_ssrcs=[0xA0])
    room.add_leg("b", TonePhone(None))
    echo = Talker(0xA0, 400.0)
    web = Talker(0xD4, 1900.0)
    room.run(40, [echo, web])
    assert room.mixer.stats.own_copies_ignored == 40 * 2
    assert [s.ssrc for s in room.mixer.sources] == [web.ssrc]  # auto-added, but not ours
    b = room.tail("b", 30)
    assert tones_in(b) == {400.0, 1900.0}
    assert tone_amplitudes(b, SAMPLE_RATE, [400.0])[400.0] == pytest.approx(
        dbfs_to_amplitude(-10.0), rel=0.02
    )
    assert tones_in(room.tail("a", 30)) == {1900.0}
    # Marking an SSRC as ours later drops a source created for it before.
    room.mixer.mark_own_ssrc(web.ssrc, "b")
    assert room.mixer.sources == []
    assert room.mixer.leg("b").bridge_ssrcs == {web.ssrc}
    room.mixer.remove_leg("b")
    room.run(1, [web])
    assert [s.ssrc for s in room.mixer.sources] == [web.ssrc]  # no longer ours


def test_the_soft_limiter_prevents_wrap_around_with_several_loud_sources() -> None:
    freqs = [400.0, 700.0, 1100.0, 1500.0, 1900.0]
    room = Room()
    for i, f in enumerate(freqs):
        room.add_leg(f"p{i}", TonePhone(f, -2.0))
    room.add_leg("listener", None)
    room.run(50)
    out = room.tail("listener", 40).astype(np.int32)
    # The truth: the same five tones summed without any limit.
    true = np.zeros(50 * FRAME_SAMPLES, dtype=np.int32)
    for f in freqs:
        true += ToneGenerator(f, SAMPLE_RATE, -2.0).next(50 * FRAME_SAMPLES)
    true = true[-40 * FRAME_SAMPLES :]
    assert np.abs(true).max() > 3 * 32767  # a plain int16 cast would wrap many times
    assert (true.astype(np.int16) != true).sum() > 1000
    loud = np.abs(true) > 2000
    assert np.all(np.sign(out[loud]) == np.sign(true[loud]))  # no wrap-around
    assert np.abs(out).max() <= 0.9 * 32767 + 1  # no hard clipping at full scale either
    assert np.corrcoef(out, true)[0, 1] > 0.99
    assert tones_in(out.astype(np.int16)) == set(freqs)


def test_soft_limiter_attacks_at_once_and_releases_gradually() -> None:
    limiter = SoftLimiter(threshold=30000.0, release_db=0.5)
    out: PCM = np.zeros(FRAME_SAMPLES, dtype=np.int16)
    quiet = np.full(FRAME_SAMPLES, 1000, dtype=np.int32)
    loud = np.full(FRAME_SAMPLES, 90000, dtype=np.int32)
    limiter.process(quiet, out)
    assert np.all(out == 1000) and limiter.gain == 1.0
    limiter.process(loud, out)
    assert np.all(out == 30000) and limiter.gain == pytest.approx(1 / 3)
    gains = []
    for _ in range(60):
        limiter.process(quiet, out)
        assert out.max() <= 1000  # never above the input: the gain is still recovering
        gains.append(limiter.gain)
    steps = np.diff(20 * np.log10(gains))
    assert np.all(steps >= 0) and np.all(steps <= 0.5 + 1e-6)
    assert (steps > 0).sum() == 19  # 9.5 dB back at 0.5 dB per frame
    assert gains[-1] == 1.0 and np.all(out == 1000)


def test_k_loudest_decodes_only_the_loudest_sources() -> None:
    room = Room(MixerConfig(max_decoded=2))
    room.add_leg("a", TonePhone(None))
    talkers = [
        Talker(1, 400.0, -10.0),
        Talker(2, 700.0, -20.0),
        Talker(3, 1100.0, -30.0),
        Talker(4, 1500.0, -40.0),
    ]
    for t in talkers:
        room.mixer.add_source(t.ssrc)
    room.run(50, talkers)
    sources = {s.ssrc: s for s in room.mixer.sources}
    assert tones_in(room.tail("a", 30)) == {400.0, 700.0}
    assert sources[3].frames_decoded == 0 and sources[4].frames_decoded == 0
    # 1 and 2 took the free slots; 3 and 4 never had one.
    assert sources[3].stats.k_loudest_skips == 50 and sources[4].stats.k_loudest_skips == 50
    assert room.mixer.stats.k_loudest_skips == sum(
        s.stats.k_loudest_skips for s in room.mixer.sources
    )
    # Source 4 starts shouting: it takes the slot of the quietest decoded one (2).
    talkers[3].gen = ToneGenerator(1500.0, SAMPLE_RATE, -3.0)
    room.run(50, talkers)
    assert tones_in(room.tail("a", 30)) == {400.0, 1500.0}
    assert sources[2].stats.k_loudest_skips > 0
    assert room.mixer.stats.k_loudest_changes == 1


def test_silent_remote_source_goes_idle_and_comes_back() -> None:
    """The bridge stops forwarding a silent sender: its source is no longer pulled (nothing to
    decode) and is heard again when it talks."""
    room = Room()
    room.add_leg("a", TonePhone(None))
    web = Talker(7, 700.0)
    source = room.mixer.add_source(web.ssrc)
    assert source is not None
    room.run(30, [web])
    for _ in range(3):  # three silent packets, then nothing (what the bridge forwards)
        pkt = web.packet(level=127)
        room.mixer.put_remote_packet("a", pkt, room.k * TICK - 0.005, 1)
        room.mixer.tick(room.k * TICK)
        room.k += 1
    room.run(10)
    pulled = source.stats.frames_pulled
    room.run(50)
    assert source.stats.frames_pulled == pulled and not source.active
    web.seq += 50  # the bridge drops packets: the sequence continues after the gap
    web.ts += 60 * FRAME_SAMPLES
    room.run(30, [web])
    assert source.active
    assert tones_in(room.tail("a", 25)) == {700.0}
    assert source.jitter.stats.late == 0


@settings(max_examples=150, deadline=None)
@given(data=st.binary(min_size=0, max_size=80), leg=st.sampled_from(["a", "b", "zz"]))
def test_garbage_from_the_bridge_raises_only_the_parse_error(data: bytes, leg: str) -> None:
    mixer = RoomMixer(MixerConfig(auto_add=True))
    mixer.add_leg("a")
    mixer.add_leg("b", TonePhone(None))
    for k in range(3):
        try:
            pkt = RtpPacket.parse(data)
        except MediaParseError:
            return
        mixer.put_remote_packet(leg, pkt, k * TICK, 1)
        mixer.tick(k * TICK)
    mixer.put_remote("a", 5, 1, 2, data, False, 1, 0.0)
    with pytest.raises(MediaParseError):
        mixer.put_remote("a", 5, 70000, 2, data, False, None, 0.1)


class BusyPhone(TonePhone):
    """A phone whose frame takes a while to produce (stands for a big room's work)."""

    def pull(self, now: float) -> JitterFrame:
        end = time.perf_counter() + 0.0003
        while time.perf_counter() < end:
            pass
        return super().pull(now)


async def test_a_large_rooms_tick_is_sliced_by_the_clock() -> None:
    """40 calls whose tick takes ~12 ms: the clock runs the room in steps and the event loop
    gets turns in between; a call leaving in the middle of a tick is simply skipped."""
    mixer = RoomMixer(MixerConfig(slice_legs=4))
    got: dict[int, int] = dict.fromkeys(range(40), 0)

    def count(leg: MixerLeg, now: float, frames: int) -> None:
        got[int(str(leg.id))] += 1

    for i in range(40):
        mixer.add_leg(i, BusyPhone(400.0 + 10 * i), count)
    clock = MediaClock(slice_budget=0.004)
    clock.add(mixer)
    gaps: list[float] = []
    removed_at: list[int] = []

    async def signalling() -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0)
            t = time.perf_counter()
            gaps.append(t - last)
            last = t
            if mixer.stats.ticks == 10 and not removed_at:
                mixer.remove_leg(39)  # while the room's tick 10 is in progress
                removed_at.append(got[39])

    task = asyncio.create_task(signalling())
    clock.start()
    await asyncio.sleep(0.5)
    await clock.stop()
    task.cancel()
    ticks = mixer.stats.ticks
    assert ticks >= 15 and clock.stats.errors == 0
    assert all(got[i] in (ticks, ticks - 1) for i in range(39))  # the last may be cut short
    assert got[39] == removed_at[0] <= 10
    assert clock.stats.slices >= 2 * ticks  # each ~12 ms tick ran in several slices
    assert sum(g > 0.010 for g in gaps) <= ticks // 2  # unsliced: one >= 12 ms per tick


class ScriptedPhone:
    """A local source replaying given frames (any content), one per pull."""

    def __init__(self, frames: list[PCM]) -> None:
        self.frames = frames
        self.k = 0

    def pull(self, now: float) -> JitterFrame:
        pcm = self.frames[self.k % len(self.frames)]
        self.k += 1
        status = FrameStatus.NORMAL if pcm.any() else FrameStatus.SILENCE
        return JitterFrame(pcm, status, None, None)


def test_mixes_and_levels_equal_the_per_leg_definition() -> None:
    """The mixer computes the room's mix-minus, levels and limiting for all talking phones at
    once; each leg must get exactly what the plain per-leg definition gives: the sum of every
    other phone through its own soft limiter (or the full mix through the room's one, with
    its gain, when its phone is silent), and its phone's RFC 6464 level."""
    rng = np.random.default_rng(7)
    legs, ticks = 6, 80
    scripts: list[list[PCM]] = []
    for i in range(legs):
        frames = []
        for t in range(ticks):
            if (t + 3 * i) % 7 < 2:  # silent now and then, at different times per phone
                frames.append(np.zeros(FRAME_SAMPLES, dtype=np.int16))
            else:  # quiet to very loud: the limiters engage and release
                scale = [300.0, 3000.0, 20000.0][(t // 10 + i) % 3]
                frames.append(np.clip(rng.normal(0, scale, FRAME_SAMPLES), -32768, 32767))
        scripts.append([f.astype(np.int16) for f in frames])
    mixer = RoomMixer()
    got: dict[int, list[tuple[PCM, int, bool]]] = {i: [] for i in range(legs)}

    def recorder(i: int) -> Callable[[MixerLeg, float, int], None]:
        def record(leg: MixerLeg, now: float, frames: int) -> None:
            got[i].append((leg.mix.copy(), leg.phone_level, leg.shared))

        return record

    for i in range(legs):
        mixer.add_leg(i, ScriptedPhone(scripts[i]), recorder(i))
    for t in range(ticks):
        mixer.tick(t * TICK)

    full_limiter = SoftLimiter()
    limiters = [SoftLimiter() for _ in range(legs)]
    for t in range(ticks):
        frames = [scripts[i][t] for i in range(legs)]
        total = np.sum([f.astype(np.int32) for f in frames], axis=0)
        full = full_limiter.process(total, np.zeros(FRAME_SAMPLES, dtype=np.int16))
        for i in range(legs):
            mix, level, shared = got[i][t]
            assert level == audio_level(frames[i])
            if frames[i].any():
                expected = limiters[i].process(total - frames[i], np.zeros_like(mix))
                assert not shared
            else:
                limiters[i].gain = full_limiter.gain
                expected = full
                assert shared
            assert np.array_equal(mix, expected), (t, i)
    assert full_limiter.limited_frames > 0 and any(lim.limited_frames for lim in limiters)
