"""Reception/transmission statistics on crafted sequences (RFC 3550 A.1, A.3, A.8, §6.4.1)."""

from __future__ import annotations

import pytest

from media.rtcp import ReportBlock, ntp_from_unix, ntp_middle32
from media.stats import ReceiverStats, SenderStats, SeqStatus

S = SeqStatus


def feed(stats: ReceiverStats, seqs: list[int]) -> list[SeqStatus]:
    return [stats.update(seq, 160 * i, 0.02 * i) for i, seq in enumerate(seqs)]


def test_wrap_loss_duplicate_and_reordering() -> None:
    stats = ReceiverStats(ssrc=9, clock_rate=8000)
    statuses = feed(stats, [65533, 65534, 65535, 0, 1, 4, 4, 2, 6])
    assert statuses == [
        S.PROBATION,  # A.1: a new source needs MIN_SEQUENTIAL packets in a row
        S.ACCEPTED,
        S.ACCEPTED,
        S.ACCEPTED,  # wrapped
        S.ACCEPTED,
        S.ACCEPTED,  # 2 and 3 missing
        S.DUPLICATE,
        S.REORDERED,  # 2 arrives late
        S.ACCEPTED,  # 5 missing
    ]
    assert stats.cycles == 1 << 16
    assert stats.extended_max == 65536 + 6
    assert stats.base_seq == 65534
    assert stats.expected == 9  # 65534, 65535, 0..6
    assert stats.received == 8  # duplicates count as received (§6.4.1)
    assert stats.duplicated == 1
    assert stats.cumulative_lost == 1  # 3 and 5 lost, minus one duplicate
    block = stats.report_block(now=1.0)
    assert block.ssrc == 9
    assert block.highest_sequence == 65542
    assert block.cumulative_lost == 1
    assert block.fraction_lost == (1 << 8) // 9  # A.3: lost_interval * 256 / expected
    assert block.lsr == 0 and block.dlsr == 0  # no SR received from the source yet


def test_fraction_lost_is_per_interval() -> None:
    stats = ReceiverStats(1, 8000, min_sequential=1)
    feed(stats, [10, 11, 12, 13])
    assert stats.report_block(0.0).fraction_lost == 0
    for i, seq in enumerate([14, 17, 18, 19]):  # 15 and 16 lost: 2 of 6 expected
        stats.update(seq, 0, 1.0 + 0.02 * i)
    block = stats.report_block(1.0)
    assert block.fraction_lost == (2 << 8) // 6
    assert block.cumulative_lost == 2
    stats.update(20, 0, 2.0)
    assert stats.report_block(2.0).fraction_lost == 0


def test_duplicate_of_the_highest_and_old_duplicates() -> None:
    stats = ReceiverStats(1, 8000, min_sequential=1)
    assert feed(stats, [100, 100, 101, 99, 100]) == [
        S.ACCEPTED,
        S.DUPLICATE,
        S.ACCEPTED,
        S.REORDERED,  # 99 was never seen: before the base, still usable
        S.DUPLICATE,
    ]
    assert stats.duplicated == 2


def test_large_jump_is_bad_until_confirmed_then_restarts() -> None:
    stats = ReceiverStats(1, 8000, min_sequential=1)
    feed(stats, [100, 101, 102])
    assert stats.update(5000, 0, 1.0) is S.BAD
    assert stats.update(5001, 0, 1.02) is S.ACCEPTED  # two in a row: the source restarted
    assert stats.base_seq == 5001
    assert stats.received == 1
    assert stats.bad == 1
    # A single stray far packet does not restart anything.
    assert stats.update(30000, 0, 1.04) is S.BAD
    assert stats.update(5002, 0, 1.06) is S.ACCEPTED
    assert stats.expected == 2


def test_probation_resets_on_out_of_order_start() -> None:
    stats = ReceiverStats(1, 8000, min_sequential=3)
    assert feed(stats, [10, 50, 51, 52]) == [S.PROBATION, S.PROBATION, S.PROBATION, S.ACCEPTED]
    assert stats.base_seq == 52
    assert stats.expected == 1


