"""G.711/G.722 concealment: pitch repetition, fade to silence, no click on recovery."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from media.concealment import Concealer
from media.frame import PCM
from media.tones import ToneGenerator, dominant_frequency, rms_dbfs


def _voiced(rate: int, f0: float = 200.0) -> ToneGenerator:
    # A harmonic-rich periodic signal, like a voiced vowel at pitch f0.
    return ToneGenerator([f0, 2 * f0, 3 * f0], rate, [-12.0, -16.0, -20.0])


def _feed(concealer: Concealer, gen: ToneGenerator, frames: int) -> PCM:
    last = np.zeros(0, dtype=np.int16)
    for _ in range(frames):
        last = concealer.good(gen.next(concealer.frame_samples))
    return last


@pytest.mark.parametrize("rate", [8000, 16000])
def test_first_concealed_frame_continues_the_waveform(rate: int) -> None:
    concealer = Concealer(rate)
    gen = _voiced(rate)
    _feed(concealer, gen, 10)
    truth = gen.next(concealer.frame_samples).astype(np.float64)
    concealed = concealer.conceal().astype(np.float64)
    # The chosen period is the pitch period (5 ms at 200 Hz) or a multiple of it.
    period = rate // 200
    assert concealer.period % period == 0
    # The first 10 ms are repeated at full level and in phase with what was lost.
    head = round(rate * 0.010)
    corr = np.dot(truth[:head], concealed[:head]) / np.sqrt(
        np.dot(truth[:head], truth[:head]) * np.dot(concealed[:head], concealed[:head])
    )
    assert corr > 0.95
    assert dominant_frequency(concealed, rate) == pytest.approx(200.0, abs=5.0)


def test_concealment_fades_to_silence_after_60_ms() -> None:
    concealer = Concealer(8000)
    gen = _voiced(8000)
    _feed(concealer, gen, 10)
    levels = [rms_dbfs(concealer.conceal(80)) for _ in range(8)]  # 10 ms pieces
    assert levels[0] == pytest.approx(rms_dbfs(gen.next(80)), abs=1.5)  # full level first
    assert all(b <= a + 0.1 for a, b in itertools.pairwise(levels[1:]))  # decaying
    assert levels[4] < levels[0] - 6.0
    assert levels[6] == -np.inf and levels[7] == -np.inf  # silence from 60 ms on
    assert concealer.erased_samples == 640


def test_no_history_or_silent_history_conceals_with_silence() -> None:
    concealer = Concealer(8000)
    assert not concealer.conceal().any()
    concealer = Concealer(8000)
    concealer.good(np.zeros(160, dtype=np.int16))
    assert not concealer.conceal().any()


def _max_step(x: PCM) -> int:
    return int(np.abs(np.diff(x.astype(np.int32))).max())


@pytest.mark.parametrize("lost_frames", [1, 2, 5])
def test_first_good_frame_is_blended_in_without_a_click(lost_frames: int) -> None:
    rate = 8000
    concealer = Concealer(rate)
    gen = _voiced(rate)
    _feed(concealer, gen, 10)
    normal_step = max(_max_step(gen.next(160)) for _ in range(5))
    pieces = [concealer.conceal().copy() for _ in range(lost_frames)]
    # The sender's phase moved on while we concealed: resume with a phase jump.
    gen.next(37)
    resumed = concealer.good(gen.next(160).copy())
    joined = np.concatenate([pieces[-1], resumed])
    # No sample-to-sample jump bigger than the signal's own steepest slope (plus a margin):
    # without the cross-fade a phase jump would step by up to twice the amplitude.
    assert _max_step(joined) <= normal_step * 1.3
    assert concealer.erased_samples == 0
    # After the short blend, the frame is the decoded signal itself.
    expected = _voiced(rate)
    expected.next(160 * 15 + 37)  # the 15 frames generated before, and the phase jump
    tail = resumed[80:].astype(np.int32) - expected.next(160)[80:]
    assert np.abs(tail).max() <= 1


def test_history_shorter_frames_and_reset() -> None:
    concealer = Concealer(8000)
    gen = _voiced(8000)
    for _ in range(100):
        concealer.good(gen.next(40))  # 5 ms pieces fill the history too
    assert rms_dbfs(concealer.conceal()) > -20.0
    concealer.reset()
    assert not concealer.conceal().any()
