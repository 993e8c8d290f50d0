"""The room mixer: one per conference room, shared by every call of ours in that room.

design.md, "How audio flows". A room has *legs* and *sources*:

* a leg is one call in the room. It receives, every tick, the mix of the room minus its own
  phone's voice (N-1), which the call then resamples and encodes for its SIP side;
* a remote source is a conference participant's audio stream, keyed by its SSRC. The bridge
  sends every SSRC to every leg of ours in the room, so the same packets arrive once per leg:
  each SSRC is taken from one leg only (its *owner*), given one jitter buffer and one Opus
  decoder for the whole room, and decoded once per tick however many calls are in the room. The
  owner is the first leg its packets arrive on; another leg takes over when the owner leg
  leaves the room or stops delivering that SSRC for `owner_timeout` seconds (its transport
  died). The buffer and decoder survive the change: the packets are the same;
* a local source is a call's own phone (`FrameSource`: the SIP leg's jitter buffer, already at
  48 kHz). It is mixed here directly, which is shorter than the round trip through the bridge,
  and the bridge's copy of it (the SSRC our conference leg sends it on) is ignored so that
  nothing is mixed twice.

Per tick (`tick(now, frames)`): pull one 48 kHz frame from every active remote source and every
phone, add them into one int32 sum, and for each leg take the sum minus its own phone (exact
integer arithmetic), then a soft limiter brings it to int16 without wrap-around or hard
clipping. Legs whose phone contributed nothing this tick share one limited full mix (the common
case in a large room: one subtraction per *talking* phone, not per leg); `leg.shared` says so,
and a call pipeline then resamples and encodes that mix once for all of them. Then, in two
passes so that each kind of work runs back to back for the whole room (the code stays hot in
the CPU caches), every leg's `on_frame(leg, now, frames)` runs with `leg.mix` (its frame for the
phone), then every leg's `on_phone(leg, now, frames)` with `leg.phone_frame` /
`leg.phone_level` / `leg.phone_voice` (its phone's own audio and RFC 6464 level, for the
conference leg to encode towards the bridge).

Only remote sources with something to play are pulled: one that played silence and holds no
packet (the bridge stopped forwarding a silent sender) goes idle until its next packet; its
jitter buffer then re-steers in silence. With `max_decoded=K` only the K loudest remote sources
(by their RFC 6464 levels, a decaying peak with hysteresis) are decoded; the others' packets are
dropped before their jitter buffer (counted in `k_loudest_skips`) and a source that loses its
slot restarts its buffer when it wins one back. Phones are always mixed (G.711 costs nothing
next to an Opus decode).

Sans-IO: no sockets, time passed in; the process clock (`media.clock`) runs `steps` (the tick
in slices) or `tick`.
Per-tick work allocates no numpy arrays: every buffer is allocated when a leg or source is added.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from media.clock import DEFER, Defer
from media.codecs import Decoder, create_decoder
from media.frame import FRAME_SAMPLES, PCM, count_nonzero
from media.jitterbuffer import FrameStatus, JitterBuffer, JitterConfig, JitterFrame
from media.level import SILENCE, VoiceActivityDetector, levels_from_energies
from media.rtp import RtpPacket

_I32 = npt.NDArray[np.int32]
_F32 = npt.NDArray[np.float32]

LegId = Hashable


class FrameSource(Protocol):
    """A local source: one 48 kHz frame per call (a `JitterBuffer`, or a call pipeline)."""

    def pull(self, now: float) -> JitterFrame: ...


class SoftLimiter:
    """int32 mix -> int16 with a peak limiter: instant attack, smooth release.

    Per frame, the gain that keeps the frame's peak at or below `threshold` is computed. A
    lower gain than the current one applies to the whole frame at once (a look-ahead of up to
    one frame: the gain drops before the peak, nothing is clipped); a higher one is approached
    by at most `release_db` per frame, ramped linearly across the frame. Either way every output
    sample is at most `threshold`, so nothing wraps (an int16 cast of an int32 sum would turn a
    loud positive peak into a negative one) and nothing is hard-clipped. Frames that need no
    gain cost one max/min and a cast.
    """

    def __init__(
        self,
        samples: int = FRAME_SAMPLES,
        threshold: float = 0.9 * 32767.0,
        release_db: float = 0.5,
    ) -> None:
        if not 0 < threshold <= 32767.0:
            raise ValueError("limiter threshold must be within int16 range")
        self.threshold = threshold
        self.release = 10.0 ** (release_db / 20.0)
        self.gain = 1.0
        self.limited_frames = 0
        self._work: _F32 = np.zeros(samples, dtype=np.float32)
        self._ramp: _F32 = np.linspace(1.0 / samples, 1.0, samples, dtype=np.float32)
        self._gains: _F32 = np.zeros(samples, dtype=np.float32)

    def process(self, mix: _I32, out: PCM) -> PCM:
        peak = max(int(np.maximum.reduce(mix)), -int(np.minimum.reduce(mix)))
        if self.gain >= 1.0 and peak <= self.threshold:
            out[...] = mix  # in range: the cast is exact
            return out
        return self.limit(mix, out, peak)

    def limit(self, mix: _I32, out: PCM, peak: int) -> PCM:
        """`process` for a frame whose peak is known, when it needs a gain (the gain is below
        1, or the peak is above the threshold)."""
        threshold = self.threshold
        allowed = threshold / peak if peak > threshold else 1.0
        previous = self.gain
        work = self._work
        np.copyto(work, mix, casting="unsafe")
        if allowed <= previous:
            self.gain = allowed  # attack: the whole frame, at once
            work *= np.float32(allowed)
        else:
            target = min(allowed, previous * self.release, 1.0)
            self.gain = target
            gains = self._gains
            np.multiply(self._ramp, np.float32(target - previous), out=gains)
            gains += np.float32(previous)
            work *= gains
        self.limited_frames += 1
        np.rint(work, out=work)
        np.copyto(out, work, casting="unsafe")
        return out

    def reset(self) -> None:
        self.gain = 1.0


@dataclass(frozen=True, slots=True)
class MixerConfig:
    jitter: JitterConfig = field(default_factory=JitterConfig)
    owner_timeout: float = 0.2  # s without packets from the owner leg before another takes over
    max_decoded: int | None = None  # K-loudest: decode at most K remote sources (None: all)
    loudest_hysteresis_db: int = 6  # a decoded source keeps its slot unless beaten by this much
    loudest_decay_db: float = 1.0  # per 20 ms: how fast a source's peak level fades
    loudest_recent_s: float = 0.2  # a source with no packet for this long competes no more
    auto_add: bool = False  # create a remote source for an unknown SSRC's first packet
    idle_timeout: float = 120.0  # auto-added sources with no packet for this long are removed
    limiter_threshold: float = 0.9 * 32767.0
    limiter_release_db: float = 0.5
    vad_threshold_dbov: float = -45.0  # the phone's voice flag (RFC 6464 V bit) towards the bridge
    slice_legs: int = 8  # `steps()` yields after this many legs of each pass


@dataclass(slots=True)
class SourceStats:
    packets: int = 0  # packets put into the jitter buffer (the owner's copies)
    copies_ignored: int = 0  # the same packets arriving on the other legs
    frames_pulled: int = 0  # ticks this source was pulled (decode once per tick, at most)
    k_loudest_skips: int = 0  # packets not decoded: not among the K loudest
    failovers: int = 0  # owner changes after the first


class RemoteSource:
    """One conference participant's stream in a room: one jitter buffer + decoder."""

    def __init__(self, ssrc: int, decoder: Decoder, config: JitterConfig, auto: bool) -> None:
        self.ssrc = ssrc
        self.jitter = JitterBuffer(decoder, config)
        self.auto = auto
        self.owner: LegId | None = None
        self.owner_last = -1e18  # arrival time of the owner's last packet
        self.level: int | None = None  # RFC 6464 level of the last packet (-dBov)
        self.voice: bool | None = None
        self.last_arrival = -1e18
        self.active = False  # pulled each tick (has packets, or was playing audio)
        self.status = FrameStatus.SILENCE
        self.admitted = True  # K-loudest: may be decoded
        self.score = float(SILENCE)  # K-loudest: decaying peak level (-dBov, lower is louder)
        self.stats = SourceStats()

    @property
    def frames_decoded(self) -> int:
        """Decoder invocations: packets decoded plus concealment and FEC frames."""
        s = self.jitter.stats
        return s.played + s.concealed + s.fec_recovered + s.decode_errors