def test_interarrival_jitter_formula() -> None:
    # §6.4.1: D = (Rj - Ri) - (Sj - Si) in timestamp units; J += (|D| - J) / 16.
    stats = ReceiverStats(1, 8000, min_sequential=1)
    stats.update(0, 0, 0.000)
    stats.update(1, 160, 0.020)  # D = 160 - 160 = 0
    assert stats.jitter == 0
    stats.update(2, 320, 0.045)  # D = 200 - 160 = 40 -> J = 2.5
    assert stats.jitter_ms == pytest.approx(2.5 / 8)
    stats.update(3, 480, 0.060)  # D = 120 - 160 = -40 -> J = 2.5 + 37.5 / 16
    assert stats.jitter_ms == pytest.approx((2.5 + 37.5 / 16) / 8)
    assert stats.jitter == 4  # the report block carries the integer part
    assert stats.report_block(1.0).jitter == 4


def test_jitter_survives_timestamp_wrap_and_skips_events() -> None:
    stats = ReceiverStats(1, 8000, min_sequential=1)
    stats.update(0, 0xFFFFFF60, 0.0)
    stats.update(1, 0x00000000, 0.020)  # +160 across the 32-bit wrap: no jitter
    assert stats.jitter == 0
    # An RFC 4733 packet reuses its start timestamp: kept out of the estimate.
    stats.update(2, 0x00000000, 0.040, jitter=False)
    assert stats.jitter == 0
    assert stats.received == 3


def test_late_counter_and_octets() -> None:
    stats = ReceiverStats(1, 8000, min_sequential=1)
    stats.update(0, 0, 0.0, size=160)
    stats.update(0, 0, 0.0, size=160)  # duplicate: no octets
    stats.count_late()
    assert (stats.octets, stats.late) == (160, 1)


def test_lsr_dlsr_in_report_block() -> None:
    stats = ReceiverStats(1, 8000, min_sequential=1)
    stats.update(0, 0, 0.0)
    ntp = ntp_from_unix(1_700_000_000.25)
    stats.on_sender_report(ntp, now=3.0)
    block = stats.report_block(now=4.5)
    assert block.lsr == ntp_middle32(ntp)
    assert block.dlsr == int(1.5 * 65536)


def test_sender_report_counts_and_extrapolated_timestamp() -> None:
    sender = SenderStats(ssrc=0xABC, clock_rate=8000)
    for i in range(50):
        sender.on_sent(160, 1000 + 160 * i, 5.0 + 0.02 * i)
    sr = sender.sender_report(now=5.98 + 0.5, ntp_timestamp=ntp_from_unix(10.0))
    assert (sr.ssrc, sr.packet_count, sr.octet_count) == (0xABC, 50, 8000)
    # Last packet ts 1000 + 160 * 49 sent at 5.98; the SR is 0.5 s later.
    assert sr.rtp_timestamp == 1000 + 160 * 49 + 4000


def test_round_trip_time_from_lsr_dlsr() -> None:
    sender = SenderStats(ssrc=0xABC, clock_rate=8000)
    sr_ntp = ntp_from_unix(1_700_000_000.0)
    sender.sender_report(now=0.0, ntp_timestamp=sr_ntp)
    # The peer held our SR for 0.5 s; its report reaches us 0.58 s after we sent: RTT 80 ms.
    block = ReportBlock(0xABC, 0, 0, 0, 0, ntp_middle32(sr_ntp), int(0.5 * 65536))
    rtt = sender.on_report_block(block, ntp_from_unix(1_700_000_000.58))
    assert rtt == pytest.approx(0.08, abs=2 / 65536)
    assert sender.rtt == rtt
    # Not about us, no SR echoed, or an SR we never sent: no RTT.
    assert sender.on_report_block(ReportBlock(1, 0, 0, 0, 0, block.lsr, 0), sr_ntp) is None
    assert sender.on_report_block(ReportBlock(0xABC, 0, 0, 0, 0, 0, 0), sr_ntp) is None
    bogus = ReportBlock(0xABC, 0, 0, 0, 0, block.lsr ^ 0xFFFF, 0)
    assert sender.on_report_block(bogus, sr_ntp) is None
    # A DLSR larger than the elapsed time would give a negative RTT: rejected.
    late = ReportBlock(0xABC, 0, 0, 0, 0, block.lsr, 2 * 65536)
    assert sender.on_report_block(late, ntp_from_unix(1_700_000_001.0)) is None
