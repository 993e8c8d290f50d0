"""Stateful streaming resamplers that turn one 20 ms frame into exactly one 20 ms frame.

The engine assumes fixed 20 ms frames everywhere, so `FrameResampler.process` takes one frame at
the input rate and always returns one frame at the output rate (a view of a reused buffer, valid
until the next call). Equal rates pass through untouched.

Two engines:

* ``"fir"`` (the default for the integer ratios the product uses: 8/16 <-> 48 kHz, 8 <-> 16 kHz):
  a polyphase windowed-sinc FIR filter run as float32 BLAS products per frame. 36 taps per
  phase (Kaiser, beta 6.76: ~70 dB stopband); passband flat to 0.425 x the lower rate (3.4 kHz at
  8 kHz, 6.8 kHz at 16 kHz), stopband from 0.55 x the lower rate. Images and aliases of in-band
  audio are fully suppressed; only the 0.5-0.55 band, above every telephone passband, folds
  partially. Group delay ~2.2 ms (8 kHz) / ~1.1 ms (16 kHz). Output length is exact per frame.
* ``"soxr"``: ``soxr.ResampleStream(in, out, 1, dtype="int16", quality="HQ")`` behind a FIFO,
  primed once with the stream's worst-case backlog so that one frame always comes out. Any ratio.

Why the FIR is the default (measured here, 20 ms chunks): libsoxr's HQ stream filters in large
blocks and returns nothing for several chunks, then a burst. The backlog a fixed-frame consumer
must absorb is 175 ms for 8 -> 48 kHz, 157 ms for 48 -> 8 kHz and 37 ms for 16 <-> 48 kHz (MQ: 92 /
75 / 38 ms; LQ: 55 / 40 / 20 ms; only QQ, a cubic interpolator without anti-alias filtering, has
none). That delay would come on top of the jitter buffer on every SIP call, against a budget of
~80 ms inside the gateway (reference/anchors.md §6.2). Cost per frame: soxr HQ 6-10 µs, this FIR
6 µs one stream at a time in a loop, and a room's streams filtered together
(`FrameResampler.process_many`) 2.5 µs per 8 -> 48 kHz stream and 2.8 µs per 48 -> 8 kHz
stream with cold caches (about 1 µs on silence, which skips the filter); PyAV's swresample
19 µs (2 ms backlog, but an AudioFrame per call).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt
import soxr
from numpy.lib.stride_tricks import as_strided

from media.frame import FRAME_MS, PCM, count_nonzero, samples_per_frame

_F32 = npt.NDArray[np.float32]
_F64 = npt.NDArray[np.float64]
PCM2D = npt.NDArray[np.int16]  # frames as rows

Engine = Literal["auto", "fir", "soxr"]

TAPS_PER_PHASE = 36
KAISER_BETA = 6.76  # ~70 dB stopband (Kaiser's formula 0.1102 * (A - 8.7))
PASSBAND_EDGE = 0.425  # x the lower rate
STOPBAND_EDGE = 0.55  # x the lower rate


@functools.lru_cache(maxsize=16)
def lowpass(ratio: int, taps_per_phase: int = TAPS_PER_PHASE) -> _F64:
    """The prototype filter for an integer ratio, at the higher rate, unit DC gain."""
    n = ratio * taps_per_phase
    cutoff = (PASSBAND_EDGE + STOPBAND_EDGE) / 2.0 / ratio  # cycles per high-rate sample
    t = np.arange(n, dtype=np.float64) - (n - 1) / 2.0
    h = 2.0 * cutoff * np.sinc(2.0 * cutoff * t) * np.kaiser(n, KAISER_BETA)
    h /= h.sum()
    h.flags.writeable = False
    return h


class _Passthrough:
    delay = 0.0

    def process(self, frame: PCM) -> PCM:
        return frame

    def reset(self) -> None:
        pass


@functools.cache
def _block_taps(ratio: int, up: bool, block: int) -> _F32:
    """The FIR as one matrix over a block of `block` inputs (up) or outputs (down): column c of
    the block's outputs is the dot product of the block's input window with column c. The
    same taps shifted per output, so every block of a frame (and every frame) uses it: a
    frame is (blocks x window) @ (window x outputs per block), one sgemm.

    Up by R (K taps per phase, window block + K - 1): y[(b*L + l)*R + p] =
    sum_i x[b*L + l + i] * R*h[p + (K - 1 - i)*R], so T[l + i, l*R + p] = R*h[p + (K-1-i)*R].
    Down by R (N = K*R taps, window (L - 1)*R + N, x read from offset R - 1 of the work buffer):
    y[b*L + l] = sum_j x[(b*L + l)*R + j] * h[N - 1 - j], so T[l*R + j, l] = h[N - 1 - j].
    One read-only copy shared by every stream."""
    h = lowpass(ratio)
    k = TAPS_PER_PHASE
    if up:
        phases = (ratio * h).reshape(k, ratio)[::-1]  # [i, p] = R*h[p + (K-1-i)*R]
        taps = np.zeros((block + k - 1, block * ratio), dtype=np.float64)
        for col in range(block):
            taps[col : col + k, col * ratio : (col + 1) * ratio] = phases
    else:
        n = k * ratio
        taps = np.zeros(((block - 1) * ratio + n, block), dtype=np.float64)
        for col in range(block):
            taps[col * ratio : col * ratio + n, col] = h[::-1]
    out: _F32 = np.ascontiguousarray(taps, dtype=np.float32)
    out.flags.writeable = False
    return out


def _block_size(samples: int, preferred: int) -> int:
    """The largest block up to `preferred` that divides a frame (blocks must tile it)."""
    block = preferred
    while samples % block:
        block //= 2
    return block


# Inputs per block going up, outputs per block going down. Measured for eight streams at
# 8 <-> 48 kHz, against the windows of every output (up) and a diagonal sum (down) before:
# 31 -> 21 µs up, 23-25 -> 21 µs down in a loop; 3.9 -> 2.5 µs and 3.0 -> 2.8 µs per stream
# with cold caches. A smaller block copies more overlapping window, a larger one multiplies
# more zeros.
UP_BLOCK = 8
DOWN_BLOCK = 8


@functools.cache
def _int16_limits(samples: int) -> tuple[_F32, _F32]:
    lo = np.full(samples, -32768.0, dtype=np.float32)
    hi = np.full(samples, 32767.0, dtype=np.float32)
    lo.flags.writeable = hi.flags.writeable = False
    return lo, hi


class _PolyphaseFIR:
    """Integer-ratio polyphase FIR resampler, float32 state, no allocation per frame.

    The frame is cut into blocks (`_block_taps`): each block's input window is a row of a
    small matrix copied from the work buffer (history + frame), and one sgemm with the block
    tap matrix gives every output. At 8 <-> 48 kHz a frame is 20 windows of 43 samples going
    up (3.4 KB copied, was one 36-sample window per input: 23 KB) and 20 windows of 258
    samples going down, ~41 K multiply-adds either way.
    """

    def __init__(self, in_rate: int, out_rate: int, in_samples: int, out_samples: int) -> None:
        self._up = out_rate > in_rate
        ratio = out_rate // in_rate if self._up else in_rate // out_rate
        n = len(lowpass(ratio))
        k = TAPS_PER_PHASE
        self._in = in_samples
        if self._up:
            self._hist = k - 1
            self.delay = (n - 1) / 2.0  # output samples
        else:
            self._hist = n - 1
            # Each output is aligned on the newest input sample of its block (offset R - 1),
            # which saves R - 1 samples of delay.
            self.delay = ((n - 1) / 2.0 - (ratio - 1)) / ratio  # output samples
        # What filters alike (process_many): direction, ratio, frame sizes.
        self.shape = (self._up, ratio, in_samples, out_samples)
        # A stream keeps only its filter history; the frame is filtered in work arrays shared
        # by every stream of the same shape (one thread: no two calls overlap). What a stream
        # touches per frame in memory of its own is then a few hundred bytes, which matters
        # when streams take turns between Opus encodes that evict everything from the caches.
        work = _single(self.shape)
        self._taps = work.taps
        self._history: _F32 = np.zeros(self._hist, dtype=np.float32)
        self._history_to: _F32 = work.history_to[0]
        self._frame_to: _F32 = work.frame_to[0]
        self._history_from: _F32 = work.history_from[0]  # the history of the next frame
        self._windows: _F32 = work.windows[0]
        self._view: _F32 = work.view[0]
        self._acc: _F32 = work.acc[0]
        self._flat: _F32 = work.flat[0]
        self._out: PCM = np.zeros(out_samples, dtype=np.int16)
        self._lo, self._hi = _int16_limits(out_samples)
        self._zeros = self._hist + in_samples  # trailing zero samples of the input (all, at start)

    def process(self, frame: PCM) -> PCM:
        if not count_nonzero(frame):  # a sixth of ndarray.any()'s cost here
            # Silence in, silence history: the output is exactly zero, skip the filter.
            self._zeros += self._in
            if self._zeros >= self._hist + self._in:
                self._out.fill(0)
                return self._out
        else:
            self._zeros = 0
        # Slice assignments, not np.copyto: the same copies and casts, at half the call cost
        # (0.14 µs against 0.31 µs; the dtypes were checked by FrameResampler.process).
        self._history_to[...] = self._history
        self._frame_to[...] = frame
        self._history[...] = self._history_from
        # A contiguous copy of the overlapping windows first: BLAS cannot take the strided
        # view directly, and numpy's fallback loop on it is far slower than copy + sgemm.
        self._windows[...] = self._view
        # np.dot rather than np.matmul: the same sgemm, 0.3 µs less overhead per call.
        np.dot(self._windows, self._taps, out=self._acc)
        flat = self._flat
        np.rint(flat, out=flat)
        # Bounds as arrays: with a scalar bound each ufunc costs twice as much (np.clip 3x).
        np.minimum(flat, self._hi, out=flat)
        np.maximum(flat, self._lo, out=flat)
        self._out[...] = flat  # rounded and in range: the cast is exact
        return self._out

    def reset(self) -> None:
        self._history.fill(0)
        self._zeros = self._hist + self._in

    @staticmethod
    def process_many(engines: Sequence[_PolyphaseFIR], frames: Sequence[PCM]) -> PCM2D:
        """`process` for one frame of each of several streams of the same shape, with one
        numpy call per step for all of them (the streams' histories are copied in and out
        of a shared block). One stacked matmul runs, for each stream, the sgemm of the shape
        `process` runs: bit for bit what the stream's own `process` returns. The rows are a
        reused buffer."""
        k = len(engines)
        batch = _batch(engines[0].shape, k)
        history_to = batch.history_to
        frame_to = batch.frame_to
        history_from = batch.history_from
        j = 0  # rows filled
        silent: list[int] = []  # streams whose output is zero without filtering
        filtered: list[int] = []
        for i, (e, f) in enumerate(zip(engines, frames, strict=True)):
            # The shortcut of process(): silence in, silence history, zero out (a room of
            # silent phones must not filter them all).
            if not count_nonzero(f):
                e._zeros += e._in
                if e._zeros >= e._hist + e._in:
                    silent.append(i)
                    continue
            else:
                e._zeros = 0
            history = e._history
            history_to[j][...] = history
            frame_to[j][...] = f
            history[...] = history_from[j]
            filtered.append(i)
            j += 1
        out = batch.out[:k]
        if j:
            first = engines[0]
            windows = batch.windows[:j]
            windows[...] = batch.view[:j]
            # One sgemm per stream, of the shape process() runs: bit for bit its result. (All
            # the blocks as the rows of one matrix is a little faster, but BLAS may take
            # another kernel path for another row count and round differently: measured at
            # 10 ms frames.)
            np.matmul(windows, batch.taps, out=batch.acc[:j])
            flat = batch.flat[:j]
            np.rint(flat, out=flat)
            np.minimum(flat, first._hi, out=flat)
            np.maximum(flat, first._lo, out=flat)
            if not silent:
                out[...] = flat
                return out
            out[filtered] = flat
        out[silent] = 0
        return out


class _Batch:
    """The work arrays of a FIR shape for up to `capacity` streams: per stream a work row
    (history + frame), its block windows and its outputs, stacked so that one numpy call per
    step serves every stream."""

    def __init__(self, shape: tuple[bool, int, int, int], capacity: int) -> None:
        up, ratio, in_samples, out_samples = shape
        k = TAPS_PER_PHASE
        if up:
            block = _block_size(in_samples, UP_BLOCK)
            hist, step, offset = k - 1, block, 0
            self.width = block + k - 1
            self.blocks = in_samples // block
        else:
            block = _block_size(out_samples, DOWN_BLOCK)
            n = k * ratio
            hist, step, offset = n - 1, block * ratio, ratio - 1
            self.width = (block - 1) * ratio + n
            self.blocks = out_samples // block
        self.taps = _block_taps(ratio, up, block)
        item = np.dtype(np.float32).itemsize
        self.capacity = capacity
        self.work: _F32 = np.zeros((capacity, hist + in_samples), dtype=np.float32)
        self.history_to = [row[:hist] for row in self.work]
        self.frame_to = [row[hist:] for row in self.work]
        self.history_from = [row[in_samples:] for row in self.work]
        # The overlapping block windows over the work rows, built once: the rows never move.
        self.view: _F32 = as_strided(
            self.work[:, offset:],
            shape=(capacity, self.blocks, self.width),
            strides=(self.work.strides[0], step * item, item),
            writeable=False,
        )
        self.windows: _F32 = np.zeros((capacity, self.blocks, self.width), dtype=np.float32)
        self.acc: _F32 = np.zeros(
            (capacity, self.blocks, out_samples // self.blocks), dtype=np.float32
        )
        self.flat: _F32 = self.acc.reshape(capacity, out_samples)
        self.out: PCM2D = np.zeros((capacity, out_samples), dtype=np.int16)


@functools.cache
def _single(shape: tuple[bool, int, int, int]) -> _Batch:
    """The work arrays of `_PolyphaseFIR.process`, one stream at a time, shared by every
    stream of a shape."""
    return _Batch(shape, 1)


_BATCHES: dict[tuple[bool, int, int, int], _Batch] = {}


def _batch(shape: tuple[bool, int, int, int], streams: int) -> _Batch:
    """The work arrays for `streams` streams of a shape, shared (one thread) and grown by
    doubling: allocated as rooms grow, not per frame."""
    batch = _BATCHES.get(shape)
    if batch is None or batch.capacity < streams:
        capacity = max(streams, 8, 2 * batch.capacity if batch is not None else 0)
        batch = _BATCHES[shape] = _Batch(shape, capacity)
    return batch


@functools.lru_cache(maxsize=16)
def soxr_backlog(in_rate: int, out_rate: int, in_samples: int, quality: str = "HQ") -> int:
    """Worst shortfall (output samples) of a soxr stream fed fixed chunks, against the nominal
    output: what a FIFO must hold in advance so that a fixed frame can always be taken. The
    stream's block pattern does not depend on the signal, so zeros measure it exactly."""
    stream = soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16", quality=quality)
    chunk = np.zeros(in_samples, dtype=np.int16)
    nominal = in_samples * out_rate / in_rate
    produced = 0
    worst = 0.0
    for k in range(1, 251):  # 5 s of 20 ms chunks: several periods of every block pattern
        produced += len(stream.resample_chunk(chunk))
        worst = max(worst, k * nominal - produced)
    return int(np.ceil(worst))


