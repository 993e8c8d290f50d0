"""Jitter buffer behaviour, with a scripted decoder so that every played packet is visible."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media.codecs import CodecInfo, Decoder
from media.errors import MediaParseError
from media.frame import PCM
from media.jitterbuffer import FrameStatus, JitterBuffer, JitterConfig

# 8 kHz RTP clock (160 ticks per frame, like PCMU) but 48 kHz PCM, so no resampling: output
# samples carry the identity of the packet they came from.
FAKE = CodecInfo("FAKE", 8000, 48000)
CONCEALED = -7
RECOVERED = -9
TICKS = 160
FRAME_S = 0.02


class ScriptedDecoder(Decoder):
    """Payload = 4-byte packet id [+ b"F" when it carries FEC for the previous packet];
    b"D" is a DTX frame; a payload starting with 0xEE is undecodable."""

    info = FAKE

    def __init__(self) -> None:
        self.decoded: list[int] = []
        self.recovered: list[int] = []
        self.positions: list[int] = []  # playout position (extended timestamp) at each decode
        self.probe: Callable[[], int] | None = None
        self._buf = np.zeros(960, dtype=np.int16)

    def decode(self, payload: bytes) -> PCM:
        if payload[:1] == b"\xee":
            raise MediaParseError("undecodable")
        if payload == b"D":
            self._buf.fill(0)
            return self._buf
        ident = int.from_bytes(payload[:4], "big")
        self.decoded.append(ident)
        if self.probe is not None:
            self.positions.append(self.probe())
        self._buf.fill(ident % 30000 + 1)
        return self._buf

    def conceal(self, samples: int | None = None) -> PCM:
        out = self._buf[: samples or 960]
        out.fill(CONCEALED)
        return out

    def can_recover(self, next_payload: bytes) -> bool:
        return next_payload[4:5] == b"F"

    def recover(self, next_payload: bytes, samples: int | None = None) -> PCM:
        self.recovered.append(int.from_bytes(next_payload[:4], "big") - 1)
        out = self._buf[: samples or 960]
        out.fill(RECOVERED)
        return out

    def is_dtx(self, payload: bytes) -> bool:
        return payload == b"D"


def payload(ident: int, fec: bool = False) -> bytes:
    return ident.to_bytes(4, "big") + (b"F" if fec else b"")


@dataclass
class Sent:
    ident: int
    seq: int
    ts: int
    arrival: float
    marker: bool = False
    level: int | None = None
    data: bytes = b""


@dataclass
class Run:
    """Drives a buffer: packets arrive at their times, pull() every 20 ms."""

    jb: JitterBuffer
    decoder: ScriptedDecoder
    statuses: list[FrameStatus] = field(default_factory=list)
    values: list[int] = field(default_factory=list)  # first sample of each frame
    pulls_at: list[float] = field(default_factory=list)

    def play(self, packets: list[Sent], until: float, phase: float = 0.007) -> None:
        pending = sorted(packets, key=lambda p: p.arrival)
        i = 0
        t = phase + len(self.pulls_at) * FRAME_S
        while t < until:
            while i < len(pending) and pending[i].arrival <= t:
                p = pending[i]
                self.jb.put(p.seq, p.ts, p.data or payload(p.ident), p.marker, p.level, p.arrival)
                i += 1
            frame = self.jb.pull(t)
            assert len(frame.pcm) == 960
            self.statuses.append(frame.status)
            self.values.append(int(frame.pcm[0]))
            self.pulls_at.append(t)
            t += FRAME_S

    def first_pull_with(self, value: int) -> float:
        return self.pulls_at[self.values.index(value % 30000 + 1)]


def new_run(config: JitterConfig | None = None) -> Run:
    dec = ScriptedDecoder()
    return Run(JitterBuffer(dec, config), dec)


def talk(
    first: int,
    count: int,
    seq0: int = 1000,
    ts0: int = 50_000,
    t0: float = 0.0,
    level: int | None = None,
    jitter: list[float] | None = None,
    end_silent: bool = True,
) -> list[Sent]:
    """Packets first..first+count-1 sent every 20 ms, arriving 5 ms (+ jitter) later. The last
    one says "silence" (RFC 6464 level 127) unless `end_silent` is False, so that pulling past
    the end is silence, not loss."""
    out = []
    for k in range(count):
        n = first + k
        extra = jitter[k] if jitter else 0.0
        out.append(
            Sent(
                n,
                (seq0 + n) & 0xFFFF,
                (ts0 + n * TICKS) & 0xFFFFFFFF,
                t0 + n * FRAME_S + 0.005 + extra,
                level=level,
            )
        )
    if end_silent and out:
        out[-1].level = 127
    return out


def test_in_order_stream_plays_every_packet_in_order_after_the_initial_delay() -> None:
    run = new_run()
    run.play(talk(0, 50, end_silent=False), until=1.2)
    assert run.decoder.decoded == list(range(50))
    stats = run.jb.stats
    assert (stats.played, stats.late, stats.duplicates) == (50, 0, 0)
    last = run.values.index(50)
    assert FrameStatus.CONCEALED not in run.statuses[:last]
    # After the stream stops (no silence indication): 100 ms of concealment, then silence.
    assert (
        run.statuses[last + 1 : last + 8] == [FrameStatus.CONCEALED] * 5 + [FrameStatus.SILENCE] * 2
    )
    # Packet 0 arrives at 5 ms and plays once it has waited the initial 40 ms target.
    assert run.first_pull_with(0) - 0.005 == pytest.approx(0.04, abs=0.011)
    normal = [v for s, v in zip(run.statuses, run.values, strict=True) if s is FrameStatus.NORMAL]
    assert normal == [n % 30000 + 1 for n in range(50)]


def test_reordering_within_the_window_is_undone() -> None:
    packets = talk(0, 40)
    for k in range(2, 38, 5):  # swap neighbours: the later one arrives 10 ms earlier
        packets[k].arrival, packets[k + 1].arrival = packets[k + 1].arrival, packets[k].arrival
    run = new_run()
    run.play(packets, until=1.0)
    assert run.decoder.decoded == list(range(40))
    assert run.jb.stats.lost == 0


def test_duplicates_and_late_packets_are_dropped_and_counted() -> None:
    packets = talk(0, 30)
    packets.append(Sent(7, packets[7].seq, packets[7].ts, packets[7].arrival + 0.001))
    packets[20].arrival += 0.3  # far beyond its playout time
    run = new_run()
    run.play(packets, until=0.8)
    stats = run.jb.stats
    assert stats.duplicates == 1
    assert stats.late == 1
    assert run.decoder.decoded == [n for n in range(30) if n != 20]
    assert stats.concealed == 1 and CONCEALED in run.values


@pytest.mark.parametrize(("seq0", "ts0"), [(65530, 0xFFFFFFFF - 5 * TICKS), (0xFFFF, 0xFFFFFF00)])
def test_sequence_and_timestamp_wrap(seq0: int, ts0: int) -> None:
    packets = talk(0, 30, seq0=seq0, ts0=ts0)
    packets[12].arrival, packets[13].arrival = packets[13].arrival, packets[12].arrival
    run = new_run()
    run.play(packets, until=0.8)
    assert run.decoder.decoded == list(range(30))
    assert (run.jb.stats.lost, run.jb.stats.resyncs, run.jb.stats.late) == (0, 0, 0)


def test_loss_of_loud_audio_is_concealed_then_recovers() -> None:
    packets = [p for p in talk(0, 40, level=20) if p.ident not in (10, 11)]
    run = new_run()
    run.play(packets, until=1.0)
    assert run.jb.stats.concealed == 2 and run.jb.stats.lost == 2
    i = run.values.index(10)  # packet 9's value is 9 % 30000 + 1
    assert run.values[i + 1 : i + 3] == [CONCEALED, CONCEALED]
    assert run.values[i + 3] == 13
    assert run.statuses[i + 1] is FrameStatus.CONCEALED


def test_in_band_fec_is_used_when_the_next_packet_is_there() -> None:
    packets = [p for p in talk(0, 30) if p.ident != 10]
    packets[10].data = payload(11, fec=True)  # packet 11 carries FEC for 10
    run = new_run()
    run.play(packets, until=0.8)
    assert run.decoder.recovered == [10]
    assert run.jb.stats.fec_recovered == 1 and run.jb.stats.concealed == 0
    assert FrameStatus.FEC_RECOVERED in run.statuses and RECOVERED in run.values


def _gap_stream(contiguous_seq: bool, level: int | None) -> tuple[list[Sent], Sent]:
    """Talk 0-24, silence for 2 s (the bridge dropped it), talk again from packet 125."""
    first = talk(0, 25, level=level, end_silent=False)
    if level is not None:
        for p in first[-3:]:
            p.level = 127  # the last packets before the gap were marked silent
    second = talk(125, 25, level=level)
    if contiguous_seq:
        for p in second:
            p.seq = (1000 + p.ident - 100) & 0xFFFF  # seq continues at 25, timestamp jumps
    second[0].marker = True
    return first + second, second[0]


@pytest.mark.parametrize("contiguous_seq", [False, True])
def test_silence_suppression_gap_is_silence_without_resync(contiguous_seq: bool) -> None:
    packets, resume = _gap_stream(contiguous_seq, level=30)
    run = new_run()
    run.play(packets[:25], until=1.0)
    target_before = run.jb.stats.target_delay_ms
    run.play(packets[25:], until=3.8)
    stats = run.jb.stats
    assert stats.concealed == 0 and stats.lost == 0 and stats.resyncs == 0 and stats.late == 0
    assert run.decoder.decoded == list(range(25)) + list(range(125, 150))
    gap = run.statuses[run.values.index(25) + 1 : run.values.index(126)]
    assert len(gap) > 80 and all(s is FrameStatus.SILENCE for s in gap)
    # The talk-spurt after the gap plays promptly: after the target delay, within a tick.
    waited = run.first_pull_with(125) - resume.arrival
    assert target_before - 25 < waited * 1000 < target_before + 25
    assert stats.target_delay_ms <= target_before


def test_gap_without_levels_is_concealed_briefly_then_silent() -> None:
    packets, _ = _gap_stream(contiguous_seq=False, level=None)
    packets[25].marker = False
    run = new_run()
    run.play(packets, until=3.8)
    stats = run.jb.stats
    # A phone without RFC 6464 levels: the gap looks like loss at first. Concealment stops
    # after max_conceal_ms (100 ms = 5 frames), then silence, and the next spurt plays.
    assert stats.concealed == 5
    assert run.decoder.decoded == list(range(25)) + list(range(125, 150))
    assert run.statuses.count(FrameStatus.SILENCE) > 80


def test_marker_bit_starts_a_talk_spurt() -> None:
    # Loud talk, two packets missing, then a packet with the marker: the gap was a pause.
    packets = [p for p in talk(0, 30, level=20) if p.ident not in (10, 11)]
    packets[10].marker = True  # packet 12
    run = new_run()
    run.play(packets, until=0.8)
    assert run.jb.stats.concealed == 0
    i = run.values.index(10)
    assert run.statuses[i + 1 : i + 3] == [FrameStatus.SILENCE, FrameStatus.SILENCE]


def test_dtx_and_comfort_noise_mean_silence() -> None:
    packets = talk(0, 20)
    packets[9].data = b"D"  # DTX at 9, then nothing until 15
    packets = [p for p in packets if p.ident not in range(10, 15)]
    run = new_run()
    run.play(packets, until=0.7)
    assert run.jb.stats.concealed == 0
    assert run.decoder.decoded == [*range(9), *range(15, 20)]

    # RFC 3389 comfort noise (PT 13, flagged by the caller) is silence too.
    jb = JitterBuffer(ScriptedDecoder())
    for n in range(5):
        jb.put(n, n * TICKS, payload(n), False, None, n * FRAME_S)
    jb.put(5, 5 * TICKS, b"\x40", False, None, 0.1, comfort_noise=True)
    statuses = [jb.pull(0.05 + k * FRAME_S).status for k in range(12)]
    assert jb.stats.concealed == 0
    assert statuses[-4:] == [FrameStatus.SILENCE] * 4


def test_undecodable_payload_is_concealed_and_counted() -> None:
    packets = talk(0, 20)
    packets[8].data = b"\xee\x00"
    run = new_run()
    run.play(packets, until=0.6)
    assert run.jb.stats.decode_errors == 1 and run.jb.stats.concealed == 1


def test_target_delay_grows_with_jitter_up_to_the_cap_and_shrinks_slowly() -> None:
    rng = np.random.default_rng(3)
    jittery = list(rng.uniform(0.0, 0.06, 150))
    run = new_run()
    run.play(talk(0, 150, jitter=jittery), until=3.2)
    stats = run.jb.stats
    assert 65 <= stats.target_delay_ms <= 80  # 60 ms spread + 15 ms margin
    assert stats.late <= 3  # only while the estimate was still growing
    # Jitter stops: the target falls no faster than 10 ms per second.
    run.play(talk(150, 150), until=6.2)
    assert 40 <= run.jb.stats.target_delay_ms <= 80
    run.play(talk(300, 350), until=13.2)
    assert run.jb.stats.target_delay_ms == pytest.approx(20.0, abs=1.0)

    capped = new_run()
    capped.play(talk(0, 100, jitter=list(rng.uniform(0.0, 0.5, 100))), until=2.5)
    assert capped.jb.stats.target_delay_ms == 200.0


def test_clock_jump_resyncs_playout() -> None:
    first = talk(0, 20)
    second = talk(20, 20, ts0=50_000 + 8000 * 3600)  # the sender's clock jumped by an hour
    run = new_run()
    run.play(first + second, until=1.2)
    assert run.jb.stats.resyncs == 1
    assert run.decoder.decoded[:20] == list(range(20))
    assert run.decoder.decoded[20:] == list(range(20, 40))


def test_memory_is_bounded_by_capacity() -> None:
    jb = JitterBuffer(ScriptedDecoder(), JitterConfig(capacity=16))
    for n in range(200):  # a burst far ahead of playout, all at once
        jb.put(n, n * TICKS, payload(n), False, None, 0.0)
    assert jb.buffered <= 16
    assert jb.stats.dropped >= 184


ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("put"),
            st.integers(0, 0xFFFF),
            st.integers(0, 0xFFFFFFFF),
            st.booleans(),
            st.one_of(st.none(), st.integers(0, 127)),
            st.floats(-1e3, 1e6),
        ),
        st.tuples(st.just("near"), st.integers(-40, 40), st.integers(-40, 40), st.booleans()),
        st.tuples(st.just("pull"), st.floats(0.0, 0.5)),
    ),
    max_size=120,
)


@settings(max_examples=60, deadline=None)
@given(ops, st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF))
def test_any_arrival_pattern_keeps_order_and_bounds(
    operations: list[tuple[object, ...]], seq0: int, ts0: int
) -> None:
    """Arbitrary orders, duplicates, wraps and garbage: packets are decoded in timestamp order
    (between resyncs), memory stays bounded, nothing but MediaParseError escapes."""
    decoder = ScriptedDecoder()
    jb = JitterBuffer(decoder, JitterConfig(capacity=24, duplicate_memory=64))
    decoder.probe = lambda: jb._write_ts
    now = 0.0
    ident = 0
    epochs: list[int] = []  # resync count at each decode
    for op in operations:
        if op[0] == "put":
            _, seq, ts, marker, level, arrival = op
            assert isinstance(seq, int) and isinstance(ts, int) and isinstance(arrival, float)
            assert level is None or isinstance(level, int)
            ident += 1
            jb.put(seq, ts, payload(ident), bool(marker), level, arrival)
        elif op[0] == "near":
            # Mostly-sane traffic around a moving point: reorders, duplicates, wraps.
            _, dseq, dts, marker = op
            assert isinstance(dseq, int) and isinstance(dts, int)
            ident += 1
            seq = (seq0 + ident + dseq) & 0xFFFF
            ts = (ts0 + (ident + dts) * TICKS) & 0xFFFFFFFF
            jb.put(seq, ts, payload(ident), bool(marker), None, now + 0.005)
        else:
            step = op[1]
            assert isinstance(step, float)
            now += step
            before = len(decoder.decoded)
            frame = jb.pull(now)
            assert len(frame.pcm) == 960 and frame.pcm.dtype == np.int16
            epochs.extend([jb.stats.resyncs] * (len(decoder.decoded) - before))
        assert jb.buffered <= 24
        assert jb._seen.bit_length() <= 64 and len(jb._outliers) <= 3
    assert len(set(decoder.decoded)) == len(decoder.decoded)  # nothing played twice
    # Within one playout epoch (between resyncs), packets come out in timestamp order.
    for k in range(1, len(epochs)):
        if epochs[k] == epochs[k - 1]:
            assert decoder.positions[k] > decoder.positions[k - 1]
