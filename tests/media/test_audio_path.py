"""End-to-end audio paths through real codecs: sender -> lossy, jittery network -> jitter buffer
(decode, conceal, resample) -> 48 kHz frames, checked by tone frequency and level."""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import pytest

from media.codecs import create_decoder, create_encoder
from media.codecs.opus import OpusConfig, OpusEncoder
from media.frame import FRAME_SAMPLES, PCM, SAMPLE_RATE
from media.jitterbuffer import FrameStatus, JitterBuffer, JitterStats
from media.level import SILENCE, audio_level
from media.resample import FrameResampler
from media.tones import ToneGenerator, analyse_mixture, dominant_frequency, tone_amplitudes


@dataclass
class Packet:
    seq: int
    ts: int
    payload: bytes
    arrival: float
    level: int | None = None
    marker: bool = False


def _longest_zero_run_ms(x: PCM) -> float:
    zero = np.concatenate([[0], (x == 0).astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(zero))
    runs = edges[1::2] - edges[::2]
    return float(runs.max()) * 1000.0 / SAMPLE_RATE if len(runs) else 0.0


def _send(
    codec: str,
    frames: list[PCM],
    loss: float,
    jitter_s: float,
    seed: int,
    levels: list[int] | None = None,
    encoder: object | None = None,
) -> list[Packet]:
    """Encode frames sent every 20 ms; drop `loss` of them; delay each by 10 ms + U(0, jitter)
    (which reorders neighbours whenever the draws differ by more than 20 ms)."""
    rng = random.Random(seed)
    enc = encoder if encoder is not None else create_encoder(codec)
    assert hasattr(enc, "encode") and hasattr(enc, "info")
    step = enc.info.frame_ticks
    packets = []
    for k, frame in enumerate(frames):
        data = enc.encode(frame)
        if rng.random() < loss:
            continue
        arrival = k * 0.02 + 0.010 + rng.uniform(0.0, jitter_s)
        level = levels[k] if levels is not None else None
        packets.append(
            Packet((40000 + k) & 0xFFFF, (7_000_000 + k * step) & 0xFFFFFFFF, data, arrival, level)
        )
    return packets


def _receive(
    codec: str, packets: list[Packet], seconds: float
) -> tuple[PCM, list[FrameStatus], JitterStats]:
    jb = JitterBuffer(create_decoder(codec))
    pending = sorted(packets, key=lambda p: p.arrival)
    out, statuses = [], []
    i = 0
    for tick in range(int(seconds / 0.02)):
        now = 0.013 + tick * 0.02
        while i < len(pending) and pending[i].arrival <= now:
            p = pending[i]
            jb.put(p.seq, p.ts, p.payload, p.marker, p.level, p.arrival)
            i += 1
        frame = jb.pull(now)
        assert len(frame.pcm) == FRAME_SAMPLES
        out.append(frame.pcm.copy())
        statuses.append(frame.status)
    return np.concatenate(out), statuses, jb.stats


def test_pcmu_with_loss_reordering_and_jitter() -> None:
    """5 % loss, 30 ms jitter (reordering): the tone comes out at 48 kHz, at its level, and
    the output never goes silent for longer than concealment covers."""
    gen = ToneGenerator(1000, 8000, -10.0)
    packets = _send("pcmu", gen.frames(400, 160), loss=0.05, jitter_s=0.030, seed=11)
    arrival_order = [p.seq for p in sorted(packets, key=lambda p: p.arrival)]
    assert arrival_order != sorted(arrival_order)  # the network did reorder
    pcm, _, stats = _receive("pcmu", packets, 8.4)
    talk = pcm[SAMPLE_RATE // 2 : SAMPLE_RATE * 8]  # the sender talks from 0 to 8 s
    assert dominant_frequency(talk, SAMPLE_RATE) == pytest.approx(1000.0, abs=1.0)
    amplitude = tone_amplitudes(talk, SAMPLE_RATE, [1000.0])[1000.0]
    assert 20 * np.log10(amplitude / 10362.0) == pytest.approx(0.0, abs=1.5)
    assert _longest_zero_run_ms(talk) < 40.0
    assert stats.concealed >= 15 and stats.late <= 4
    assert stats.played + stats.late == len(packets)
    assert 30.0 <= stats.target_delay_ms <= 60.0


def test_meeting_to_phone_chain_resamples_down_and_up() -> None:
    """48 kHz mix -> 8 kHz -> PCMU -> network -> jitter buffer -> 48 kHz: still 1 kHz."""
    down = FrameResampler(SAMPLE_RATE, 8000)
    gen = ToneGenerator(1000, SAMPLE_RATE, -10.0)
    frames = [down.process(gen.next()).copy() for _ in range(150)]
    packets = _send("pcma", frames, loss=0.0, jitter_s=0.010, seed=5)
    pcm, _, stats = _receive("pcma", packets, 3.0)
    talk = pcm[SAMPLE_RATE // 2 : SAMPLE_RATE * 3 - SAMPLE_RATE // 4]
    assert dominant_frequency(talk, SAMPLE_RATE) == pytest.approx(1000.0, abs=1.0)
    assert rms_db(talk) == pytest.approx(-10.0, abs=0.5)
    assert stats.concealed == 0 and _longest_zero_run_ms(talk) == 0.0


def rms_db(x: PCM) -> float:
    amplitude = tone_amplitudes(x, SAMPLE_RATE, [1000.0])[1000.0]
    return float(20 * np.log10(amplitude / 32767.0))


def test_g722_with_loss() -> None:
    gen = ToneGenerator(1000, 16000, -10.0)
    packets = _send("g722", gen.frames(250, 320), loss=0.05, jitter_s=0.020, seed=3)
    pcm, _, stats = _receive("g722", packets, 5.2)
    talk = pcm[SAMPLE_RATE // 2 : SAMPLE_RATE * 5]
    assert dominant_frequency(talk, SAMPLE_RATE) == pytest.approx(1000.0, abs=1.0)
    assert rms_db(talk) == pytest.approx(-10.0, abs=1.5)
    assert stats.concealed > 0 and _longest_zero_run_ms(talk) < 40.0


def test_opus_loss_uses_plc_and_fec_and_keeps_the_tones() -> None:
    # A voiced, speech-like signal (SILK codes it and adds LBRR for in-band FEC).
    harmonics = [200.0, 400.0, 600.0, 1000.0]
    gen = ToneGenerator(harmonics, SAMPLE_RATE, [-14.0, -16.0, -18.0, -16.0])
    encoder = OpusEncoder(OpusConfig(packet_loss_perc=20))
    packets = _send("opus", gen.frames(300), loss=0.10, jitter_s=0.025, seed=7, encoder=encoder)
    pcm, statuses, stats = _receive("opus", packets, 6.4)
    assert stats.fec_recovered > 0 and stats.concealed > 0
    assert FrameStatus.FEC_RECOVERED in statuses and FrameStatus.CONCEALED in statuses
    talk = pcm[SAMPLE_RATE // 2 : SAMPLE_RATE * 6]
    mixture = analyse_mixture(talk, SAMPLE_RATE, [*harmonics, 300.0, 800.0], relative_db=-12.0)
    assert mixture.present == set(harmonics)
    assert _longest_zero_run_ms(talk) < 40.0


def test_bridge_silence_gap_over_opus_is_silence_and_the_next_spurt_is_prompt() -> None:
    """The sender talks 2 s, is silent 3 s, talks 2 s. The sender computes RFC 6464 levels
    per frame; the bridge forwards three silent packets, then drops the rest until talk
    resumes (sequence numbers rewritten to stay contiguous)."""
    gen = ToneGenerator(440, SAMPLE_RATE, -12.0)
    frames = [
        gen.next() if 0 <= k < 100 or 250 <= k < 340 else np.zeros(960, dtype=np.int16)
        for k in range(350)
    ]
    levels = [audio_level(f) for f in frames]
    assert levels[150] == SILENCE and levels[0] < 20
    packets = _send("opus", frames, loss=0.0, jitter_s=0.010, seed=1, levels=levels)
    forwarded = [p for k, p in enumerate(packets) if k < 103 or 250 <= k < 343]
    for offset, p in enumerate(forwarded):
        p.seq = (40000 + offset) & 0xFFFF
    forwarded[103].marker = True
    pcm, statuses, stats = _receive("opus", forwarded, 7.2)
    assert stats.concealed == 0 and stats.lost == 0 and stats.resyncs == 0
    gap = statuses[110:250]
    assert all(s is FrameStatus.SILENCE for s in gap) and not pcm[110 * 960 : 250 * 960].any()
    # Talk resumes at 5.0 s (+10 ms network): audible within the target delay.
    resumed = next(k for k in range(250, 350) if statuses[k] is FrameStatus.NORMAL)
    assert (resumed * 0.02 + 0.013) - (250 * 0.02 + 0.010) <= stats.target_delay_ms / 1000 + 0.021
    second = pcm[(resumed + 5) * 960 : 340 * 960]
    assert dominant_frequency(second, SAMPLE_RATE) == pytest.approx(440.0, abs=1.0)