FrameCallback = Callable[["MixerLeg", float, int], None]


class MixerLeg:
    """One call in the room. After each tick: `mix` is the frame for the phone (the room minus
    this call's phone), `phone_frame` the phone's own frame with `phone_level`/`phone_voice`
    (towards the conference). The arrays are reused buffers, valid until the next tick."""

    def __init__(
        self,
        leg_id: LegId,
        phone: FrameSource | None,
        on_frame: FrameCallback | None,
        on_phone: FrameCallback | None,
        config: MixerConfig,
    ) -> None:
        self.id = leg_id
        self.phone = phone
        self.on_frame = on_frame
        self.on_phone = on_phone
        self.bridge_ssrcs: set[int] = set()
        self.mix: PCM = np.zeros(FRAME_SAMPLES, dtype=np.int16)
        self.mix_active = False  # the mix holds audio (not digital silence)
        self.shared = False  # `mix` is the room's full mix, the same for every such leg
        self.phone_frame: PCM | None = None
        self.phone_status = FrameStatus.SILENCE
        self.phone_level = SILENCE
        self.phone_voice = False
        self.frames_out = 0
        self.tick = -1  # the mixer tick whose frames the leg holds
        self._own = False  # the phone contributed to this tick's sum
        self._limiter = SoftLimiter(
            FRAME_SAMPLES, config.limiter_threshold, config.limiter_release_db
        )
        self._vad = VoiceActivityDetector(config.vad_threshold_dbov)


