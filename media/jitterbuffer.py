"""Adaptive jitter buffer for one received RTP audio stream (sans-IO: time is passed in).

`put()` takes packets in any order as they arrive; `pull(now)` is called once per 20 ms by the
process clock and always returns one 960-sample 48 kHz frame plus a status. Decoding and
resampling to 48 kHz happen inside (the buffer owns the stream's decoder and a
`FrameResampler`): loss handling needs the decoder anyway (Opus FEC reads the *next* packet,
PLC and fades need the decoder's state), and callers - the room mixer, the outgoing Opus leg -
all want the engine's one format. The buffer itself is codec-agnostic: it holds payloads and asks
the `Decoder` for PCM, concealment and recovery.

Playout is driven by RTP timestamps, not sequence numbers: silence suppression makes the
timestamp jump (RFC 3551 §4.1), with or without a sequence jump, and only the timestamp says
where audio belongs. Sequence numbers detect duplicates and tell a skipped stretch of time
(contiguous sequence, timestamp jump: nothing was lost) from lost packets. Both are extended
past their 16/32-bit wrap (RFC 3550 Appendix A.1).

Delay. Each packet's transit ``arrival - timestamp/clock`` goes into a window (5 s); its
minimum is the fastest path, its spread (99th percentile minus minimum, so that one stray packet
does not set the delay for 5 s) the jitter. The target delay is ``spread + margin``,
clamped to [min, max] (default 20..200 ms, starting at 40 ms): it grows at once when jitter
grows and shrinks slowly (10 ms/s) when it falls. The playout point is steered so that the frame
played now was due ``target`` ago on the fastest path. Steering happens where it is inaudible:
during silence the buffer skips or holds whole silent frames; during talk it drops or inserts a
frame only when the audio is quiet (or the delay is far off), at most once per 60 ms.

Loss versus silence. When the playout point reaches a timestamp with no packet, the gap is
*silence* if the last packet said so (RFC 6464 level 127 without the voice flag - the bridge
drops a sender's packets after a few of those -, an Opus DTX frame, or comfort noise), if the
next packet starts a talk-spurt (marker bit), or if its sequence number follows the last one (no
packet is missing, the sender skipped time). Silence plays as zeros, for as long as it lasts,
and does not disturb the delay estimate (the timestamps of the next talk-spurt keep pace with
real time, so its transit is unchanged). Otherwise it is *loss*: the decoder conceals (Opus PLC,
or Opus in-band FEC when the next packet is already here; the G.711/G.722 pitch-repetition fade)
for at most `max_conceal_ms`, then silence.

Robustness. Memory is bounded whatever arrives: at most `capacity` packets are held, duplicate
detection remembers a fixed number of sequence numbers, the transit window is a fixed array. A
packet whose transit is off the window by more than `resync_ms` (a sender that restarted its
clock) is held aside; three that agree, or one starting a talk-spurt during silence, re-anchor the
buffer (counted in `resyncs`). Undecodable payloads are concealed and counted. `put()` raises
only `MediaParseError` (for values outside the RTP field ranges); `pull()` never raises for peer
data.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np

from media.codecs import Decoder
from media.errors import MediaParseError
from media.frame import FRAME_SAMPLES, PCM, SAMPLE_RATE
from media.level import SILENCE, LevelMeter, max_energy_at_level
from media.resample import FrameResampler


class FrameStatus(Enum):
    NORMAL = "normal"  # decoded from packets
    FEC_RECOVERED = "fec-recovered"  # rebuilt from the next packet's in-band redundancy
    CONCEALED = "concealed"  # a packet was lost: PLC / fade
    SILENCE = "silence"  # nothing to play: before the first packet, silence gaps, DTX, CN


# When one output frame is built from several pieces, the worst one names it.
_RANK = {
    FrameStatus.SILENCE: 0,
    FrameStatus.NORMAL: 1,
    FrameStatus.FEC_RECOVERED: 2,
    FrameStatus.CONCEALED: 3,
}


@dataclass(frozen=True, slots=True)
class JitterConfig:
    initial_delay_ms: float = 40.0
    min_delay_ms: float = 20.0
    max_delay_ms: float = 200.0
    margin_ms: float = 15.0  # added to the measured jitter spread (covers the 20 ms tick phase)
    shrink_ms_per_s: float = 10.0  # how fast the target falls when jitter falls
    window_s: float = 5.0  # transit history for the jitter estimate
    jitter_quantile: float = 0.99  # of the transit window: one spike does not set the delay
    max_conceal_ms: float = 100.0  # longest concealment of one loss before silence
    silence_level: int = SILENCE  # RFC 6464 level (-dBov) at or above which a packet is silence
    quiet_level: int = 55  # -dBov at or above which a frame may be dropped/inserted mid-talk
    resync_ms: float = 1000.0  # transit change that means the sender's clock restarted
    capacity: int = 64  # packets held at most
    duplicate_memory: int = 256  # sequence numbers remembered for duplicate detection


@dataclass(slots=True)
class JitterStats:
    received: int = 0  # packets given to put()
    played: int = 0  # packets decoded into the output
    concealed: int = 0  # concealment pieces (frames) produced for lost packets
    fec_recovered: int = 0  # lost packets rebuilt from in-band FEC
    lost: int = 0  # frames missing at playout during talk (concealed, recovered, or given up)
    late: int = 0  # packets that arrived after their playout time
    duplicates: int = 0
    dropped: int = 0  # overflow, clock outliers, silent packets skipped to shorten the delay
    decode_errors: int = 0
    silence_frames: int = 0  # output frames with status SILENCE
    frames_skipped: int = 0  # delay shortened by one frame
    frames_inserted: int = 0  # delay lengthened by one frame
    resyncs: int = 0
    current_delay_ms: float = 0.0
    target_delay_ms: float = 0.0
    jitter_ms: float = 0.0


@dataclass(slots=True)
class JitterFrame:
    """One 20 ms frame of output. `pcm` is a reused buffer: valid until the next pull().

    Not frozen: one is made per pull, and a frozen dataclass's `__init__` costs four times as
    much (0.35 µs against 0.08 µs); nothing changes it after the pull."""

    pcm: PCM
    status: FrameStatus
    level: int | None  # RFC 6464 level the sender reported for the last packet in the frame
    timestamp: int | None  # extended RTP timestamp of the frame's first sample


@dataclass(slots=True)
class _Packet:
    seq: int  # extended
    ts: int  # extended
    payload: bytes
    marker: bool
    level: int | None
    silent: bool  # says that the gap after it is silence
    comfort_noise: bool
    arrival: float


def _extend(value: int, highest: int | None, bits: int) -> int:
    """Extend a wrapping counter to the value nearest the highest seen (RFC 3550 A.1)."""
    if highest is None:
        return value
    modulus = 1 << bits
    delta = (value - highest) % modulus
    if delta >= modulus >> 1:
        delta -= modulus
    return highest + delta


class JitterBuffer:
    """One received stream: put packets in, pull one 48 kHz frame per 20 ms."""

    def __init__(self, decoder: Decoder, config: JitterConfig | None = None) -> None:
        self.config = cfg = config if config is not None else JitterConfig()
        self.decoder = decoder
        info = decoder.info
        self._clock = info.clock_rate
        self._rate = info.sample_rate
        self._frame_ticks = info.frame_ticks
        self._frame_samples = info.frame_samples
        self._frame_ms = float(info.frame_ms)
        self._resampler = FrameResampler(info.sample_rate, SAMPLE_RATE, info.frame_ms)
        self._meter = LevelMeter(self._frame_samples * 6)
        self.stats = JitterStats(target_delay_ms=cfg.initial_delay_ms)

        # Received packets by extended timestamp, plus the sorted timestamps.
        self._packets: dict[int, _Packet] = {}
        self._order: list[int] = []
        # Duplicate detection: bit k set = sequence number max_seq - k was received, for the
        # last `duplicate_memory` numbers (one shift per packet in order, not a set and a queue).
        self._seen = 0
        self._max_seq: int | None = None
        self._max_ts: int | None = None
        self._outliers: list[_Packet] = []

        # Transit window (seconds) for the jitter estimate.
        size = max(8, round(cfg.window_s * 1000.0 / self._frame_ms))
        self._transit = np.zeros(size, dtype=np.float64)
        self._transit_size = size
        self._scratch = np.zeros(size, dtype=np.float64)
        self._transit_count = 0
        self._transit_next = 0
        self._fastest = 0.0  # minimum transit in the window
        self._spread = 0.0  # maximum - minimum transit

        # Playout state.
        self._started = False
        self._write_ts = 0  # extended timestamp of the next sample to produce
        self._played_until = 0  # end of the last real (non-silence) audio produced
        self._talking = False
        self._last: _Packet | None = None  # last packet decoded
        self._conceal_ticks = 0
        self._last_adjust = -(10**9)
        self._pulls = 0
        self._recent_late = 0  # pulls left during which a late packet counts as "recent"
        self._last_quiet = False  # the last frame played was quiet (measured when needed)
        self._adjusted = False  # the last _produce() changed the delay
        self._target_ms = cfg.initial_delay_ms

        self._fifo: PCM = np.zeros(self._frame_samples * 8, dtype=np.int16)
        self._fifo_len = 0
        self._fifo_status = FrameStatus.SILENCE
        self._frame: PCM = np.zeros(self._frame_samples, dtype=np.int16)
        self._fifo_head: PCM = self._fifo[: self._frame_samples]
        self._silence_out: PCM = np.zeros(FRAME_SAMPLES, dtype=np.int16)
        self._out: PCM = np.zeros(FRAME_SAMPLES, dtype=np.int16)  # pull_many's frames
        self._silence_frame = JitterFrame(self._silence_out, FrameStatus.SILENCE, None, None)

        # Per-packet and per-frame constants (the hot path reads them instead of recomputing).
        self._resync_s = cfg.resync_ms / 1000.0
        self._max_delay_s = cfg.max_delay_ms / 1000.0
        self._shrink_step_ms = cfg.shrink_ms_per_s * self._frame_ms / 1000.0
        self._desired_ms = self._desired_target()
        self._dtx_aware = type(decoder).is_dtx is not Decoder.is_dtx
        self._duplicate_memory = cfg.duplicate_memory
        self._seen_mask = (1 << cfg.duplicate_memory) - 1
        self._silence_level = cfg.silence_level
        self._capacity = cfg.capacity
        self._quiet_energy = max_energy_at_level(cfg.quiet_level, self._frame_samples)

    # -- input -------------------------------------------------------------------------------

    def put(
        self,
        seq: int,
        timestamp: int,
        payload: bytes,
        marker: bool,
        level: int | None,
        arrival_time: float,
        *,
        voice: bool | None = None,
        comfort_noise: bool = False,
    ) -> None:
        """Add one received packet. `level`/`voice` come from the ssrc-audio-level extension
        (RFC 6464) when present; `comfort_noise` marks an RFC 3389 CN packet (PT 13), which is
        not decoded but says the sender is silent."""
        if not 0 <= seq <= 0xFFFF:
            raise MediaParseError(f"RTP sequence number {seq} out of range")
        if not 0 <= timestamp <= 0xFFFFFFFF:
            raise MediaParseError(f"RTP timestamp {timestamp} out of range")
        if level is not None and not 0 <= level <= 127:
            raise MediaParseError(f"audio level {level} out of range")
        if not math.isfinite(arrival_time):
            raise MediaParseError("arrival time is not finite")
        self.put_valid(seq, timestamp, payload, marker, level, arrival_time, voice, comfort_noise)

    def put_valid(
        self,
        seq: int,
        timestamp: int,
        payload: bytes,
        marker: bool,
        level: int | None,
        arrival_time: float,
        voice: bool | None = None,
        comfort_noise: bool = False,
    ) -> None:
        """`put()` for values already known to be in range - a parsed RTP packet's sequence
        number and timestamp, a finite arrival time - without checking them again (this runs
        for every packet)."""
        stats = self.stats
        stats.received += 1
        max_seq = self._max_seq
        max_ts = self._max_ts
        if max_seq is None or max_ts is None:
            ext_seq, ext_ts = seq, timestamp
        else:
            # _extend(), inline: this runs for every packet.
            delta = (seq - max_seq) & 0xFFFF
            ext_seq = max_seq + (delta - 0x10000 if delta & 0x8000 else delta)
            delta = (timestamp - max_ts) & 0xFFFFFFFF
            ext_ts = max_ts + (delta - 0x100000000 if delta & 0x80000000 else delta)
        if max_seq is None:
            self._seen = 1
            self._max_seq = ext_seq
        else:
            ahead = ext_seq - max_seq
            if ahead > 0:  # the newest so far: slide the window
                memory = self._duplicate_memory
                self._seen = ((self._seen << ahead) | 1) & self._seen_mask if ahead < memory else 1
                self._max_seq = ext_seq
            elif -ahead < self._duplicate_memory:
                bit = 1 << -ahead
                if self._seen & bit:
                    stats.duplicates += 1
                    return
                self._seen |= bit
        if max_ts is None or ext_ts > max_ts:
            self._max_ts = ext_ts

        silent = comfort_noise or (level is not None and level >= self._silence_level and not voice)
        if not silent and payload and self._dtx_aware:
            silent = self.decoder.is_dtx(payload)
        packet = _Packet(
            ext_seq, ext_ts, bytes(payload), marker, level, silent, comfort_noise, arrival_time
        )
        if not self._started:
            self._anchor([packet])
            return

        transit = arrival_time - ext_ts / self._clock
        if self._transit_count and abs(transit - self._fastest) > self._resync_s:
            # A packet whose timing disagrees with the whole window by more than a second: the
            # sender's clock jumped (or this is garbage). Keep it aside with the earlier outliers
            # that agree with it; three that agree, or a talk-spurt start during silence,
            # re-anchor playout on them.
            limit = self._resync_s
            kept = [
                p
                for p in self._outliers
                if abs((p.arrival - p.ts / self._clock) - transit) <= limit
            ]
            stats.dropped += len(self._outliers) - len(kept)
            kept.append(packet)
            self._outliers = kept
            if len(kept) >= 3 or (marker and not self._talking):
                self._anchor(kept)
            return
        if self._outliers:
            stats.dropped += len(self._outliers)
            self._outliers.clear()
        # _add_transit(), inline: this runs for every packet.
        i = self._transit_next
        self._transit[i] = transit
        i += 1
        self._transit_next = i if i < self._transit_size else 0
        count = self._transit_count
        if count < self._transit_size:
            count = self._transit_count = count + 1
        if count == 1 or transit < self._fastest:
            self._fastest = transit

        if ext_ts < self._played_until or (
            ext_ts < self._write_ts
            and (self._talking or transit - self._fastest > self._max_delay_s)
        ):
            stats.late += 1
            self._recent_late = 50
            return
        held = self._order
        if (not held or ext_ts > held[-1]) and len(held) < self._capacity:
            # _insert() of the common case, inline: the next packet, in order, with room for it.
            self._packets[ext_ts] = packet
            held.append(ext_ts)
        else:
            self._insert(packet)

    def _insert(self, packet: _Packet) -> None:
        ts = packet.ts
        if ts in self._packets:
            self.stats.duplicates += 1  # same timestamp under another sequence number
            return
        self._packets[ts] = packet
        order = self._order
        if not order or ts > order[-1]:
            order.append(ts)  # in order: the common case
        else:
            bisect.insort(order, ts)
        if len(order) > self.config.capacity:
            # Keep the packets due soonest; the farthest one is the least useful.
            del self._packets[self._order.pop()]
            self.stats.dropped += 1

    def _anchor(self, packets: list[_Packet]) -> None:
        """(Re)start playout at the earliest of `packets`; the target delay is kept."""
        if self._started:
            self.stats.resyncs += 1
            self.stats.dropped += len(self._order)
        self._packets.clear()
        self._order.clear()
        self._outliers = []
        self._transit_count = 0
        self._transit_next = 0
        self._fifo_len = 0
        self._talking = False
        self._conceal_ticks = 0
        if self._started:
            self.decoder.reset()
            self._resampler.reset()
        first = min(packets, key=lambda p: p.ts)
        self._started = True
        self._write_ts = first.ts
        self._played_until = first.ts
        for p in packets:
            if 0 <= p.ts - first.ts <= self._ticks(self.config.max_delay_ms):
                self._add_transit(p.arrival - p.ts / self._clock)
                self._insert(p)
        self._update_window()

    def _add_transit(self, transit: float) -> None:
        i = self._transit_next
        self._transit[i] = transit
        size = self._transit_size
        self._transit_next = i + 1 if i + 1 < size else 0
        count = self._transit_count
        if count < size:
            count = self._transit_count = count + 1
        if count == 1 or transit < self._fastest:
            self._fastest = transit

    def _update_window(self) -> None:
        if not self._transit_count:
            return
        window = self._transit[: self._transit_count]
        self._fastest = float(window.min())
        # A high quantile rather than the maximum: an isolated spike (one packet stuck for
        # 300 ms) is better lost than paid for with 5 s of extra delay.
        k = min(len(window) - 1, int(self.config.jitter_quantile * (len(window) - 1) + 0.5))
        self._scratch[: len(window)] = window
        part = self._scratch[: len(window)]
        part.partition(k)
        self._spread = float(part[k]) - self._fastest
        self.stats.jitter_ms = self._spread * 1000.0
        self._desired_ms = self._desired_target()

    # -- output ------------------------------------------------------------------------------

    def pull(self, now: float) -> JitterFrame:
        """The next 20 ms frame (48 kHz), to be called once per frame period at time `now`.
        `pcm` is a reused buffer, valid until the next pull()."""
        frame, status, level, timestamp = self._playout(now)
        if frame is None:
            return self._silence_frame
        return JitterFrame(self._resampler.process(frame), status, level, timestamp)

    @staticmethod
    def pull_many(buffers: Sequence[JitterBuffer], now: float) -> list[JitterFrame]:
        """`pull()` on each buffer, with their resamplings done together
        (`FrameResampler.process_many`: bit for bit the same frames, far fewer numpy calls).
        Each frame's `pcm` is its buffer's own, valid until that buffer's next pull."""
        played = [b._playout(now) for b in buffers]
        out = [b._silence_frame for b in buffers]
        started: list[int] = []
        frames: list[PCM] = []
        for i, (frame, _, _, _) in enumerate(played):
            if frame is not None:
                started.append(i)
                frames.append(frame)
        if started:
            rows = FrameResampler.process_many([buffers[i]._resampler for i in started], frames)
            for i, row in zip(started, rows, strict=True):
                b = buffers[i]
                b._out[...] = row
                _, status, level, timestamp = played[i]
                out[i] = JitterFrame(b._out, status, level, timestamp)
        return out

    def _playout(self, now: float) -> tuple[PCM | None, FrameStatus, int | None, int | None]:
        """The next frame at the decoder's rate with its status, level and timestamp; no
        frame (silence) before the first packet."""
        stats = self.stats
        pulls = self._pulls = self._pulls + 1
        if not self._started:
            stats.silence_frames += 1
            return None, FrameStatus.SILENCE, None, None
        if pulls % 10 == 0:
            self._update_window()
        # The target delay: up at once, down by at most one step per frame.
        desired = self._desired_ms
        target = self._target_ms
        target = desired if desired > target else max(desired, target - self._shrink_step_ms)
        self._target_ms = stats.target_delay_ms = target
        if self._recent_late:
            self._recent_late -= 1

        n = self._frame_samples
        fifo_len = self._fifo_len
        if fifo_len == 0:
            order = self._order
            if order and order[0] < self._write_ts:
                self._drop_stale()
            out_ts = self._write_ts
        else:
            out_ts = self._write_ts - self._samples_to_ticks(fifo_len)
        # The delay: how long ago the audio at out_ts was due on the fastest path.
        delay_ms = stats.current_delay_ms = (now - self._fastest - out_ts / self._clock) * 1000.0
        error_ms = delay_ms - target
        talking = self._talking
        frame_ms = self._frame_ms

        status: FrameStatus | None = self._fifo_status if fifo_len else None
        level: int | None = None
        if fifo_len == 0:
            if not talking and self._steer_in_silence(error_ms):
                # Held: one frame of silence without advancing the playout point.
                stats.silence_frames += 1
                if self._last is not None:
                    stats.frames_inserted += 1
                return self._zero_frame(), FrameStatus.SILENCE, None, None
            out_ts = self._write_ts  # steering may have skipped ahead

        # Mid-talk steering, at most once per 60 ms: drop a quiet frame when the delay is a
        # frame over target (any frame when it is far over), insert one when it is a frame
        # under and the audio is quiet or packets are arriving late anyway.
        drop = force = insert = False
        if talking and pulls - self._last_adjust >= 3:
            drop = error_ms > frame_ms
            force = error_ms > max(3 * frame_ms, target)
            insert = error_ms < -frame_ms and (self._recent_late > 0 or self._last_quiet)

        frame: PCM | None = None
        if fifo_len == 0 and not insert:
            # The common case, a packet waiting at the playout point: the first _produce(),
            # inline, and a packet of exactly one frame is resampled straight from the
            # decoder's buffer, without the FIFO.
            packet = self._packets.get(out_ts)
            if packet is not None and not packet.comfort_noise:
                decoded = self._take(packet)
                if decoded is None:
                    status, level = self._loss_piece(n)
                elif drop and (force or self._quiet(packet, decoded)):
                    self._skip(packet, decoded)
                    self._last_adjust = pulls
                elif len(decoded) == n:
                    # _played(packet, n), inline: one frame of the packet went out.
                    self._write_ts = self._played_until = out_ts + self._frame_ticks
                    self._last = packet
                    self._conceal_ticks = 0
                    stats.played += 1
                    self._talking = not packet.silent
                    status = FrameStatus.SILENCE if packet.silent else FrameStatus.NORMAL
                    level = packet.level
                    frame = decoded
                else:
                    status = self._played(packet, self._append(decoded))
                    level = packet.level
                drop = force = False
        if frame is None:
            status, level = self._fill_fifo(n, status, level, drop, force, insert)
            rest = self._fifo_len - n
            if rest:
                frame = self._frame
                frame[:] = self._fifo[:n]
                self._fifo[:rest] = self._fifo[n : self._fifo_len]
            else:
                frame = self._fifo_head  # read (and copied) by the resampler before the next write
            self._fifo_len = rest
        assert status is not None
        self._fifo_status = status
        if status is FrameStatus.SILENCE:
            stats.silence_frames += 1
        if error_ms < -frame_ms and self._talking:
            # Only needed when an insertion is pending: is what just played quiet?
            self._last_quiet = self._meter.energy(frame) <= self._quiet_energy
        else:
            self._last_quiet = False
        return frame, status, level, out_ts

    def _fill_fifo(
        self,
        n: int,
        status: FrameStatus | None,
        level: int | None,
        drop: bool,
        force: bool,
        insert: bool,
    ) -> tuple[FrameStatus, int | None]:
        """Produce pieces until the FIFO holds a frame; the frame's status and level."""
        while self._fifo_len < n:
            before = (self._fifo_len, self._write_ts)
            piece, piece_level = self._produce(n - self._fifo_len, drop, force, insert)
            if self._adjusted:
                self._last_adjust = self._pulls
            drop = force = insert = False
            if piece is not None and (status is None or _RANK[piece] > _RANK[status]):
                status = piece
            if piece_level is not None:
                level = piece_level
            if (self._fifo_len, self._write_ts) == before:  # pragma: no cover - defensive
                self._silence_piece(n - self._fifo_len, None)
        return (FrameStatus.SILENCE if status is None else status), level

    # -- playout internals -------------------------------------------------------------------

    def _produce(
        self, need: int, drop: bool, force: bool, insert: bool
    ) -> tuple[FrameStatus | None, int | None]:
        """Append the next piece of audio at the playout point to the FIFO."""
        self._adjusted = False
        stats = self.stats
        if insert:
            # Lengthen the delay by one frame: concealment without advancing the playout point.
            self._append(self.decoder.conceal(need))
            stats.frames_inserted += 1
            self._adjusted = True
            return FrameStatus.CONCEALED, None

        packet = self._packets.get(self._write_ts)
        if packet is not None:
            if packet.comfort_noise:
                self._pop_first_if(packet.ts)
                self._end_talk(packet)
                return self._silence_piece(need, packet.level)
            pcm = self._take(packet)
            if pcm is None:
                return self._loss_piece(need)
            if drop and (force or self._quiet(packet, pcm)):
                self._skip(packet, pcm)
                self._adjusted = True
                return None, None
            return self._played(packet, self._append(pcm)), packet.level

        nxt = self._next_packet()
        if not self._talking or self._gap_is_silence(nxt):
            self._talking = False
            return self._silence_piece(need, None, nxt)
        return self._loss_piece(need, nxt)

    def _take(self, packet: _Packet) -> PCM | None:
        """Remove the packet at the playout point from the buffer and decode it; None when
        it cannot be decoded (counted)."""
        ts = packet.ts
        order = self._order
        if order and order[0] == ts:  # _pop_first_if(), the common case inline
            del order[0]
            del self._packets[ts]
        else:
            self._pop_first_if(ts)
        try:
            pcm = self.decoder.decode(packet.payload)
        except MediaParseError:
            pcm = None
        if pcm is None or len(pcm) == 0:
            self.stats.decode_errors += 1
            return None
        return pcm

    def _skip(self, packet: _Packet, pcm: PCM) -> None:
        """Shorten the delay by one frame: this one is decoded (the decoder state stays
        continuous) but not played."""
        self._write_ts += self._samples_to_ticks(len(pcm))
        self._played_until = self._write_ts
        self._last = packet
        self.stats.frames_skipped += 1
        self.stats.played += 1

    def _played(self, packet: _Packet, samples: int) -> FrameStatus:
        """`samples` of the packet's audio went out: advance the playout point."""
        self._write_ts += samples * self._clock // self._rate  # _samples_to_ticks
        self._played_until = self._write_ts
        self._last = packet
        self._conceal_ticks = 0
        self.stats.played += 1
        if packet.silent:
            self._talking = False
            return FrameStatus.SILENCE
        self._talking = True
        return FrameStatus.NORMAL

    def _loss_piece(
        self, need: int, nxt: _Packet | None = None
    ) -> tuple[FrameStatus | None, int | None]:
        stats = self.stats
        if nxt is None:
            nxt = self._next_packet()
        stats.lost += 1
        if self._ticks_to_ms(self._conceal_ticks) >= self.config.max_conceal_ms:
            # Concealed long enough: the rest of this loss is silence.
            self._talking = False
            return self._silence_piece(need, None, nxt)
        ticks = self._piece_ticks(need, nxt)
        if (
            nxt is not None
            and nxt.ts - self._write_ts == self._frame_ticks
            and not nxt.comfort_noise
            and self.decoder.can_recover(nxt.payload)
        ):
            try:
                pcm = self.decoder.recover(nxt.payload, self._ticks_to_samples(ticks))
                status = FrameStatus.FEC_RECOVERED
                stats.fec_recovered += 1
            except MediaParseError:
                pcm = self.decoder.conceal(self._ticks_to_samples(ticks))
                status = FrameStatus.CONCEALED
                stats.concealed += 1
        else:
            pcm = self.decoder.conceal(self._ticks_to_samples(ticks))
            status = FrameStatus.CONCEALED
            stats.concealed += 1
        if len(pcm) == 0:  # pragma: no cover - decoders always return the size asked
            return self._silence_piece(need, None, nxt)
        advance = self._samples_to_ticks(self._append(pcm))
        self._write_ts += advance
        self._played_until = self._write_ts
        self._conceal_ticks += advance
        return status, None

    def _silence_piece(
        self, need: int, level: int | None, nxt: _Packet | None = None
    ) -> tuple[FrameStatus | None, int | None]:
        ticks = self._piece_ticks(need, nxt)
        samples = self._ticks_to_samples(ticks)
        self._fifo[self._fifo_len : self._fifo_len + samples] = 0
        self._fifo_len += samples
        self._write_ts += ticks
        return FrameStatus.SILENCE, level

    def _piece_ticks(self, need: int, nxt: _Packet | None) -> int:
        """Ticks for a gap piece: what the frame still needs, cut at the next packet so that it
        starts exactly on its own timestamp (talk-spurts after silence need not be on the old
        frame grid)."""
        ticks = max(1, self._samples_to_ticks(need))
        if nxt is not None and 0 < nxt.ts - self._write_ts < ticks:
            ticks = nxt.ts - self._write_ts
        # Never less than one sample's worth of ticks.
        return max(ticks, self._samples_to_ticks(1), 1)

    def _gap_is_silence(self, nxt: _Packet | None) -> bool:
        last = self._last
        if last is not None and last.silent:
            return True
        if nxt is not None:
            if nxt.marker:
                return True  # RFC 3551 §4.1: the first packet of a talk-spurt
            if last is not None and nxt.seq == last.seq + 1:
                return True  # nothing is missing: the sender skipped time
        return False

    def _end_talk(self, packet: _Packet) -> None:
        self._talking = False
        self._last = packet
        self.stats.played += 1

    def _steer_in_silence(self, error_ms: float) -> bool:
        """During silence, move the playout point to the target delay. Returns True to hold
        (output one more silent frame without advancing)."""
        half = self._frame_ms / 2.0
        if error_ms < -half:
            return True
        if error_ms > half:
            frames = round(error_ms / self._frame_ms)
            ticks = frames * self._frame_ticks
            nxt = self._next_packet(inclusive=True)
            if nxt is not None:
                ticks = min(ticks, nxt.ts - self._write_ts)
            if ticks > 0:
                self._write_ts += ticks
                self.stats.frames_skipped += ticks // self._frame_ticks
                self._drop_stale()
        return False

    def _drop_stale(self) -> None:
        """Packets now behind the playout point: during silence one may rewind the playout
        point (a talk-spurt that arrived later than the target but within the cap); the rest
        are late."""
        while self._order and self._order[0] < self._write_ts:
            ts = self._order[0]
            packet = self._packets[ts]
            if (
                not self._talking
                and self._fifo_len == 0
                and ts >= self._played_until
                and packet.arrival - ts / self._clock - self._fastest
                <= self.config.max_delay_ms / 1000.0
            ):
                self._write_ts = ts
                return
            self._order.pop(0)
            del self._packets[ts]
            self.stats.late += 1

    def _pop_first_if(self, ts: int) -> None:
        order = self._order
        if order and order[0] == ts:
            del order[0]  # the packet at the playout point: the first one, normally
        else:
            index = bisect.bisect_left(order, ts)
            if index < len(order) and order[index] == ts:
                order.pop(index)
        del self._packets[ts]

    def _next_packet(self, inclusive: bool = False) -> _Packet | None:
        """The first packet after the playout point (or at it, if `inclusive`)."""
        find = bisect.bisect_left if inclusive else bisect.bisect_right
        index = find(self._order, self._write_ts)
        if index < len(self._order):
            return self._packets[self._order[index]]
        return None

    def _append(self, pcm: PCM) -> int:
        """Append to the FIFO; returns the samples taken (a packet over 140 ms is cut)."""
        start = self._fifo_len
        count = len(pcm)
        if count > len(self._fifo) - start:
            count = len(self._fifo) - start
            pcm = pcm[:count]
        self._fifo[start : start + count] = pcm
        self._fifo_len = start + count
        return count

    def _zero_frame(self) -> PCM:
        self._frame.fill(0)
        return self._frame

    def _quiet(self, packet: _Packet, pcm: PCM) -> bool:
        """Quiet enough to drop unheard: by the sender's RFC 6464 level if it sent one."""
        if packet.level is not None:
            return packet.level >= self.config.quiet_level
        # The level's test on the energy itself (this runs every frame while the delay is
        # over target and the talker does not pause).
        if len(pcm) == self._frame_samples:
            return self._meter.energy(pcm) <= self._quiet_energy
        return self._meter.level(pcm) >= self.config.quiet_level

    def _desired_target(self) -> float:
        """The target delay the current jitter spread asks for (changes with the window)."""
        cfg = self.config
        return min(cfg.max_delay_ms, max(cfg.min_delay_ms, self._spread * 1000.0 + cfg.margin_ms))

    # -- unit conversions ----------------------------------------------------------------------

    def _ticks(self, ms: float) -> int:
        return int(ms * self._clock / 1000.0)

    def _ticks_to_ms(self, ticks: int) -> float:
        return ticks * 1000.0 / self._clock

    def _ticks_to_samples(self, ticks: int) -> int:
        return ticks * self._rate // self._clock

    def _samples_to_ticks(self, samples: int) -> int:
        return samples * self._clock // self._rate

    def reset(self) -> None:
        """Forget the stream (new SSRC): the next packet starts playout afresh."""
        self._packets.clear()
        self._order.clear()
        self._seen = 0
        self._outliers = []
        self._max_seq = self._max_ts = None
        self._started = False
        self._talking = False
        self._last = None
        self._fifo_len = 0
        self._transit_count = 0
        self.decoder.reset()
        self._resampler.reset()

    @property
    def buffered(self) -> int:
        """Packets currently held."""
        return len(self._order)
