"""RFC 6464 audio levels: the ssrc-audio-level header extension and a simple voice detector.

RFC 6464 §3: the level is expressed in -dBov, 0 (loudest) to 127 (silence), where dBov is the
level relative to the overload point of the system, "the highest-intensity signal encodable by
the payload format", i.e. a full-scale square wave (for 16-bit linear PCM an RMS of 32768). A
full-scale sine therefore reads 3 (-3.01 dBov). Digital silence MUST be 127. The RMS is taken
over the packet's samples and rounded to the nearest dB (the example algorithm of RFC 6465
Appendix A, as libwebrtc's RmsLevel does).

The one-byte extension element (RFC 6464 §3, RFC 8285 one-byte header) carries
``V(1 bit) | level(7 bits)``: V is the sender's voice-activity flag. Its encoder and decoder
belong to the RTP packet (`media.rtp`) and are re-exported here: one definition of the element.

The bridge uses these values for dominant-speaker detection and drops a sender's packets once a
few in a row say 127 (reference/jingle.md); our receive side uses them to tell a silence gap from
packet loss (`media.jitterbuffer`).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from media.frame import FRAME_SAMPLES, PCM
from media.rtp import AudioLevel, decode_audio_level, encode_audio_level

__all__ = [
    "EXTENSION_URI",
    "LOUDEST",
    "SILENCE",
    "AudioLevel",
    "LevelMeter",
    "VoiceActivityDetector",
    "audio_level",
    "decode_audio_level",
    "encode_audio_level",
    "is_silence",
    "level_from_energy",
    "levels_from_energies",
    "max_energy_at_level",
]

SILENCE = 127  # -127 dBov: digital silence (RFC 6464 §3)
LOUDEST = 0
_OVERLOAD_ENERGY = 32768.0 * 32768.0  # a full-scale square wave's mean square

EXTENSION_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"


class LevelMeter:
    """Computes levels with one reused float64 buffer: the sum of squares of int16 samples is
    exact in float64 (960 * 2**30 < 2**53), and the dot product runs in BLAS without a
    temporary array. ~2 µs per 960-sample frame."""

    def __init__(self, max_samples: int = FRAME_SAMPLES) -> None:
        self._buf: npt.NDArray[np.float64] = np.zeros(max_samples, dtype=np.float64)

    def energy(self, pcm: PCM) -> float:
        """Sum of squared samples."""
        n = len(pcm)
        if n > len(self._buf):
            self._buf = np.zeros(n, dtype=np.float64)
        buf = self._buf[:n]
        buf[...] = pcm
        return float(np.dot(buf, buf))

    def level(self, pcm: PCM) -> int:
        """The RFC 6464 level of `pcm` in -dBov (0..127)."""
        return level_from_energy(self.energy(pcm), len(pcm))


def level_from_energy(energy: float, samples: int) -> int:
    """-dBov for a block with this sum of squares: round(-10 log10(mean square / overload))."""
    if samples <= 0 or energy <= 0.0:
        return SILENCE
    dbov = 10.0 * math.log10(energy / (samples * _OVERLOAD_ENERGY))
    return min(SILENCE, max(LOUDEST, round(-dbov)))


def max_energy_at_level(level: int, samples: int) -> float:
    """The largest sum of squares of `samples` whose `level_from_energy` is `level` or quieter:
    `energy <= max_energy_at_level(q, n)` tests `level >= q` without a logarithm."""
    if level <= LOUDEST:
        return math.inf
    if level > SILENCE:
        return -1.0
    # round(-dBov) >= level  <=>  -dBov >= level - 0.5
    return samples * _OVERLOAD_ENERGY * math.pow(10.0, -(level - 0.5) / 10.0)


def levels_from_energies(energies: list[int], samples: int) -> list[int]:
    """`level_from_energy` of each block (same arithmetic), in one call for a room's talking
    phones rather than one per phone."""
    scale = samples * _OVERLOAD_ENERGY
    log10 = math.log10
    return [
        min(SILENCE, max(LOUDEST, round(-(10.0 * log10(energy / scale)))))
        if energy > 0 and samples > 0
        else SILENCE
        for energy in energies
    ]


_METER = LevelMeter()


def audio_level(pcm: PCM) -> int:
    """The RFC 6464 level of a PCM block (module-level meter; not re-entrant across threads,
    which the engine does not use)."""
    return _METER.level(pcm)


def is_silence(level: AudioLevel | None, silence_level: int = SILENCE) -> bool:
    """What the bridge treats as silence: level 127 (or `silence_level`) without the V flag."""
    return level is not None and level.level >= silence_level and not level.voice


class VoiceActivityDetector:
    """Energy threshold with hangover: voice while the level is at or above `threshold_dbov`,
    and for `hangover_frames` frames after it falls below (so word endings and short pauses keep
    the V flag, as a speaker indicator expects)."""

    def __init__(self, threshold_dbov: float = -45.0, hangover_frames: int = 10) -> None:
        self.threshold_level = round(-threshold_dbov)  # in -dBov units: smaller is louder
        self.hangover_frames = hangover_frames
        self._remaining = 0

    def update(self, level: int) -> bool:
        """Feed one frame's level; returns the voice flag for that frame."""
        if level <= self.threshold_level:
            self._remaining = self.hangover_frames
            return True
        if self._remaining > 0:
            self._remaining -= 1
            return True
        return False

    def reset(self) -> None:
        self._remaining = 0