@dataclass(slots=True)
class MixerStats:
    ticks: int = 0
    mixes: int = 0  # frames produced for legs
    full_mixes: int = 0  # limited full mixes (one per tick; shared by legs with a silent phone)
    own_mixes: int = 0  # mix-minus frames computed for a talking phone
    sources_pulled: int = 0  # remote source frames pulled (sum over sources and ticks)
    own_copies_ignored: int = 0  # bridge copies of our own phones' streams
    unknown_ssrc: int = 0  # packets of an SSRC not added (auto_add off)
    foreign_leg: int = 0  # packets tagged with a leg that is not in the room
    k_loudest_skips: int = 0
    k_loudest_changes: int = 0  # sources that lost their decoding slot
    failovers: int = 0


class RoomMixer:
    """The mixer of one room. See the module docstring."""

    def __init__(
        self,
        config: MixerConfig | None = None,
        decoder_factory: Callable[[], Decoder] | None = None,
    ) -> None:
        self.config = config if config is not None else MixerConfig()
        self._decoder_factory = decoder_factory or (lambda: create_decoder("opus"))
        self.stats = MixerStats()
        self._legs: dict[LegId, MixerLeg] = {}
        self._sources: dict[int, RemoteSource] = {}
        self._own_ssrcs: dict[int, LegId | None] = {}
        self._sum: _I32 = np.zeros(FRAME_SAMPLES, dtype=np.int32)
        self._full: PCM = np.zeros(FRAME_SAMPLES, dtype=np.int16)
        self._previous_full: PCM = np.zeros(FRAME_SAMPLES, dtype=np.int16)
        self._full_limiter = SoftLimiter(
            FRAME_SAMPLES, self.config.limiter_threshold, self.config.limiter_release_db
        )
        self._capacity = 0
        self._reserve(8)
        self._tick_count = 0
        # What the layers above keep per room (the pipeline's shared downlinks).
        self.attachments: dict[str, Any] = {}

    def _reserve(self, rows: int) -> None:
        """Room for `rows` frames in the tick's blocks (one row per audible source or phone).
        Grown when legs and sources are added, never during a tick: a tick that is under way
        keeps the arrays it started with."""
        if rows <= self._capacity:
            return
        capacity = self._capacity = max(rows, 2 * self._capacity)
        # This tick's audible frames: the remote sources', then the talking phones'. int32:
        # the sum, squares and differences then run without a cast (2.5 µs less per room).
        self._block: _I32 = np.zeros((capacity, FRAME_SAMPLES), dtype=np.int32)
        self._block_rows = list(self._block)
        # The talking phones' squared samples (for their levels), then their mix-minus.
        self._minus: _I32 = np.zeros((capacity, FRAME_SAMPLES), dtype=np.int32)
        # The talking legs' mixes (`leg.mix`), limited.
        self._mixes: PCM = np.zeros((capacity, FRAME_SAMPLES), dtype=np.int16)
        self._mix_rows = list(self._mixes)
        self._energies: npt.NDArray[np.int64] = np.zeros(capacity, dtype=np.int64)
        self._peaks: _I32 = np.zeros((2, capacity), dtype=np.int32)

    # -- legs ----------------------------------------------------------------------------------

    def add_leg(
        self,
        leg_id: LegId,
        phone: FrameSource | None = None,
        on_frame: FrameCallback | None = None,
        bridge_ssrcs: Iterable[int] = (),
        on_phone: FrameCallback | None = None,
    ) -> MixerLeg:
        """A call joins the room. `phone` is its local source; every tick `on_frame` gets the
        leg's mix (for the phone) and then `on_phone` its phone's frame (for the conference);
        `bridge_ssrcs` are the SSRCs its phone's audio is sent to the bridge on (their copies
        coming back from the bridge are ignored)."""
        if leg_id in self._legs:
            raise ValueError(f"leg {leg_id!r} is already in the room")
        leg = MixerLeg(leg_id, phone, on_frame, on_phone, self.config)
        self._legs[leg_id] = leg
        self._reserve(len(self._legs) + len(self._sources))
        for ssrc in bridge_ssrcs:
            self.mark_own_ssrc(ssrc, leg_id)
        return leg

    def remove_leg(self, leg_id: LegId) -> None:
        """The call left: its phone is no longer mixed, its bridge SSRCs are no longer ours, and
        the sources it owned go to the next leg that delivers them."""
        leg = self._legs.pop(leg_id, None)
        if leg is None:
            return
        for ssrc in list(leg.bridge_ssrcs):
            self.unmark_own_ssrc(ssrc)
        for source in self._sources.values():
            if source.owner == leg_id:
                source.owner = None

    def leg(self, leg_id: LegId) -> MixerLeg:
        return self._legs[leg_id]

    @property
    def legs(self) -> list[MixerLeg]:
        return list(self._legs.values())

    def __len__(self) -> int:
        return len(self._legs)

    def mark_own_ssrc(self, ssrc: int, leg_id: LegId | None = None) -> None:
        """`ssrc` is one of our phones' streams as the bridge sees it: its copies are ignored."""
        self._own_ssrcs[ssrc] = leg_id
        if leg_id is not None and leg_id in self._legs:
            self._legs[leg_id].bridge_ssrcs.add(ssrc)
        self.remove_source(ssrc)  # in case its packets arrived before we were told

    def unmark_own_ssrc(self, ssrc: int) -> None:
        leg_id = self._own_ssrcs.pop(ssrc, None)
        if leg_id is not None and leg_id in self._legs:
            self._legs[leg_id].bridge_ssrcs.discard(ssrc)

    # -- remote sources ------------------------------------------------------------------------

    def add_source(self, ssrc: int) -> RemoteSource | None:
        """A conference participant's audio SSRC (Jingle source-add). None for our own."""
        if ssrc in self._own_ssrcs:
            return None
        source = self._sources.get(ssrc)
        if source is None:
            source = self._new_source(ssrc, auto=False)
        return source

    def _new_source(self, ssrc: int, auto: bool) -> RemoteSource:
        source = RemoteSource(ssrc, self._decoder_factory(), self.config.jitter, auto)
        k = self.config.max_decoded
        if k is not None:
            # A free slot is taken at once; otherwise the source competes from the next tick.
            source.admitted = sum(s.admitted for s in self._sources.values()) < k
        self._sources[ssrc] = source
        self._reserve(len(self._legs) + len(self._sources))
        return source

    def remove_source(self, ssrc: int) -> None:
        """The participant left (Jingle source-remove): it stops being heard at once."""
        self._sources.pop(ssrc, None)

    def source(self, ssrc: int) -> RemoteSource:
        return self._sources[ssrc]

    @property
    def sources(self) -> list[RemoteSource]:
        return list(self._sources.values())

    @property
    def full_mix(self) -> PCM:
        """This tick's mix of every source, limited (what the `shared` legs get)."""
        return self._full

    @property
    def previous_full_mix(self) -> PCM:
        """The last tick's full mix: a leg that leaves the shared mix feeds it to its own
        resampler first, so that the filter history is the one the shared stream had."""
        return self._previous_full

    def levels(self) -> dict[int, int]:
        """SSRC -> the RFC 6464 level (-dBov) its last packet carried (active speaker)."""
        return {s.ssrc: s.level for s in self._sources.values() if s.level is not None}

    def put_remote(
        self,
        leg_id: LegId,
        ssrc: int,
        seq: int,
        timestamp: int,
        payload: bytes,
        marker: bool,
        level: int | None,
        arrival: float,
        voice: bool | None = None,
    ) -> bool:
        """One packet from the bridge, received on leg `leg_id`. Returns True if it was used,
        False if it was a copy, ours, or not decoded. Raises only `MediaParseError` for field
        values outside their RTP ranges."""
        if ssrc in self._own_ssrcs:
            self.stats.own_copies_ignored += 1
            return False
        source = self._sources.get(ssrc)
        if source is None:
            if not self.config.auto_add:
                self.stats.unknown_ssrc += 1
                return False
            if leg_id not in self._legs:
                self.stats.foreign_leg += 1
                return False
            source = self._new_source(ssrc, auto=True)
        if source.owner != leg_id:
            if leg_id not in self._legs:
                self.stats.foreign_leg += 1
                return False
            if source.owner is not None and arrival - source.owner_last < self.config.owner_timeout:
                source.stats.copies_ignored += 1
                return False
            if source.owner is not None or source.stats.packets:
                source.stats.failovers += 1
                self.stats.failovers += 1
            source.owner = leg_id
        source.owner_last = arrival
        source.last_arrival = arrival
        if level is not None:
            source.level = level
            source.voice = voice
        if not source.admitted:
            if level is not None and level < source.score:
                source.score = float(level)
            source.stats.k_loudest_skips += 1
            self.stats.k_loudest_skips += 1
            return False
        source.jitter.put(seq, timestamp, payload, marker, level, arrival, voice=voice)
        source.stats.packets += 1
        source.active = True
        if level is not None and level < source.score:
            source.score = float(level)
        return True

    def wants(self, leg_id: LegId, ssrc: int, arrival: float) -> bool:
        """Would a packet of `ssrc` arriving on `leg_id` now be used? A conference leg can ask
        before it spends anything on a copy (decryption, parsing): False for our own phones'
        streams and for a copy of a source another leg delivers."""
        if ssrc in self._own_ssrcs or leg_id not in self._legs:
            return False
        source = self._sources.get(ssrc)
        if source is None:
            return self.config.auto_add
        owner = source.owner
        return (
            owner is None
            or owner == leg_id
            or arrival - source.owner_last >= self.config.owner_timeout
        )

    def put_remote_packet(
        self, leg_id: LegId, packet: RtpPacket, arrival: float, audio_level_id: int | None
    ) -> bool:
        """`put_remote` for a parsed RTP packet; `audio_level_id` is the negotiated id of the
        ssrc-audio-level extension (RFC 6464). A malformed level element is ignored."""
        ssrc = packet.ssrc
        # The copies (N-1 of every N) and our own streams are the common case: drop them here,
        # before looking at the packet any further.
        if ssrc in self._own_ssrcs:
            self.stats.own_copies_ignored += 1
            return False
        source = self._sources.get(ssrc)
        if (
            source is not None
            and source.owner != leg_id
            and source.owner is not None
            and arrival - source.owner_last < self.config.owner_timeout
            and leg_id in self._legs
        ):
            source.stats.copies_ignored += 1
            return False
        level = voice = None
        if audio_level_id is not None and packet.extensions:
            value = packet.extensions.get(audio_level_id)
            if value:
                level, voice = value[0] & 0x7F, bool(value[0] & 0x80)
        return self.put_remote(
            leg_id,
            ssrc,
            packet.sequence,
            packet.timestamp,
            packet.payload,
            packet.marker,
            level,
            arrival,
            voice,
        )

    # -- the tick ------------------------------------------------------------------------------

    def tick(self, now: float, frames: int = 1) -> None:
        """Mix one frame for every leg and hand it over (`on_frame`, then `on_phone`)."""
        for _ in self.steps(now, frames):
            pass

    def steps(self, now: float, frames: int = 1) -> Iterator[Defer | None]:
        """`tick` in steps: it yields after every `slice_legs` legs of each pass, and the process
        clock may let the event loop run in between (a room of 100 calls is ~10 ms of work).
        Legs that leave meanwhile are skipped; legs that join get their first frame next tick."""
        stats = self.stats
        stats.ticks += 1
        self._tick_count += 1
        config = self.config
        chunk = max(1, config.slice_legs)
        if config.max_decoded is not None:
            self._choose_loudest(now)
        if config.auto_add and self._tick_count % 50 == 0:
            self._expire(now)
        legs = list(self._legs.values())
        present = self._legs

        # Every audible frame is copied into one block, so that the sum, the levels, the
        # mix-minus and the peaks are one numpy call each for the whole room, not one per
        # phone (a call costs ~0.5 µs whatever its size; a room of 8 talking phones went
        # from 64 calls per tick to 27). A leg added during this tick may grow the blocks:
        # the tick keeps the ones it started with, which hold every leg it mixes.
        rows = self._block_rows
        block = self._block
        minus = self._minus
        mix_rows = self._mix_rows
        m = 0  # rows filled
        silence = FrameStatus.SILENCE
        for source in self._sources.values():
            if not source.active:
                continue
            frame = source.jitter.pull(now)
            source.stats.frames_pulled += 1
            stats.sources_pulled += 1
            source.status = frame.status
            if frame.status is silence:
                # Silence frames are zeros: nothing to add. Idle once nothing is pending.
                if not source.jitter.buffered:
                    source.active = False
                continue
            rows[m][...] = frame.pcm  # (np.copyto costs twice as much as a slice assignment)
            m += 1
        first_phone = m

        talkers: list[MixerLeg] = []
        for i, leg in enumerate(legs, 1):
            leg._own = False
            phone = leg.phone
            if phone is not None and present.get(leg.id) is leg:
                frame = phone.pull(now)
                pcm = frame.pcm
                leg.phone_frame = pcm
                leg.phone_status = frame.status
                # Most phones in a big room send digital silence: a zero test is cheaper than
                # the level (RMS) of the frame. Level 127 is an all-zero frame, or one its
                # sender declared silent (comfort noise, DTX): nothing to add or subtract.
                if frame.status is silence or not count_nonzero(pcm):
                    leg.phone_level = SILENCE
                    leg.phone_voice = leg._vad.update(SILENCE)
                else:
                    rows[m][...] = pcm
                    m += 1
                    talkers.append(leg)
                    leg._own = True
            if i % chunk == 0:
                yield None

        total = self._sum
        if m:
            np.add.reduce(block[:m], axis=0, out=total)
        else:
            total.fill(0)
        contributions = m
        k = len(talkers)
        tick = stats.ticks
        if k:
            phones = block[first_phone:m]
            own = minus[:k]
            # The talking phones' RFC 6464 levels from exact sums of squares (an int16
            # square fits int32, 960 of them int64). A frame that is not all zeros is
            # never level 127 (a single ±1 sample reads 120), so all of them are mixed.
            np.square(phones, out=own)
            energies = np.add.reduce(own, axis=1, dtype=np.int64, out=self._energies[:k])
            levels = levels_from_energies(energies.tolist(), FRAME_SAMPLES)
            np.subtract(total, phones, out=own)
            peaks = self._peaks[:, :k]
            np.maximum.reduce(own, axis=1, out=peaks[0])
            np.minimum.reduce(own, axis=1, out=peaks[1])
            # In range the cast is exact: the limiter redoes only the rows that need a gain.
            self._mixes[:k] = own
            highs, lows = peaks.tolist()
            active = contributions > 1
            # One pass over the talking legs for their levels and their mixes.
            for j, leg in enumerate(talkers):
                level = levels[j]
                leg.phone_level = level
                leg.phone_voice = leg._vad.update(level)
                peak = max(highs[j], -lows[j])
                limiter = leg._limiter
                if limiter.gain < 1.0 or peak > limiter.threshold:
                    limiter.limit(own[j], mix_rows[j], peak)
                leg.mix = mix_rows[j]
                leg.mix_active = active
                leg.shared = False
            stats.own_mixes += k

        # The full mix is computed every tick (also when no leg uses it) so that its limiter
        # and the shared resampling downstream stay continuous.
        self._full, self._previous_full = self._previous_full, self._full
        full_limiter = self._full_limiter
        full = full_limiter.process(total, self._full)
        stats.full_mixes += 1
        gain = full_limiter.gain
        active = contributions > 0
        for leg in legs:
            if not leg._own:
                # Keep the leg's own limiter where the shared one is, so that a switch to its
                # own mix-minus (its phone starts talking) does not jump in gain.
                leg._limiter.gain = gain
                leg.mix = full
                leg.mix_active = active
                leg.shared = True
            leg.frames_out += 1
            leg.tick = tick
        stats.mixes += len(legs)

        for i, leg in enumerate(legs, 1):
            if leg.on_frame is not None and present.get(leg.id) is leg:
                leg.on_frame(leg, now, frames)
            if i % chunk == 0:
                yield None
        # The phones' frames towards the conference (Opus encodes) once every room is mixed.
        yield DEFER
        for i, leg in enumerate(legs, 1):
            if leg.on_phone is not None and present.get(leg.id) is leg:
                leg.on_phone(leg, now, frames)
            if i % chunk == 0:
                yield None

    def _choose_loudest(self, now: float) -> None:
        """K-loudest: rank the recently heard remote sources by their decaying peak level and
        give the K loudest a decoding slot (RFC 6464 levels: lower -dBov is louder)."""
        config = self.config
        k = config.max_decoded
        assert k is not None
        decay = config.loudest_decay_db
        hysteresis = config.loudest_hysteresis_db
        recent = now - config.loudest_recent_s
        ranked: list[tuple[float, int]] = []
        for source in self._sources.values():
            source.score = min(float(SILENCE), source.score + decay)
            if source.last_arrival >= recent or source.active:
                bonus = hysteresis if source.admitted else 0
                ranked.append((source.score - bonus, source.ssrc))
        ranked.sort()
        chosen = {ssrc for _, ssrc in ranked[:k]}
        for source in self._sources.values():
            wanted = source.ssrc in chosen
            if source.admitted and not wanted:
                source.admitted = False
                source.active = False
                source.jitter.reset()  # restarts cleanly if it wins a slot back
                self.stats.k_loudest_changes += 1
            elif wanted and not source.admitted:
                source.admitted = True

    def _expire(self, now: float) -> None:
        limit = now - self.config.idle_timeout
        stale = [s.ssrc for s in self._sources.values() if s.auto and s.last_arrival < limit]
        for ssrc in stale:
            del self._sources[ssrc]
