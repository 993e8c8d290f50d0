"""RFC 4733 telephone-events (DTMF): the payload, a receiver that reports each key press
exactly once, and a sender that produces the packet train of each digit.

Sans-IO. Durations and timestamps are in the telephone-event clock, which is the clock rate
negotiated for the telephone-event payload type (8000 for most trunks, 48000 beside Opus).
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass

from media.errors import MediaParseError
from media.rtp import ts_delta

_EVENT = struct.Struct("!BBH")

# RFC 4733 §3.2: events 0-9 are the digits, 10 '*', 11 '#', 12-15 'A'-'D', 16 flash.
FLASH = "!"  # the flash-hook event (16) as a one-character "digit"
DIGITS = "0123456789*#ABCD" + FLASH
_EVENT_OF = {d: i for i, d in enumerate(DIGITS)}
MAX_DURATION = 0xFFFF


def digit_to_event(digit: str) -> int:
    event = _EVENT_OF.get(digit.upper())
    if event is None:
        raise ValueError(f"{digit!r} is not a DTMF digit (0-9 * # A-D or {FLASH!r} for flash)")
    return event


def event_to_digit(event: int) -> str | None:
    """The digit of an event code, or None for the other RFC 4733 events (tones, etc.)."""
    return DIGITS[event] if 0 <= event < len(DIGITS) else None


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """RFC 4733 §2.3 payload: event code, end bit, volume (0..63, -dBm0), duration."""

    event: int
    end: bool
    volume: int
    duration: int

    @classmethod
    def parse(cls, payload: bytes) -> TelephoneEvent:
        if len(payload) < 4:
            raise MediaParseError(f"telephone-event payload of {len(payload)} bytes (need 4)")
        event, flags, duration = _EVENT.unpack_from(payload)
        return cls(event, bool(flags & 0x80), flags & 0x3F, duration)

    def serialize(self) -> bytes:
        # The R bit (0x40) is reserved: sent as zero (§2.3.3).
        flags = (0x80 if self.end else 0) | (self.volume & 0x3F)
        return _EVENT.pack(self.event, flags, min(self.duration, MAX_DURATION))


@dataclass(frozen=True, slots=True)
class DtmfDigit:
    """One key press, reported once when first seen. `duration` is what the first packet
    seen said (in clock units); `ended` tells whether that packet was already an end packet
    (the start and updates were lost)."""

    digit: str
    event: int
    timestamp: int
    volume: int
    duration: int
    ended: bool


class DtmfReceiver:
    """RFC 4733 §2.5.2 receiver. One key press = one event timestamp; the start, updates and
    the (usually triplicated) end packet of a press all share it, so the press is reported on
    the first packet seen with a new timestamp, whichever packet that is."""

    def __init__(self, clock_rate: int, history: int = 16) -> None:
        self.clock_rate = clock_rate
        self._reported: deque[int] = deque(maxlen=history)
        self._current_ts: int | None = None
        self._current_event = -1
        self._current_duration = 0
        self._current_ended = True
        self.packets = 0
        self.presses = 0

    @property
    def active(self) -> bool:
        """A press is in progress (seen, its end not yet seen)."""
        return self._current_ts is not None and not self._current_ended

    def reset(self) -> None:
        """A new stream (SSRC change): forget the timestamps of the old one."""
        self._reported.clear()
        self._current_ts = None
        self._current_ended = True

    def _is_long_event_segment(self, timestamp: int, event: int) -> bool:
        # §2.5.2.3: an event longer than the 16-bit duration continues in a new segment whose
        # timestamp is the old one plus the old duration; that is the same press.
        if self._current_ts is None or self._current_ended or event != self._current_event:
            return False
        if self._current_duration < MAX_DURATION - self.clock_rate // 10:
            return False
        return 0 < ts_delta(timestamp, self._current_ts) <= MAX_DURATION + self.clock_rate

    def on_packet(self, timestamp: int, payload: bytes) -> DtmfDigit | None:
        """Feed one telephone-event packet; returns the press if it is a new one.
        Raises MediaParseError for a short payload."""
        ev = TelephoneEvent.parse(payload)
        self.packets += 1
        if timestamp == self._current_ts:
            self._current_duration = max(self._current_duration, ev.duration)
            self._current_ended = self._current_ended or ev.end
            return None
        if timestamp in self._reported:
            return None  # a late retransmission of an older press
        segment = self._is_long_event_segment(timestamp, ev.event)
        self._current_ts = timestamp
        self._current_event = ev.event
        self._current_duration = ev.duration
        self._current_ended = ev.end
        self._reported.append(timestamp)
        digit = event_to_digit(ev.event)
        if segment or digit is None:
            return None
        self.presses += 1
        return DtmfDigit(digit, ev.event, timestamp, ev.volume, ev.duration, ev.end)


@dataclass(frozen=True, slots=True)
class EventPacket:
    """One telephone-event packet to send: the RTP fields the session must use."""

    payload: bytes
    marker: bool
    timestamp: int


def event_packets(
    digit: str,
    start_timestamp: int,
    clock_rate: int,
    duration_ms: int = 100,
    ptime_ms: int = 20,
    volume: int = 10,
    end_repeats: int = 3,
) -> list[EventPacket]:
    """The whole packet train of one digit (§2.5.1): every packet carries the event's start
    timestamp, the first has the marker bit, the duration grows by one packet time per packet,
    and the final duration is sent `end_repeats` times with the end bit."""
    ticks = _event_ticks(
        digit, start_timestamp, clock_rate, duration_ms, ptime_ms, volume, end_repeats
    )
    return [packet for tick in ticks for packet in tick]


def _event_ticks(
    digit: str,
    start_timestamp: int,
    clock_rate: int,
    duration_ms: int,
    ptime_ms: int,
    volume: int,
    end_repeats: int,
) -> list[list[EventPacket]]:
    event = digit_to_event(digit)
    step = clock_rate * ptime_ms // 1000
    count = max(1, -(-duration_ms // ptime_ms))  # packet times the tone lasts
    ts = start_timestamp & 0xFFFFFFFF
    ticks: list[list[EventPacket]] = []
    for k in range(1, count):
        payload = TelephoneEvent(event, False, volume, k * step).serialize()
        ticks.append([EventPacket(payload, k == 1, ts)])
    final = TelephoneEvent(event, True, volume, count * step).serialize()
    # The end packet is retransmitted (§2.5.1.4) in the same tick, as Asterisk does, so the
    # press ends on time even if one copy is lost.
    ticks.append([EventPacket(final, count == 1 and i == 0, ts) for i in range(end_repeats)])
    return ticks


class DtmfSender:
    """Per-tick source of telephone-event packets, interleaved by the RTP session with audio
    on the same SSRC and sequence: while it is `busy`, each 20 ms tick sends its packets in
    place of the audio frame. Digits are queued, separated by `gap_ms` of audio."""

    def __init__(
        self,
        clock_rate: int,
        ptime_ms: int = 20,
        duration_ms: int = 100,
        gap_ms: int = 60,
        volume: int = 10,
    ) -> None:
        self.clock_rate = clock_rate
        self.ptime_ms = ptime_ms
        self.duration_ms = duration_ms
        self.gap_ms = gap_ms
        self.volume = volume
        self._queue: deque[tuple[str, int]] = deque()
        self._ticks: deque[list[EventPacket]] = deque()
        self._gap_ticks = 0

    def queue(self, digits: str, duration_ms: int | None = None) -> None:
        """Queue digits (validated now, so a bad digit fails the caller, not the clock)."""
        for d in digits:
            digit_to_event(d)
        for d in digits:
            self._queue.append((d, self.duration_ms if duration_ms is None else duration_ms))

    @property
    def busy(self) -> bool:
        """`tick()` has work: an event in progress, queued digits, or the gap after an event
        still counting down (those ticks return no packets: they are audio)."""
        return bool(self._ticks) or bool(self._queue) or self._gap_ticks > 0

    @property
    def active(self) -> bool:
        """An event is being sent: the next tick sends its packets."""
        return bool(self._ticks)

    @property
    def pending(self) -> int:
        return len(self._queue) + (1 if self._ticks else 0)

    def tick(self, timestamp: int) -> list[EventPacket]:
        """Packets for this tick; `timestamp` is the RTP timestamp the audio frame of this
        tick would carry (it becomes the start timestamp of a new event). Empty when the tick
        is audio."""
        if not self._ticks:
            if self._gap_ticks:
                self._gap_ticks -= 1
                return []
            if not self._queue:
                return []
            digit, duration = self._queue.popleft()
            self._ticks.extend(
                _event_ticks(
                    digit, timestamp, self.clock_rate, duration, self.ptime_ms, self.volume, 3
                )
            )
        packets = self._ticks.popleft()
        if not self._ticks:
            self._gap_ticks = -(-self.gap_ms // self.ptime_ms)
        return packets

    def abort(self) -> None:
        """Drop everything, the event in progress included (the stream stops: hold)."""
        self._queue.clear()
        self._ticks.clear()
        self._gap_ticks = 0

    def clear(self) -> None:
        """Drop queued digits (an event already started is finished: never leave it hanging)."""
        self._queue.clear()
