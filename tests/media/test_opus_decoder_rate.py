"""An Opus decoder at a lower output rate (the translator's level meter decodes at 8 kHz)."""

from __future__ import annotations

import numpy as np
import pytest

from media.codecs.opus import OpusDecoder, OpusEncoder
from media.frame import FRAME_SAMPLES, SAMPLE_RATE
from media.level import LevelMeter
from media.tones import ToneGenerator, dominant_frequency


@pytest.mark.parametrize("rate", [8000, 16000, 48000])
def test_a_tone_decodes_at_the_chosen_rate_with_its_frequency_and_level(rate: int) -> None:
    encoder = OpusEncoder()
    tone = ToneGenerator(700.0, SAMPLE_RATE, -20.0)
    decoder = OpusDecoder(rate)
    reference = OpusDecoder()
    out, levels, reference_levels = [], [], []
    meter, reference_meter = LevelMeter(), LevelMeter()
    for _ in range(50):
        payload = encoder.encode(tone.next(FRAME_SAMPLES))
        pcm = decoder.decode(payload)
        assert len(pcm) == FRAME_SAMPLES * rate // SAMPLE_RATE
        out.append(pcm.copy())
        levels.append(meter.level(pcm))
        reference_levels.append(reference_meter.level(reference.decode(payload)))
    audio = np.concatenate(out[10:])
    assert dominant_frequency(audio, rate) == pytest.approx(700.0, abs=10.0)
    # The RFC 6464 level read from it is the full-band decode's, within a dB.
    assert abs(levels[-1] - reference_levels[-1]) <= 1
    assert decoder.conceal().size == FRAME_SAMPLES * rate // SAMPLE_RATE
