"""Translator mode: PT/extension remapping, one SSRC per talker, continuity across pauses."""

from __future__ import annotations

import random

from media.rtp import AudioLevel, RtpPacket, encode_audio_level
from media.translator import MeetingToPhoneTranslator, PhoneToMeetingTranslator

BRIDGE_OPUS = 111
SIP_OPUS = 107


def opus(
    ssrc: int, seq: int, ts: int, exts: dict[int, bytes] | None = None, marker: bool = False
) -> RtpPacket:
    return RtpPacket(BRIDGE_OPUS, seq, ts, ssrc, b"opus%d" % seq, marker, extensions=exts)


def out_of(t: MeetingToPhoneTranslator, source: str, pkt: RtpPacket, now: float) -> RtpPacket:
    out = t.translate(source, pkt, now)
    assert out is not None
    return out


def test_payload_type_and_extension_ids_remapped() -> None:
    t = MeetingToPhoneTranslator(SIP_OPUS, extension_map={1: 3}, rand=random.Random(1))
    level = encode_audio_level(20, voice=True)
    pkt = opus(0xAAAA, 10, 0, {1: level, 5: b"\x00\x01"}, marker=True)  # 5: transport-cc
    out = out_of(t, "alice", pkt, 0.0)
    assert out.payload_type == SIP_OPUS
    assert out.extensions == {3: level}  # unmapped ids are dropped
    assert out.get_audio_level(3) == AudioLevel(True, 20)
    assert out.payload == pkt.payload
    assert out.marker
    wire = out.serialize()
    assert wire[1] == 0x80 | SIP_OPUS
    assert wire[12:20] == bytes.fromhex("bede0001 30940000")
    stripped = MeetingToPhoneTranslator(SIP_OPUS).translate("alice", pkt, 0.0)
    assert stripped is not None and stripped.extensions is None
    assert not stripped.serialize()[0] & 0x10  # no X bit at all


def test_one_output_ssrc_per_talker() -> None:
    t = MeetingToPhoneTranslator(SIP_OPUS, rand=random.Random(2))
    outs: dict[str, list[RtpPacket]] = {"alice": [], "bob": []}
    for i in range(5):  # both talk at once, interleaved
        outs["alice"].append(out_of(t, "alice", opus(0xA, 100 + i, 960 * i), 0.02 * i))
        outs["bob"].append(out_of(t, "bob", opus(0xB, 7000 + i, 5000 + 960 * i), 0.02 * i))
    alice_ssrcs = {p.ssrc for p in outs["alice"]}
    bob_ssrcs = {p.ssrc for p in outs["bob"]}
    assert len(alice_ssrcs) == 1 and len(bob_ssrcs) == 1
    assert alice_ssrcs != bob_ssrcs
    assert t.output_ssrcs == {"alice": alice_ssrcs.pop(), "bob": bob_ssrcs.pop()}
    for packets in outs.values():
        first = packets[0]
        assert [(p.sequence - first.sequence) & 0xFFFF for p in packets] == [0, 1, 2, 3, 4]
        assert [(p.timestamp - first.timestamp) & 0xFFFFFFFF for p in packets] == [
            0,
            960,
            1920,
            2880,
            3840,
        ]
    assert t.remove_source("bob") is not None
    assert "bob" not in t.output_ssrcs
    assert t.remove_source("bob") is None


def test_loss_stays_visible_duplicates_dropped() -> None:
    t = MeetingToPhoneTranslator(SIP_OPUS, rand=random.Random(3))
    a = out_of(t, "s", opus(1, 100, 0), 0.00)
    b = out_of(t, "s", opus(1, 101, 960), 0.02)
    assert t.translate("s", opus(1, 101, 960), 0.021) is None  # duplicate
    c = out_of(t, "s", opus(1, 103, 2880), 0.06)  # 102 lost in the network
    assert [(p.sequence - a.sequence) & 0xFFFF for p in (a, b, c)] == [0, 1, 3]
    assert not c.marker
    late = out_of(t, "s", opus(1, 102, 1920), 0.065)  # reordered: fills the gap
    assert (late.sequence - a.sequence) & 0xFFFF == 2


def test_pause_closes_the_sequence_gap_and_keeps_the_media_clock() -> None:
    t = MeetingToPhoneTranslator(SIP_OPUS, rand=random.Random(4))
    first = out_of(t, "s", opus(1, 100, 0), 0.0)
    out_of(t, "s", opus(1, 101, 960), 0.02)
    # The bridge stopped forwarding for 2 s (silence); its sequence numbers moved on by 100.
    resumed = out_of(t, "s", opus(1, 201, 960 * 101), 2.02)
    assert (resumed.sequence - first.sequence) & 0xFFFF == 2  # no fake loss of 99 packets
    assert (resumed.timestamp - first.timestamp) & 0xFFFFFFFF == 960 * 101
    assert resumed.marker  # a new talk spurt
    nxt = out_of(t, "s", opus(1, 202, 960 * 102), 2.04)
    assert (nxt.sequence - first.sequence) & 0xFFFF == 3 and not nxt.marker


