"""Test tones: generate them, find them again, and write them to WAV files.

Audio in pygasi is checked by frequency, never by "some packets arrived" (design.md, "Testing
with real peers"): each fake participant sends its own sine, and the listener checks which
frequencies it hears. These tools serve the tests and the product's demo.

Levels are in dBFS relative to a full-scale sine (peak 32767 = 0 dBFS, the AES17 convention), so
a -10 dBFS tone has a peak of 10362 and reads -13 dBov in RFC 6464 terms (`media.level`).
"""

from __future__ import annotations

import math
import wave
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from os import PathLike

import numpy as np
import numpy.typing as npt

from media.frame import FRAME_SAMPLES, PCM, SAMPLE_RATE

_F64 = npt.NDArray[np.float64]
FULL_SCALE = 32767.0


def dbfs_to_amplitude(dbfs: float) -> float:
    """Peak amplitude (int16 units) of a sine at `dbfs`."""
    return float(FULL_SCALE * 10.0 ** (dbfs / 20.0))


def amplitude_to_dbfs(amplitude: float) -> float:
    return -math.inf if amplitude <= 0 else 20.0 * math.log10(amplitude / FULL_SCALE)


class ToneGenerator:
    """Phase-continuous sum of sines: successive `next()` calls join without a click, so the
    output can be cut into frames of any size."""

    def __init__(
        self,
        frequencies: float | Sequence[float],
        sample_rate: int = SAMPLE_RATE,
        level_dbfs: float | Sequence[float] = -10.0,
    ) -> None:
        freqs = [float(frequencies)] if isinstance(frequencies, int | float) else list(frequencies)
        levels = (
            [float(level_dbfs)] * len(freqs)
            if isinstance(level_dbfs, int | float)
            else [float(v) for v in level_dbfs]
        )
        if len(levels) != len(freqs):
            raise ValueError("one level per frequency")
        for f in freqs:
            if not 0 < f < sample_rate / 2:
                raise ValueError(f"{f} Hz is not below Nyquist at {sample_rate} Hz")
        self.sample_rate = sample_rate
        self.frequencies = freqs
        self._step = np.array([2.0 * math.pi * f / sample_rate for f in freqs])
        self._amp = np.array([dbfs_to_amplitude(v) for v in levels])
        self._phase = np.zeros(len(freqs))

    def next(self, samples: int = FRAME_SAMPLES) -> PCM:
        """The next `samples` of the tone."""
        n = np.arange(samples, dtype=np.float64)
        phases = self._phase[:, None] + self._step[:, None] * n[None, :]
        signal = (self._amp[:, None] * np.sin(phases)).sum(axis=0)
        self._phase = (self._phase + self._step * samples) % (2.0 * math.pi)
        out: PCM = np.clip(np.rint(signal), -32768, 32767).astype(np.int16)
        return out

    def frames(self, count: int, samples: int = FRAME_SAMPLES) -> list[PCM]:
        return [self.next(samples) for _ in range(count)]


def tone(
    frequency: float,
    duration_s: float,
    sample_rate: int = SAMPLE_RATE,
    level_dbfs: float = -10.0,
) -> PCM:
    """A one-shot sine of `duration_s` seconds."""
    return ToneGenerator(frequency, sample_rate, level_dbfs).next(round(duration_s * sample_rate))


def tone_amplitudes(
    samples: PCM | _F64, sample_rate: int, frequencies: Iterable[float]
) -> dict[float, float]:
    """Estimated peak amplitude (int16 units) of a sine at each frequency.

    This is the Goertzel detector's single DFT bin per frequency, evaluated as one matrix-vector
    product instead of the scalar recurrence (same value, numpy speed). A Hann window keeps a
    strong tone from leaking into its neighbours' bins; the result is scaled so that a pure sine
    of peak A reads A.
    """
    freqs = list(frequencies)
    x = np.asarray(samples, dtype=np.float64)
    n = len(x)
    if n == 0:
        return dict.fromkeys(freqs, 0.0)
    window = np.hanning(n)
    xw = x * window
    t = np.arange(n) / sample_rate
    basis = np.exp(-2j * np.pi * np.outer(np.asarray(freqs, dtype=np.float64), t))
    bins = basis @ xw
    amplitudes = 2.0 * np.abs(bins) / window.sum()
    return {f: float(a) for f, a in zip(freqs, amplitudes, strict=True)}