class _SoxrFifo:
    def __init__(
        self, in_rate: int, out_rate: int, in_samples: int, out_samples: int, quality: str
    ) -> None:
        self._args = (in_rate, out_rate, in_samples, quality)
        self._n = out_samples
        self._backlog = soxr_backlog(in_rate, out_rate, in_samples, quality)
        self.delay = float(self._backlog)
        self._fifo: PCM = np.zeros(self._backlog + 16 * out_samples, dtype=np.int16)
        self._out: PCM = np.zeros(out_samples, dtype=np.int16)
        self.underflows = 0
        self.reset()

    def reset(self) -> None:
        in_rate, out_rate, _, quality = self._args
        self._stream = soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16", quality=quality)
        self._fifo.fill(0)
        self._fill = self._backlog  # primed once with the worst-case backlog of zeros

    def process(self, frame: PCM) -> PCM:
        produced = self._stream.resample_chunk(np.ascontiguousarray(frame))
        m = len(produced)
        if self._fill + m > len(self._fifo):
            grown = np.zeros(self._fill + m + self._n, dtype=np.int16)
            grown[: self._fill] = self._fifo[: self._fill]
            self._fifo = grown
        self._fifo[self._fill : self._fill + m] = produced
        self._fill += m
        n = self._n
        if self._fill < n:  # cannot happen after priming; pad rather than shrink the frame
            self.underflows += 1
            self._fifo[self._fill : n] = 0
            self._fill = n
        self._out[:] = self._fifo[:n]
        self._fifo[: self._fill - n] = self._fifo[n : self._fill]
        self._fill -= n
        return self._out