def test_source_ssrc_change_keeps_the_output_stream_continuous() -> None:
    t = MeetingToPhoneTranslator(SIP_OPUS, rand=random.Random(5))
    first = out_of(t, "alice", opus(0x1111, 500, 12345), 0.0)
    last = out_of(t, "alice", opus(0x1111, 501, 12345 + 960), 0.02)
    # Alice rejoined (or the bridge re-assigned her SSRC): new random sequence and timestamp.
    new = out_of(t, "alice", opus(0x2222, 40000, 999_999), 0.52)
    assert new.ssrc == first.ssrc
    assert (new.sequence - last.sequence) & 0xFFFF == 1
    assert (new.timestamp - last.timestamp) & 0xFFFFFFFF == round(0.5 * 48000)
    assert new.marker
    after = out_of(t, "alice", opus(0x2222, 40001, 999_999 + 960), 0.54)
    assert (after.sequence - new.sequence) & 0xFFFF == 1
    assert (after.timestamp - new.timestamp) & 0xFFFFFFFF == 960
    # A straggler of the old SSRC must not start yet another stream.
    assert t.translate("alice", opus(0x1111, 502, 12345 + 1920), 0.55) is None


def test_big_sequence_jump_without_pause_is_rebased() -> None:
    t = MeetingToPhoneTranslator(SIP_OPUS, rand=random.Random(6))
    a = out_of(t, "s", opus(1, 10, 0), 0.0)
    b = out_of(t, "s", opus(1, 30000, 960), 0.02)
    assert (b.sequence - a.sequence) & 0xFFFF == 1
    assert (b.timestamp - a.timestamp) & 0xFFFFFFFF == 960  # at least one frame later
    assert b.marker


def test_phone_to_meeting_uses_declared_ssrc_pt_and_phone_level() -> None:
    t = PhoneToMeetingTranslator(
        ssrc=0x5EED, payload_type=BRIDGE_OPUS, audio_level_id=1, phone_audio_level_id=4
    )
    phone = RtpPacket(SIP_OPUS, 7, 960, 0x9999, b"voice", extensions={4: b"\x8a", 9: b"zz"})
    out = t.translate(phone, 0.0)
    assert out is not None
    assert (out.ssrc, out.payload_type, out.payload) == (0x5EED, BRIDGE_OPUS, b"voice")
    assert out.extensions == {1: b"\x8a"}  # the phone's own level, at the bridge's id
    assert out.get_audio_level(1) == AudioLevel(True, 10)


def test_phone_to_meeting_level_callback_and_no_level() -> None:
    seen: list[int] = []

    def level(pkt: RtpPacket) -> AudioLevel:
        seen.append(pkt.sequence)
        return AudioLevel(False, 90)

    t = PhoneToMeetingTranslator(0x5EED, BRIDGE_OPUS, 1, phone_audio_level_id=4, level_source=level)
    out = t.translate(RtpPacket(SIP_OPUS, 1, 0, 3, b"v"), 0.0)  # phone sends no level
    assert out is not None and out.get_audio_level(1) == AudioLevel(False, 90)
    assert seen == [1]
    bare = PhoneToMeetingTranslator(0x5EED, BRIDGE_OPUS, audio_level_id=1)
    plain = bare.translate(RtpPacket(SIP_OPUS, 1, 0, 3, b"v"), 0.0)
    assert plain is not None and plain.extensions is None
    # A malformed (empty) level element from the phone is ignored, not fatal.
    broken = PhoneToMeetingTranslator(0x5EED, BRIDGE_OPUS, 1, phone_audio_level_id=4)
    out = broken.translate(RtpPacket(SIP_OPUS, 1, 0, 3, b"v", extensions={4: b""}), 0.0)
    assert out is not None and out.extensions is None


def test_phone_to_meeting_continuity_across_phone_ssrc_change() -> None:
    t = PhoneToMeetingTranslator(0x5EED, BRIDGE_OPUS, None, rand=random.Random(7))
    outs = [t.translate(RtpPacket(SIP_OPUS, 100 + i, 960 * i, 1, b"v"), 0.02 * i) for i in range(3)]
    # The phone was transferred: new SSRC, new random sequence and timestamp, 40 ms later.
    outs.append(t.translate(RtpPacket(SIP_OPUS, 5, 777, 2, b"v"), 0.08))
    outs.append(t.translate(RtpPacket(SIP_OPUS, 6, 777 + 960, 2, b"v"), 0.10))
    assert all(o is not None for o in outs)
    pkts = [o for o in outs if o is not None]
    assert {p.ssrc for p in pkts} == {0x5EED}
    assert [(p.sequence - pkts[0].sequence) & 0xFFFF for p in pkts] == [0, 1, 2, 3, 4]
    assert [(p.timestamp - pkts[0].timestamp) & 0xFFFFFFFF for p in pkts] == [
        0,
        960,
        1920,
        1920 + round(0.04 * 48000),
        1920 + round(0.04 * 48000) + 960,
    ]
    assert [p.marker for p in pkts] == [True, False, False, True, False]  # stream starts