def goertzel_power(
    samples: PCM | _F64, sample_rate: int, frequencies: Iterable[float]
) -> dict[float, float]:
    """Power (amplitude squared) at each frequency; see `tone_amplitudes`."""
    return {f: a * a for f, a in tone_amplitudes(samples, sample_rate, frequencies).items()}


def dominant_frequency(samples: PCM | _F64, sample_rate: int) -> float:
    """The strongest frequency (Hz) in the block: Hann-windowed FFT, zero-padded 4x, with
    parabolic interpolation of the peak; DC is ignored."""
    x = np.asarray(samples, dtype=np.float64)
    n = len(x)
    if n < 4:
        return 0.0
    x = (x - x.mean()) * np.hanning(n)
    size = 1 << (4 * n - 1).bit_length()
    spectrum = np.abs(np.fft.rfft(x, size))
    spectrum[0] = 0.0
    k = int(np.argmax(spectrum))
    if 0 < k < len(spectrum) - 1:
        a, b, c = np.log(spectrum[k - 1 : k + 2] + 1e-12)
        denom = a - 2 * b + c
        offset = 0.5 * (a - c) / denom if denom != 0 else 0.0
    else:
        offset = 0.0
    return float((k + offset) * sample_rate / size)


@dataclass(frozen=True, slots=True)
class MixtureAnalysis:
    """Which candidate tones a block contains."""

    amplitudes: dict[float, float]  # estimated peak amplitude per candidate frequency
    present: frozenset[float]  # candidates within `relative_db` of the strongest, above floor

    @property
    def strongest(self) -> float | None:
        if not self.amplitudes:
            return None
        return max(self.amplitudes, key=lambda f: self.amplitudes[f])

    def level_dbfs(self, frequency: float) -> float:
        return amplitude_to_dbfs(self.amplitudes[frequency])


def analyse_mixture(
    samples: PCM | _F64,
    sample_rate: int,
    candidates: Iterable[float],
    relative_db: float = -20.0,
    floor_dbfs: float = -60.0,
) -> MixtureAnalysis:
    """Which of `candidates` are present: within `relative_db` of the strongest candidate and
    above `floor_dbfs` (so silence contains no tone at all)."""
    amplitudes = tone_amplitudes(samples, sample_rate, candidates)
    if not amplitudes:
        return MixtureAnalysis({}, frozenset())
    strongest = max(amplitudes.values())
    floor = dbfs_to_amplitude(floor_dbfs)
    relative = strongest * 10.0 ** (relative_db / 20.0)
    present = frozenset(f for f, a in amplitudes.items() if a >= relative and a >= floor)
    return MixtureAnalysis(amplitudes, present)


def rms_dbfs(samples: PCM | _F64) -> float:
    """RMS level in dBFS (a full-scale sine reads 0 dBFS, so its RMS is 32767/sqrt(2))."""
    x = np.asarray(samples, dtype=np.float64)
    if len(x) == 0:
        return -math.inf
    rms = math.sqrt(float(np.dot(x, x)) / len(x))
    return amplitude_to_dbfs(rms * math.sqrt(2.0))


def write_wav(path: str | PathLike[str], samples: PCM, sample_rate: int = SAMPLE_RATE) -> None:
    """Write mono 16-bit PCM to a WAV file."""
    data = np.ascontiguousarray(samples, dtype="<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(data.tobytes())


def read_wav(path: str | PathLike[str]) -> tuple[PCM, int]:
    """(samples, sample_rate) of a mono 16-bit WAV file (the inverse of `write_wav`)."""
    with wave.open(str(path), "rb") as src:
        if src.getnchannels() != 1 or src.getsampwidth() != 2:
            raise ValueError("only mono 16-bit WAV files are supported")
        rate = src.getframerate()
        data = src.readframes(src.getnframes())
    samples: PCM = np.frombuffer(data, dtype="<i2").astype(np.int16)
    return samples, rate