class FrameResampler:
    """One direction of one stream: `process(frame)` -> exactly one frame at `out_rate`."""

    def __init__(
        self,
        in_rate: int,
        out_rate: int,
        frame_ms: int = FRAME_MS,
        engine: Engine = "auto",
        soxr_quality: str = "HQ",
    ) -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        self.in_samples = samples_per_frame(in_rate, frame_ms)
        self.out_samples = samples_per_frame(out_rate, frame_ms)
        integer_ratio = max(in_rate, out_rate) % min(in_rate, out_rate) == 0
        if engine == "auto":
            engine = "fir" if integer_ratio else "soxr"
        self._engine: _Passthrough | _PolyphaseFIR | _SoxrFifo
        if in_rate == out_rate:
            self.engine = "identity"
            self._engine = _Passthrough()
        elif engine == "fir":
            if not integer_ratio:
                raise ValueError(f"the FIR engine needs an integer ratio, not {in_rate}:{out_rate}")
            self.engine = "fir"
            self._engine = _PolyphaseFIR(in_rate, out_rate, self.in_samples, self.out_samples)
        elif engine == "soxr":
            self.engine = "soxr"
            self._engine = _SoxrFifo(
                in_rate, out_rate, self.in_samples, self.out_samples, soxr_quality
            )
        else:
            raise ValueError(f"unknown resampler engine {engine!r}")
        self._fir = self._engine if isinstance(self._engine, _PolyphaseFIR) else None

    @property
    def delay_ms(self) -> float:
        """Algorithmic delay added, in milliseconds."""
        return self._engine.delay * 1000.0 / self.out_rate

    def process(self, frame: PCM) -> PCM:
        """Resample one frame of `in_samples`; returns `out_samples` (a reused buffer)."""
        if len(frame) != self.in_samples:
            raise ValueError(f"expected {self.in_samples} samples, got {len(frame)}")
        if frame.dtype != np.int16:
            raise TypeError(f"expected int16 PCM, got {frame.dtype}")
        return self._engine.process(frame)

    def reset(self) -> None:
        """Start a new stream (clears the filter history)."""
        self._engine.reset()

    @staticmethod
    def process_many(resamplers: Sequence[FrameResampler], frames: Sequence[PCM]) -> PCM2D:
        """One frame of each stream at once: row i is what `resamplers[i].process(frames[i])`
        returns, bit for bit (a reused buffer, valid until the next call). FIR streams of one
        shape are filtered together, one numpy call per step instead of one per stream and
        step: 2.2 µs per 48 -> 8 kHz stream for eight streams, against 4.8 µs one by one."""
        first = resamplers[0]
        engine = first._fir
        if engine is not None:
            shape = engine.shape
            in_samples = first.in_samples
            int16 = np.dtype(np.int16)
            engines: list[_PolyphaseFIR] = []
            for r, frame in zip(resamplers, frames, strict=True):
                e = r._fir
                if e is None or e.shape != shape:  # equal shapes: equal frame sizes
                    break
                if len(frame) != in_samples or frame.dtype != int16:
                    r.process(frame)  # raises the error process() would
                engines.append(e)
            else:
                return _PolyphaseFIR.process_many(engines, frames)
        out: PCM2D = np.zeros((len(resamplers), first.out_samples), dtype=np.int16)
        for row, r, frame in zip(out, resamplers, frames, strict=True):
            row[...] = r.process(frame)
        return out
