"""Frame resamplers: exact frame sizes, tones preserved, aliases/images suppressed, streaming."""

from __future__ import annotations

import numpy as np
import pytest

from media.frame import PCM
from media.resample import FrameResampler, lowpass, soxr_backlog
from media.tones import ToneGenerator, dominant_frequency, tone_amplitudes

PAIRS = [(8000, 48000), (48000, 8000), (16000, 48000), (48000, 16000), (8000, 16000), (16000, 8000)]


def _run(resampler: FrameResampler, gen: ToneGenerator, frames: int) -> PCM:
    out = []
    for _ in range(frames):
        y = resampler.process(gen.next(resampler.in_samples))
        assert len(y) == resampler.out_samples and y.dtype == np.int16
        out.append(y.copy())
    return np.concatenate(out)


@pytest.mark.parametrize(("engine"), ["fir", "soxr"])
@pytest.mark.parametrize(("in_rate", "out_rate"), PAIRS)
def test_tone_keeps_frequency_and_level(in_rate: int, out_rate: int, engine: str) -> None:
    r = FrameResampler(in_rate, out_rate, engine=engine)  # type: ignore[arg-type]
    assert (r.in_samples, r.out_samples) == (in_rate // 50, out_rate // 50)
    y = _run(r, ToneGenerator(1000, in_rate, -10.0), 40)
    # Skip the start-up (the soxr engine's primed backlog is silence).
    tail = y[len(y) // 2 :] if engine == "fir" else y[-out_rate // 5 :]
    assert dominant_frequency(tail, out_rate) == pytest.approx(1000.0, abs=1.0)
    amplitude = tone_amplitudes(tail, out_rate, [1000.0])[1000.0]
    assert 20 * np.log10(amplitude / 10362.0) == pytest.approx(0.0, abs=0.1)


@pytest.mark.parametrize(("in_rate", "out_rate"), PAIRS)
def test_fir_suppresses_aliases_and_images(in_rate: int, out_rate: int) -> None:
    low = min(in_rate, out_rate)
    if in_rate > out_rate:
        # Down: a tone above the new Nyquist (0.6 x low rate) must not fold back.
        probe = 0.6 * low
        y = _run(FrameResampler(in_rate, out_rate), ToneGenerator(probe, in_rate, 0.0), 30)
        folded = low - probe
        leak = tone_amplitudes(y[len(y) // 2 :], out_rate, [folded])[folded]
    else:
        # Up: a 1 kHz tone must not leave an image at (low rate - 1 kHz).
        y = _run(FrameResampler(in_rate, out_rate), ToneGenerator(1000, in_rate, 0.0), 30)
        image = low - 1000.0
        leak = tone_amplitudes(y[len(y) // 2 :], out_rate, [image])[image]
    assert 20 * np.log10(max(leak, 1e-3) / 32767.0) < -60.0


@pytest.mark.parametrize(("in_rate", "out_rate"), [(8000, 48000), (48000, 8000), (16000, 48000)])
def test_fir_streaming_equals_filtering_the_whole_signal(in_rate: int, out_rate: int) -> None:
    """Frame boundaries leave no trace: frame-by-frame output is the one-shot filter's output."""
    rng = np.random.default_rng(7)
    x = (rng.standard_normal(in_rate // 50 * 12) * 4000).astype(np.int16)
    r = FrameResampler(in_rate, out_rate)
    streamed = np.concatenate([r.process(f).copy() for f in x.reshape(-1, r.in_samples)]).astype(
        np.int64
    )
    if out_rate > in_rate:
        ratio = out_rate // in_rate
        stuffed = np.zeros(len(x) * ratio)
        stuffed[::ratio] = x
        full = np.convolve(stuffed, ratio * lowpass(ratio))[: len(stuffed)]
    else:
        ratio = in_rate // out_rate
        full = np.convolve(x.astype(np.float64), lowpass(ratio))[ratio - 1 : len(x) : ratio]
    expected = np.clip(np.rint(full), -32768, 32767)
    assert np.abs(streamed - expected).max() <= 1  # float32 arithmetic vs float64


def test_fir_delay_is_a_few_milliseconds() -> None:
    for in_rate, out_rate, bound in [(8000, 48000, 2.5), (48000, 8000, 2.5), (16000, 48000, 1.5)]:
        assert 0.5 < FrameResampler(in_rate, out_rate).delay_ms < bound
    # Measured: an impulse comes out after the reported delay.
    r = FrameResampler(8000, 48000)
    impulse = np.zeros(160, dtype=np.int16)
    impulse[0] = 20000
    y = r.process(impulse)
    assert int(np.argmax(y)) == pytest.approx(r.delay_ms * 48, abs=3)


def test_soxr_engine_is_primed_once_and_reports_its_backlog() -> None:
    # libsoxr's HQ stream works in blocks: a fixed-frame consumer must absorb ~175 ms at 8 kHz.
    assert soxr_backlog(8000, 48000, 160) > 48 * 100
    r = FrameResampler(8000, 48000, engine="soxr")
    assert r.engine == "soxr" and r.delay_ms > 100
    _run(r, ToneGenerator(440, 8000), 100)  # never short of a frame


def test_identity_and_non_integer_ratios() -> None:
    r = FrameResampler(48000, 48000)
    frame = ToneGenerator(1000, 48000).next()
    assert r.process(frame) is frame and r.engine == "identity"
    r = FrameResampler(44100, 48000)
    assert r.engine == "soxr"
    y = _run(r, ToneGenerator(1000, 44100, -10.0), 30)
    assert dominant_frequency(y[-9600:], 48000) == pytest.approx(1000.0, abs=1.0)
    with pytest.raises(ValueError):
        FrameResampler(44100, 48000, engine="fir")


def test_wrong_input_is_refused() -> None:
    r = FrameResampler(8000, 48000)
    with pytest.raises(ValueError):
        r.process(np.zeros(161, dtype=np.int16))
    with pytest.raises(TypeError):
        r.process(np.zeros(160, dtype=np.float32))


def test_silence_shortcut_and_reset() -> None:
    r = FrameResampler(8000, 48000)
    gen = ToneGenerator(1000, 8000, -10.0)
    r.process(gen.next(160))
    # The filter tail of the tone still rings into the first silent frame...
    assert r.process(np.zeros(160, dtype=np.int16)).any()
    # ...then silence is exact (and skips the filter).
    assert not r.process(np.zeros(160, dtype=np.int16)).any()
    after = r.process(gen.next(160))
    assert after.any()
    r.reset()
    assert not r.process(np.zeros(160, dtype=np.int16)).any()


@pytest.mark.parametrize(("in_rate", "out_rate"), PAIRS)
def test_fir_streams_interleaved_are_independent(in_rate: int, out_rate: int) -> None:
    """Resamplers share their per-call work arrays: two streams resampled frame by frame in
    turn come out exactly as each does alone."""
    rng = np.random.default_rng(11)
    signals = [(rng.standard_normal(in_rate // 50 * 6) * 6000).astype(np.int16) for _ in range(2)]
    alone = []
    for x in signals:
        r = FrameResampler(in_rate, out_rate)
        alone.append([r.process(f).copy() for f in x.reshape(-1, r.in_samples)])
    pair = [FrameResampler(in_rate, out_rate) for _ in signals]
    frames = [x.reshape(-1, pair[0].in_samples) for x in signals]
    for k in range(len(frames[0])):
        outs = [r.process(f[k]) for r, f in zip(pair, frames, strict=True)]
        # Each output buffer is the instance's own: still valid after the other's call.
        for i, out in enumerate(outs):
            assert np.array_equal(out, alone[i][k])


def _reference(x: PCM, in_rate: int, out_rate: int) -> PCM:
    """The FIR resampler's definition, computed the slow way in float64: going up by R,
    zero-stuffing then the prototype filter scaled by R; going down, the filtered signal read
    at the newest input sample of every block of R (offset R - 1)."""
    if out_rate > in_rate:
        ratio = out_rate // in_rate
        h = lowpass(ratio) * ratio
        stuffed = np.zeros(len(x) * ratio)
        stuffed[::ratio] = x
        y = np.convolve(stuffed, h)[: len(stuffed)]
    else:
        ratio = in_rate // out_rate
        y = np.convolve(x.astype(np.float64), lowpass(ratio))[ratio - 1 : len(x) : ratio]
    return np.clip(np.rint(y), -32768, 32767).astype(np.int16)


@pytest.mark.parametrize("frame_ms", [10, 20, 30, 60])
@pytest.mark.parametrize(("in_rate", "out_rate"), PAIRS)
def test_fir_is_the_filter_it_claims_for_any_frame_size(
    in_rate: int, out_rate: int, frame_ms: int
) -> None:
    """Frame by frame, one stream alone and several together, the blocked filter gives the
    convolution of the whole signal (within one step of float32 rounding), whatever the frame
    size cuts the blocks into."""
    rng = np.random.default_rng(frame_ms)
    streams = [(rng.standard_normal(in_rate // 50 * 12) * 8000).astype(np.int16) for _ in range(3)]
    streams[1][: len(streams[1]) // 3] = 0  # starts silent: the shortcut, then the filter
    alone = FrameResampler(in_rate, out_rate, frame_ms, engine="fir")
    together = [FrameResampler(in_rate, out_rate, frame_ms, engine="fir") for _ in streams]
    n = alone.in_samples
    frames = [s.reshape(-1, n) for s in streams]
    out_alone = np.concatenate([alone.process(f).copy() for f in frames[0]])
    rows = [
        FrameResampler.process_many(together, [f[k] for f in frames]).copy()
        for k in range(len(frames[0]))
    ]
    out_together = np.stack(rows, axis=1).reshape(len(streams), -1)
    assert np.array_equal(out_together[0], out_alone)
    for signal, out in zip(streams, out_together, strict=True):
        expected = _reference(signal, in_rate, out_rate)
        assert len(out) == len(expected)
        assert np.abs(out.astype(np.int32) - expected).max() <= 1
