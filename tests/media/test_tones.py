"""Test-tone tools: generator, Goertzel amplitudes, FFT frequency, mixtures, WAV files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from media.tones import (
    ToneGenerator,
    analyse_mixture,
    dbfs_to_amplitude,
    dominant_frequency,
    goertzel_power,
    read_wav,
    rms_dbfs,
    tone,
    tone_amplitudes,
    write_wav,
)


def test_generator_is_phase_continuous_across_frames() -> None:
    pieces = ToneGenerator(1234.5, 8000, -6.0).frames(7, 113)
    whole = tone(1234.5, 7 * 113 / 8000, 8000, -6.0)
    assert np.abs(np.concatenate(pieces).astype(np.int32) - whole).max() <= 1


def test_generator_level_and_mixture() -> None:
    x = ToneGenerator(1000, 48000, -10.0).next(48000)
    assert int(np.abs(x).max()) == round(dbfs_to_amplitude(-10.0))  # 10362
    assert rms_dbfs(x) == pytest.approx(-10.0, abs=0.01)
    mixed = ToneGenerator([440.0, 880.0], 16000, [-10.0, -30.0]).next(16000)
    amps = tone_amplitudes(mixed, 16000, [440.0, 880.0, 1320.0])
    assert amps[440.0] == pytest.approx(10362, rel=0.01)
    assert amps[880.0] == pytest.approx(1036, rel=0.02)
    assert amps[1320.0] < 5
    assert goertzel_power(mixed, 16000, [440.0])[440.0] == pytest.approx(10362**2, rel=0.02)
    with pytest.raises(ValueError):
        ToneGenerator(5000, 8000)
    with pytest.raises(ValueError):
        ToneGenerator([100.0, 200.0], 8000, [-10.0])


@pytest.mark.parametrize(("freq", "rate"), [(1234.5, 48000), (300.0, 8000), (7000.0, 16000)])
def test_dominant_frequency(freq: float, rate: int) -> None:
    x = tone(freq, 0.2, rate, -20.0)
    assert dominant_frequency(x, rate) == pytest.approx(freq, abs=0.5)


def test_mixture_analysis() -> None:
    candidates = [440.0, 550.0, 660.0, 880.0]
    x = ToneGenerator([440.0, 660.0], 48000, [-10.0, -20.0]).next(9600)
    result = analyse_mixture(x, 48000, candidates)
    assert result.present == {440.0, 660.0}
    assert result.strongest == 440.0
    assert result.level_dbfs(660.0) == pytest.approx(-20.0, abs=0.3)
    assert analyse_mixture(x, 48000, candidates, relative_db=-6.0).present == {440.0}
    assert analyse_mixture(np.zeros(9600, dtype=np.int16), 48000, candidates).present == set()
    assert analyse_mixture(x, 48000, []).strongest is None


def test_wav_round_trip(tmp_path: Path) -> None:
    x = tone(440.0, 0.1, 16000)
    path = tmp_path / "tone.wav"
    write_wav(path, x, 16000)
    y, rate = read_wav(path)
    assert rate == 16000 and np.array_equal(x, y)
