"""RFC 4733 telephone-events: payload bytes, sender packet trains, exactly-once reception."""

from __future__ import annotations

import pytest

from media.dtmf import (
    FLASH,
    DtmfReceiver,
    DtmfSender,
    EventPacket,
    TelephoneEvent,
    digit_to_event,
    event_packets,
    event_to_digit,
)
from media.errors import MediaParseError


def test_payload_bytes() -> None:
    ev = TelephoneEvent(event=1, end=True, volume=10, duration=800)
    assert ev.serialize() == bytes.fromhex("018a0320")
    assert TelephoneEvent.parse(bytes.fromhex("018a0320")) == ev
    # The reserved R bit is ignored on receive.
    assert TelephoneEvent.parse(bytes.fromhex("0bca00a0")) == TelephoneEvent(11, True, 10, 160)
    with pytest.raises(MediaParseError):
        TelephoneEvent.parse(b"\x01\x8a\x03")


def test_digit_event_codes() -> None:
    assert [digit_to_event(d) for d in "0123456789*#ABCD"] == list(range(16))
    assert digit_to_event("a") == 12
    assert digit_to_event(FLASH) == 16
    assert event_to_digit(11) == "#"
    assert event_to_digit(16) == FLASH
    assert event_to_digit(32) is None
    with pytest.raises(ValueError):
        digit_to_event("E")


@pytest.mark.parametrize(("rate", "step"), [(8000, 160), (48000, 960)])
def test_sender_packet_train(rate: int, step: int) -> None:
    packets = event_packets("5", start_timestamp=1000, clock_rate=rate, duration_ms=100)
    events = [TelephoneEvent.parse(p.payload) for p in packets]
    assert [p.timestamp for p in packets] == [1000] * 7  # one event, one timestamp
    assert [p.marker for p in packets] == [True] + [False] * 6
    assert [e.event for e in events] == [5] * 7
    assert [e.duration for e in events] == [step, 2 * step, 3 * step, 4 * step] + [5 * step] * 3
    assert [e.end for e in events] == [False] * 4 + [True] * 3
    assert {e.volume for e in events} == {10}


def test_sender_single_packet_event() -> None:
    packets = event_packets("#", 7, 8000, duration_ms=20)
    assert [p.marker for p in packets] == [True, False, False]
    assert {TelephoneEvent.parse(p.payload) for p in packets} == {TelephoneEvent(11, True, 10, 160)}


def run_sender(sender: DtmfSender, step: int, ticks: int, ts0: int = 5000) -> list[EventPacket]:
    """Drive the sender from a 20 ms clock whose audio timestamp advances `step` per tick."""
    out: list[EventPacket] = []
    for i in range(ticks):
        out.extend(sender.tick((ts0 + i * step) & 0xFFFFFFFF))
    return out


@pytest.mark.parametrize(("rate", "step"), [(8000, 160), (48000, 960)])
def test_sender_queue_interleaves_with_audio_ticks(rate: int, step: int) -> None:
    sender = DtmfSender(rate, duration_ms=100, gap_ms=60)
    sender.queue("12")
    assert sender.busy and sender.pending == 2
    per_tick = [sender.tick(5000 + i * step) for i in range(16)]
    # Digit 1: 4 update ticks + 1 tick with the three end packets; 3 audio ticks of gap.
    assert [len(t) for t in per_tick] == [1, 1, 1, 1, 3, 0, 0, 0, 1, 1, 1, 1, 3, 0, 0, 0]
    assert {p.timestamp for p in per_tick[0] + per_tick[4]} == {5000}
    # Digit 2 starts at the audio timestamp of the tick it took over.
    assert {p.timestamp for p in per_tick[8] + per_tick[12]} == {5000 + 8 * step}
    assert not sender.busy and sender.pending == 0


def test_sender_validates_digits_up_front_and_abort() -> None:
    sender = DtmfSender(8000)
    with pytest.raises(ValueError):
        sender.queue("12X")
    assert sender.pending == 0  # nothing queued from a bad string
    sender.queue("9")
    sender.tick(0)
    sender.abort()
    assert not sender.busy and sender.tick(160) == []


