"""RFC 6464 audio levels: the -dBov scale, the extension byte, voice activity."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from media.errors import MediaParseError
from media.level import (
    SILENCE,
    AudioLevel,
    LevelMeter,
    VoiceActivityDetector,
    audio_level,
    decode_audio_level,
    encode_audio_level,
    is_silence,
    level_from_energy,
    levels_from_energies,
    max_energy_at_level,
)
from media.tones import ToneGenerator


def test_levels_on_the_dbov_scale() -> None:
    square = np.tile(np.array([32767, -32768], dtype=np.int16), 480)
    assert audio_level(square) == 0  # the overload point: a full-scale square wave
    assert audio_level(ToneGenerator(1000, 48000, 0.0).next()) == 3  # full-scale sine: -3.01
    assert audio_level(ToneGenerator(1000, 48000, -10.0).next()) == 13
    assert audio_level(ToneGenerator(440, 8000, -40.0).next(160)) == 43
    assert audio_level(np.tile(np.array([1, -1], dtype=np.int16), 480)) == 90  # 1 LSB: -90.3
    assert audio_level(np.zeros(960, dtype=np.int16)) == SILENCE  # digital silence MUST be 127
    one = np.zeros(960, dtype=np.int16)
    one[0] = 1
    assert audio_level(one) == 120  # quietest non-zero frame: -120.1 dBov
    assert audio_level(np.zeros(0, dtype=np.int16)) == SILENCE


def test_meter_handles_any_length() -> None:
    meter = LevelMeter(160)
    assert meter.level(ToneGenerator(1000, 48000, -20.0).next(1920)) == 23
    assert meter.energy(np.array([3, 4], dtype=np.int16)) == 25.0


def test_extension_byte() -> None:
    assert encode_audio_level(127, False) == b"\x7f"
    assert encode_audio_level(0, True) == b"\x80"
    assert encode_audio_level(42, True) == bytes([0x80 | 42])
    assert decode_audio_level(b"\xaa") == AudioLevel(voice=True, level=0x2A)
    assert decode_audio_level(b"\x7f\x00\x00") == AudioLevel(False, 127)  # padded element
    assert is_silence(decode_audio_level(b"\x7f"))
    assert not is_silence(AudioLevel(voice=True, level=127))
    assert not is_silence(AudioLevel(False, 126)) and not is_silence(None)
    assert is_silence(AudioLevel(False, 100), silence_level=90)
    with pytest.raises(ValueError):
        encode_audio_level(128, False)
    with pytest.raises(MediaParseError):
        decode_audio_level(b"")


@given(st.binary(max_size=4))
def test_decode_raises_only_media_parse_error(data: bytes) -> None:
    try:
        decoded = decode_audio_level(data)
    except MediaParseError:
        assert data == b""
        return
    assert 0 <= decoded.level <= 127
    assert encode_audio_level(decoded.level, decoded.voice) == data[:1]


def test_voice_activity_with_hangover() -> None:
    vad = VoiceActivityDetector(threshold_dbov=-45.0, hangover_frames=3)
    flags = [vad.update(level) for level in [127, 30, 60, 60, 60, 60, 44, 127]]
    assert flags == [False, True, True, True, True, False, True, True]
    vad.reset()
    assert vad.update(60) is False


@given(st.lists(st.integers(min_value=0, max_value=960 * 32768 * 32768), max_size=40))
def test_levels_from_energies_is_level_from_energy_for_each(energies: list[int]) -> None:
    """The mixer's batched levels are exactly the per-block ones (same arithmetic)."""
    expected = [level_from_energy(float(e), 960) for e in energies]
    assert levels_from_energies(energies, 960) == expected
    # Every level boundary of a 960-sample frame, and one either side of it.
    edges = [round(960 * 32768.0**2 * 10.0 ** (-(lv + 0.5) / 10.0)) for lv in range(128)]
    around = [e + d for e in edges for d in (-1, 0, 1) if e + d >= 0]
    assert levels_from_energies(around, 960) == [level_from_energy(float(e), 960) for e in around]


@given(
    st.integers(min_value=0, max_value=160 * 32768 * 32768),
    st.integers(min_value=0, max_value=128),
    st.sampled_from([160, 320, 960]),
)
def test_max_energy_at_level_tests_the_level(energy: int, level: int, samples: int) -> None:
    """`energy <= max_energy_at_level(q, n)` says `level_from_energy(energy, n) >= q` (what the
    jitter buffer asks per frame to find a quiet one), away from a rounding tie."""
    bound = max_energy_at_level(level, samples)
    if bound > 0 and abs(energy - bound) <= 1e-9 * bound + 1:
        return  # exactly on the edge: either answer
    assert (energy <= bound) == (level_from_energy(float(energy), samples) >= level)


def test_max_energy_at_level_edges() -> None:
    assert max_energy_at_level(0, 960) == float("inf")  # every frame is level 0 or quieter
    assert max_energy_at_level(SILENCE + 1, 960) < 0  # no frame is quieter than silence
    assert max_energy_at_level(SILENCE, 960) > 0  # digital silence is level 127
