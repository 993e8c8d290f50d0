"""Translator mode: RTP forwarded between the bridge and a multi-SSRC SIP trunk without decoding.

- Meeting -> phone: each talker (a remote source of the conference) gets its own outgoing
  SSRC, never shared with another talker, so the trunk can mix. Payload type and header
  extension ids are rewritten to what the SIP leg negotiated.
- Phone -> meeting: the phone's packets go out on the SSRC we declared in Jingle, with the
  bridge's payload type and the ssrc-audio-level extension the bridge needs for speaker
  detection and silence dropping.

Both keep each output stream's sequence and timestamp continuous when the input pauses or
changes SSRC (a receiver would otherwise see a huge "loss" or a clock jump). Sans-IO.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable

from media.rtp import AudioLevel, RtpPacket, seq_delta

MAX_FORWARD_GAP = 100  # a larger sequence jump is a restart, not loss
MAX_MISORDER = 100  # RFC 3550 A.1


class OutputStream:
    """Sequence/timestamp continuity of one outgoing SSRC fed by successive input streams.

    Inside one input stream the offsets stay fixed, so real loss stays visible as a sequence
    gap and the input's timestamps (its media clock) are kept. On a new input SSRC, a big
    sequence jump, or a pause longer than `pause` seconds, the output resumes at the next
    sequence number, the timestamp advances by the real time elapsed, and the marker is set
    (a new talk spurt, RFC 3551 §4.1)."""

    def __init__(
        self,
        ssrc: int,
        clock_rate: int,
        frame_samples: int,
        rand: random.Random,
        pause: float = 0.2,
    ) -> None:
        self.ssrc = ssrc
        self.clock_rate = clock_rate
        self.frame_samples = frame_samples
        self.pause = pause
        self._rand = rand
        self._in_ssrc: int | None = None
        self._old_in_ssrcs: list[int] = []
        self._seq_offset = 0
        self._ts_offset = 0
        self._in_high = 0  # highest input sequence of the current input stream
        self._out_high = 0  # highest output sequence sent
        self._out_ts = 0  # timestamp of the newest output packet
        self._last_time = 0.0
        self.packets = 0

    def _rebase(self, seq: int, ts: int, now: float) -> None:
        if self.packets == 0:
            out_seq = self._rand.getrandbits(16)  # RFC 3550 §5.1: random initial values
            out_ts = self._rand.getrandbits(32)
        else:
            out_seq = (self._out_high + 1) & 0xFFFF
            elapsed = round((now - self._last_time) * self.clock_rate)
            out_ts = (self._out_ts + max(self.frame_samples, elapsed)) & 0xFFFFFFFF
        self._seq_offset = (out_seq - seq) & 0xFFFF
        self._ts_offset = (out_ts - ts) & 0xFFFFFFFF
        self._in_high = seq

    def map(self, in_ssrc: int, seq: int, ts: int, now: float) -> tuple[int, int, bool] | None:
        """(output sequence, output timestamp, forced marker), or None to drop the packet
        (a late packet of an input stream that was already replaced)."""
        rebase = False
        if in_ssrc != self._in_ssrc:
            if in_ssrc in self._old_in_ssrcs:
                return None
            if self._in_ssrc is not None:
                self._old_in_ssrcs = [self._in_ssrc, *self._old_in_ssrcs[:3]]
            self._in_ssrc = in_ssrc
            self._rebase(seq, ts, now)
            rebase = True
        else:
            delta = seq_delta(seq, self._in_high)
            if delta < -MAX_MISORDER or delta > MAX_FORWARD_GAP:
                self._rebase(seq, ts, now)
                rebase = True
            elif delta > 1 and now - self._last_time >= self.pause:
                # The source paused (the bridge stopped forwarding it): no loss to report, so
                # close the sequence gap; its own timestamps still measure the pause.
                self._seq_offset = (self._out_high + 1 - seq) & 0xFFFF
                rebase = True
            elif delta == 0 and self.packets:
                return None  # duplicate
        out_seq = (seq + self._seq_offset) & 0xFFFF
        out_ts = (ts + self._ts_offset) & 0xFFFFFFFF
        if self.packets == 0 or seq_delta(out_seq, self._out_high) > 0:
            self._in_high = seq
            self._out_high = out_seq
            self._out_ts = out_ts
            self._last_time = now
        self.packets += 1
        return out_seq, out_ts, rebase


def _remap_extensions(
    extensions: dict[int, bytes] | None, id_map: dict[int, int] | None
) -> dict[int, bytes] | None:
    if not extensions or not id_map:
        return None
    out = {id_map[i]: v for i, v in extensions.items() if i in id_map}
    return out or None


class MeetingToPhoneTranslator:
    """Forward each conference source's Opus on its own SSRC towards the SIP trunk.

    `extension_map` maps the bridge's extension ids to the SIP leg's (ids not in it are
    dropped; None strips every extension)."""

    def __init__(
        self,
        payload_type: int,
        clock_rate: int = 48_000,
        frame_samples: int = 960,
        extension_map: dict[int, int] | None = None,
        pause: float = 0.2,
        rand: random.Random | None = None,
    ) -> None:
        self.payload_type = payload_type
        self.clock_rate = clock_rate
        self.frame_samples = frame_samples
        self.extension_map = extension_map
        self.pause = pause
        self._rand = rand or random.SystemRandom()
        self._streams: dict[Hashable, OutputStream] = {}

    @property
    def output_ssrcs(self) -> dict[Hashable, int]:
        """Talker -> the SSRC its audio goes out on (for the SIP leg's RTCP/SDP)."""
        return {source: s.ssrc for source, s in self._streams.items()}

    def _stream(self, source: Hashable) -> OutputStream:
        stream = self._streams.get(source)
        if stream is None:
            used = {s.ssrc for s in self._streams.values()}
            ssrc = self._rand.getrandbits(32)
            while ssrc in used or ssrc == 0:
                ssrc = self._rand.getrandbits(32)
            stream = OutputStream(ssrc, self.clock_rate, self.frame_samples, self._rand, self.pause)
            self._streams[source] = stream
        return stream

    def translate(self, source: Hashable, packet: RtpPacket, now: float) -> RtpPacket | None:
        """The packet to send on the SIP leg for `packet` of talker `source` (e.g. the
        endpoint id: a talker keeps its output SSRC when its own SSRC changes)."""
        mapped = self._stream(source).map(packet.ssrc, packet.sequence, packet.timestamp, now)
        if mapped is None:
            return None
        seq, ts, marker = mapped
        return RtpPacket(
            payload_type=self.payload_type,
            sequence=seq,
            timestamp=ts,
            ssrc=self._streams[source].ssrc,
            payload=packet.payload,
            marker=packet.marker or marker,
            extensions=_remap_extensions(packet.extensions, self.extension_map),
        )

    def remove_source(self, source: Hashable) -> int | None:
        """The talker left: forget its stream; returns its output SSRC (for an RTCP BYE)."""
        stream = self._streams.pop(source, None)
        return None if stream is None else stream.ssrc


LevelSource = Callable[[RtpPacket], AudioLevel | None]


class PhoneToMeetingTranslator:
    """Rewrite the phone's packets onto the SSRC declared in Jingle, with the bridge's payload
    type and ssrc-audio-level extension (RFC 6464) at the bridge's extension id. The level is
    the phone's own (at `phone_audio_level_id`) when it sends one, else `level_source(packet)`,
    else no extension. The caller passes audio packets only (no telephone-event, no CN)."""

    def __init__(
        self,
        ssrc: int,
        payload_type: int,
        audio_level_id: int | None,
        phone_audio_level_id: int | None = None,
        level_source: LevelSource | None = None,
        clock_rate: int = 48_000,
        frame_samples: int = 960,
        pause: float = 0.2,
        rand: random.Random | None = None,
    ) -> None:
        self.payload_type = payload_type
        self.audio_level_id = audio_level_id
        self.phone_audio_level_id = phone_audio_level_id
        self.level_source = level_source
        self._stream = OutputStream(
            ssrc, clock_rate, frame_samples, rand or random.SystemRandom(), pause
        )

    @property
    def ssrc(self) -> int:
        return self._stream.ssrc

    def _level(self, packet: RtpPacket) -> AudioLevel | None:
        if self.phone_audio_level_id is not None:
            level = packet.get_audio_level(self.phone_audio_level_id)
            if level is not None:
                return level
        if self.level_source is not None:
            return self.level_source(packet)
        return None

    def translate(self, packet: RtpPacket, now: float) -> RtpPacket | None:
        mapped = self._stream.map(packet.ssrc, packet.sequence, packet.timestamp, now)
        if mapped is None:
            return None
        seq, ts, marker = mapped
        out = RtpPacket(
            payload_type=self.payload_type,
            sequence=seq,
            timestamp=ts,
            ssrc=self._stream.ssrc,
            payload=packet.payload,
            marker=packet.marker or marker,
        )
        if self.audio_level_id is not None:
            try:
                level = self._level(packet)
            except ValueError:  # a malformed level element from the phone: just omit it
                level = None
            if level is not None:
                out.set_audio_level(self.audio_level_id, level.level, level.voice)
        return out
