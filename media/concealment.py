"""Packet-loss concealment for waveform codecs (G.711, G.722), in the spirit of G.711 Appendix I.

G.711 Appendix I conceals an erased frame by repeating the last pitch period of the good signal,
smoothing the joins with overlap-add, and attenuating the repetition as the erasure goes on
(none for the first 10 ms, then 20 % per 10 ms, silence after 60 ms) so that a long loss does not
turn into an endless buzz. The first good frame after the erasure is cross-faded in over a few
milliseconds so that there is no click. This module does the same at any sample rate, without
Appendix I's 3.75 ms look-ahead delay (we cannot rewrite samples already played, so the wrap of
the repeated period is smoothed inside the template instead).

Opus does not use this: libopus has its own PLC (`media.codecs.opus`).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from media.frame import FRAME_MS, PCM, samples_per_frame

_F32 = npt.NDArray[np.float32]

# G.711 Appendix I figures, in milliseconds.
MIN_PITCH_MS = 5.0  # 200 Hz, the highest pitch searched
MAX_PITCH_MS = 15.0  # ~66 Hz, the lowest
CORRELATION_MS = 20.0  # length of the window matched against the past
FULL_GAIN_MS = 10.0  # no attenuation during the first 10 ms of an erasure
FADE_END_MS = 60.0  # silence once the erasure reaches 60 ms
BLEND_MAX_MS = 10.0  # longest cross-fade into the first good frame


class Concealer:
    """Loss concealment state for one decoded stream at `sample_rate`.

    Call `good()` with every decoded frame (it records history and, right after an erasure,
    cross-fades the frame in, in place) and `conceal()` for every missing one. A decoder that
    can write its output anywhere writes it into `slot(samples)` first: then recording it is
    free.
    """

    def __init__(self, sample_rate: int, frame_ms: int = FRAME_MS) -> None:
        self.sample_rate = sample_rate
        self.frame_samples = samples_per_frame(sample_rate, frame_ms)
        per_ms = sample_rate / 1000.0
        self._min_pitch = max(2, round(MIN_PITCH_MS * per_ms))
        self._max_pitch = max(self._min_pitch + 1, round(MAX_PITCH_MS * per_ms))
        self._corr_len = round(CORRELATION_MS * per_ms)
        self._full_gain = round(FULL_GAIN_MS * per_ms)
        self._fade_end = round(FADE_END_MS * per_ms)
        self._blend_max = round(BLEND_MAX_MS * per_ms)
        self._per_ms = per_ms
        # History must hold the correlation window plus the longest lag, and a quarter period
        # more for the wrap cross-fade.
        self._hist_len = self._corr_len + self._max_pitch + self._max_pitch // 4 + 1
        # The history is the `_hist_len` samples before `_end` in a longer line: a decoder that
        # writes its output into `slot()` has recorded it, with no copy (good() used to shift
        # the history and copy every frame in: two copies per frame).
        # (32 frames: the history moves back once per 32 frames, a copy of ~1 KB at 8 kHz.)
        self._line: PCM = np.zeros(self._hist_len + 32 * self.frame_samples, dtype=np.int16)
        self._end = self._hist_len
        self._slot: PCM | None = None
        self._heard = False  # any non-silent history at all
        self._template: _F32 = np.zeros(self._max_pitch, dtype=np.float32)
        self._period = self._min_pitch
        self._phase = 0
        self._erased = 0  # samples concealed in the current erasure
        self._out: PCM = np.zeros(self.frame_samples * 6, dtype=np.int16)

    @property
    def erased_samples(self) -> int:
        """Length of the erasure in progress (0 when the last frame was good)."""
        return self._erased

    @property
    def period(self) -> int:
        """The pitch period (samples) chosen for the current or last erasure."""
        return self._period

    @property
    def _history(self) -> PCM:
        return self._line[self._end - self._hist_len : self._end]

    def reset(self) -> None:
        self._line.fill(0)
        self._end = self._hist_len
        self._slot = None
        self._heard = False
        self._erased = 0
        self._phase = 0

    def slot(self, samples: int) -> PCM:
        """Where a decoder may write its next `samples` of output before passing them to
        `good()`: right after the history, so recording them costs nothing. Valid until the
        next call."""
        end = self._end
        if end + samples > len(self._line):
            # Move the history back to the start of the line (every few frames).
            h = self._hist_len
            line = self._line
            if h + samples > len(line):  # a packet longer than six frames
                line = np.zeros(h + samples, dtype=np.int16)
            line[:h] = self._line[end - h : end]
            self._line = line
            end = self._end = h
        slot = self._slot = self._line[end : end + samples]
        return slot

    def good(self, pcm: PCM) -> PCM:
        """Record a correctly decoded frame; after an erasure, blend it in (modifies `pcm`)."""
        n = len(pcm)
        if n == 0:
            return pcm
        if self._erased:
            self._blend_into(pcm)
            self._erased = 0
        if pcm is not self._slot:
            self.slot(n)[:] = pcm  # decoded elsewhere: record a copy
        self._slot = None
        self._end += n
        self._heard = True
        return pcm

    def decode_table(self, table: PCM, payload: bytes) -> PCM:
        """A frame of a one-octet-per-sample table codec (G.711) decoded straight into the
        history: `slot()`, the table lookup and `good()` in one call (it runs per packet)."""
        n = len(payload)
        end = self._end
        if self._erased or not n or end + n > len(self._line):
            out = self.slot(n)
            table.take(np.frombuffer(payload, np.uint8), out=out, mode="clip")
            return self.good(out)
        out = self._line[end : end + n]
        # Every octet indexes the 256-entry table: mode="clip" never clips, it only skips
        # the bounds check.
        table.take(np.frombuffer(payload, np.uint8), out=out, mode="clip")
        self._end = end + n
        self._slot = None
        self._heard = True
        return out

    def conceal(self, samples: int | None = None) -> PCM:
        """`samples` (default one frame) of concealment; a view of an internal buffer."""
        n = self.frame_samples if samples is None else samples
        if n > len(self._out):
            self._out = np.zeros(n, dtype=np.int16)
        out = self._out[:n]
        if self._erased == 0:
            self._start_erasure()
        if self._erased >= self._fade_end or not self._heard:
            out.fill(0)
        else:
            out[:] = np.rint(self._synthesise(n))
        self._erased += n
        return out

    # -- internals -------------------------------------------------------------------------

    def _start_erasure(self) -> None:
        x = self._history.astype(np.float32)
        self._period = self._estimate_pitch(x)
        p = self._period
        h = self._hist_len
        q = max(1, p // 4)
        template = self._template[:p]
        template[:] = x[h - p :]
        # Smooth the wrap from the end of the period back to its start: the last quarter period
        # fades into the samples one period earlier, which lead into x[h - p] (Appendix I's
        # overlap-add at the pitch buffer boundary).
        w = np.linspace(0.0, 1.0, q, dtype=np.float32)
        template[p - q :] = (1.0 - w) * x[h - q :] + w * x[h - p - q : h - p]
        self._phase = 0

    def _estimate_pitch(self, x: _F32) -> int:
        """The lag (min..max pitch) whose past window best matches the newest window
        (normalised cross-correlation, Appendix I's pitch search without its decimation)."""
        h, w = self._hist_len, self._corr_len
        lo, hi = self._min_pitch, self._max_pitch
        ref = x[h - w :]
        ref_energy = float(np.dot(ref, ref))
        if ref_energy <= 0.0:
            return lo
        # Window k starts at h - w - hi + k, i.e. lag = hi - k. np.correlate runs the dot
        # products in C; running sums of squares give every window's energy.
        past = x[h - w - hi : h - lo].astype(np.float64)
        dots = np.correlate(past, ref.astype(np.float64), "valid")
        squares = np.concatenate(([0.0], np.cumsum(past * past)))
        energies = squares[w:] - squares[:-w]
        score = dots / np.sqrt(np.maximum(energies, 1e-9) * ref_energy)
        return int(hi - int(np.argmax(score)))

    def _gains(self, start: int, n: int) -> _F32:
        """Attenuation for erased samples start..start+n: 1 for the first 10 ms, then a linear
        ramp reaching 0 at 60 ms (Appendix I's 20 % per 10 ms, without the steps)."""
        idx = np.arange(start, start + n, dtype=np.float32)
        span = float(self._fade_end - self._full_gain)
        gains: _F32 = np.clip(1.0 - (idx - self._full_gain) / span, 0.0, 1.0).astype(np.float32)
        return gains

    def _synthesise(self, n: int) -> _F32:
        p = self._period
        idx = (self._phase + np.arange(n)) % p
        self._phase = (self._phase + n) % p
        synth: _F32 = self._template[idx] * self._gains(self._erased, n)
        return synth

    def _blend_into(self, pcm: PCM) -> None:
        # Appendix I: a quarter period plus 4 ms per further 10 ms of erasure, at most 10 ms.
        extra = int(self._erased / self._per_ms // 10) * round(4 * self._per_ms)
        length = min(len(pcm), self._blend_max, max(1, self._period // 4) + extra)
        if self._heard and self._erased < self._fade_end:
            synth = self._synthesise(length)
        else:
            synth = np.zeros(length, dtype=np.float32)
        ramp = (np.arange(1, length + 1, dtype=np.float32)) / (length + 1)
        mixed = ramp * pcm[:length] + (1.0 - ramp) * synth
        pcm[:length] = np.clip(np.rint(mixed), -32768, 32767)