def receive(receiver: DtmfReceiver, packets: list[EventPacket]) -> str:
    digits = []
    for p in packets:
        got = receiver.on_packet(p.timestamp, p.payload)
        if got is not None:
            digits.append(got.digit)
    return "".join(digits)


@pytest.mark.parametrize(("rate", "step"), [(8000, 160), (48000, 960)])
def test_digits_received_exactly_once(rate: int, step: int) -> None:
    sender = DtmfSender(rate)
    sender.queue("123#")
    packets = run_sender(sender, step, 40)
    receiver = DtmfReceiver(rate)
    assert receive(receiver, packets) == "123#"
    assert receiver.presses == 4


@pytest.mark.parametrize(("rate", "step"), [(8000, 160), (48000, 960)])
def test_first_packet_lost_and_end_duplicated(rate: int, step: int) -> None:
    sender = DtmfSender(rate)
    sender.queue("123#")
    packets = run_sender(sender, step, 40)
    damaged: list[EventPacket] = []
    for p in packets:
        if p.marker:
            continue  # the first packet of every event is lost
        damaged.append(p)
        if TelephoneEvent.parse(p.payload).end:
            damaged.extend([p, p])  # and the network duplicates the end packets
    receiver = DtmfReceiver(rate)
    assert receive(receiver, damaged) == "123#"


def test_only_end_packets_still_report_once() -> None:
    packets = event_packets("7", 320, 8000, duration_ms=100)
    ends = [p for p in packets if TelephoneEvent.parse(p.payload).end]
    receiver = DtmfReceiver(8000)
    digit = receiver.on_packet(ends[0].timestamp, ends[0].payload)
    assert digit is not None
    assert (digit.digit, digit.ended, digit.duration, digit.timestamp) == ("7", True, 800, 320)
    assert receive(receiver, ends[1:]) == ""
    assert not receiver.active


def test_same_digit_twice_is_two_presses() -> None:
    sender = DtmfSender(8000)
    sender.queue("55")
    assert receive(DtmfReceiver(8000), run_sender(sender, 160, 30)) == "55"


def test_late_retransmission_of_an_older_event_is_ignored() -> None:
    first = event_packets("1", 1000, 8000)
    second = event_packets("2", 3000, 8000)
    receiver = DtmfReceiver(8000)
    assert receive(receiver, [*first, *second[:2], first[-1], *second[2:]]) == "12"


def test_press_state_and_reset() -> None:
    packets = event_packets("4", 0, 8000)
    receiver = DtmfReceiver(8000)
    receive(receiver, packets[:2])
    assert receiver.active
    receive(receiver, packets[2:])
    assert not receiver.active
    receiver.reset()  # new stream: the same timestamp is a new press again
    assert receive(receiver, packets) == "4"


def test_long_event_segments_are_one_press() -> None:
    # §2.5.2.3: past 0xFFFF the sender starts a new segment at timestamp + duration.
    receiver = DtmfReceiver(8000)
    long_update = TelephoneEvent(0, False, 10, 0xFFFF).serialize()
    assert receiver.on_packet(100, TelephoneEvent(0, False, 10, 160).serialize()) is not None
    assert receiver.on_packet(100, long_update) is None
    assert receiver.on_packet(100 + 0xFFFF, TelephoneEvent(0, False, 10, 160).serialize()) is None
    assert receiver.on_packet(100 + 0xFFFF, TelephoneEvent(0, True, 10, 800).serialize()) is None
    assert receiver.presses == 1


def test_non_digit_events_are_not_reported() -> None:
    receiver = DtmfReceiver(8000)
    assert receiver.on_packet(0, TelephoneEvent(32, False, 10, 160).serialize()) is None
    assert receiver.on_packet(160, TelephoneEvent(16, True, 10, 160).serialize()) is not None
