"""RTP reception and transmission statistics (RFC 3550 A.1, A.3, A.8 and §6.4.1).

Sans-IO: arrival times are plain floats (seconds, any monotonic clock) passed in.
"""

from __future__ import annotations

import enum
from collections import deque

from media.rtcp import ReportBlock, SenderReport, ntp_middle32
from media.rtp import ts_delta

RTP_SEQ_MOD = 1 << 16
MAX_DROPOUT = 3000  # A.1: a forward jump up to this is loss, not a restart
MAX_MISORDER = 100  # A.1: a backward step up to this is reordering / duplication
MIN_SEQUENTIAL = 2  # A.1: packets in sequence before a new source is valid
_WINDOW_MASK = (1 << 128) - 1  # seen-bitmap covering MAX_MISORDER packets behind the maximum


class SeqStatus(enum.Enum):
    """What `ReceiverStats.update` made of one packet."""

    ACCEPTED = "accepted"  # in order or after a gap (loss)
    REORDERED = "reordered"  # older than the highest seen, first copy: still usable
    DUPLICATE = "duplicate"  # this sequence number was already received
    PROBATION = "probation"  # new source not yet validated (A.1); usable, not counted
    BAD = "bad"  # a large jump: dropped until the next packet confirms a restart (A.1)

    @property
    def usable(self) -> bool:
        return self in (SeqStatus.ACCEPTED, SeqStatus.REORDERED, SeqStatus.PROBATION)


class ReceiverStats:
    """Per received stream (one SSRC) counters, feeding RTCP report blocks."""

    def __init__(self, ssrc: int, clock_rate: int, min_sequential: int = MIN_SEQUENTIAL) -> None:
        self.ssrc = ssrc
        self.clock_rate = clock_rate
        self._min_sequential = min_sequential
        self._started = False
        self.probation = min_sequential
        self.max_seq = 0
        self.cycles = 0
        self.base_seq = 0
        self.bad_seq = RTP_SEQ_MOD + 1
        self.received = 0
        self.received_prior = 0
        self.expected_prior = 0
        self.duplicated = 0
        self.late = 0
        self.bad = 0
        self.octets = 0
        self.fraction_lost = 0  # of the last report interval, /256
        self._seen = 0  # bit k set: sequence max_seq - k received
        self._jitter = 0.0
        self._last_arrival: float | None = None
        self._last_ts = 0
        self._lsr = 0
        self._lsr_time = 0.0

    # -- A.1 sequence validation --

    def _init_seq(self, seq: int) -> None:
        self.base_seq = seq
        self.max_seq = seq
        self.bad_seq = RTP_SEQ_MOD + 1
        self.cycles = 0
        self.received = 0
        self.received_prior = 0
        self.expected_prior = 0
        self._seen = 1

    def update(
        self, seq: int, timestamp: int, arrival: float, size: int = 0, jitter: bool = True
    ) -> SeqStatus:
        """Account one packet. `arrival` in seconds; `jitter=False` keeps packets whose
        timestamp is not a sampling instant (RFC 4733 events reuse their start timestamp) out
        of the A.8 estimate."""
        max_seq = self.max_seq
        udelta = (seq - max_seq) & 0xFFFF
        if 0 < udelta < MAX_DROPOUT and not self.probation and self._started:
            # The next packet (or one after a loss) of a validated source: _update_seq()'s
            # ACCEPTED branch and _update_jitter(), inline, as this runs for every packet.
            if seq < max_seq:
                self.cycles += RTP_SEQ_MOD
            self.max_seq = seq
            self._seen = ((self._seen << udelta) | 1) & _WINDOW_MASK
            self.received += 1
            self.octets += size
            if jitter:
                last = self._last_arrival
                if last is not None:
                    dts = (timestamp - self._last_ts) & 0xFFFFFFFF
                    if dts & 0x80000000:
                        dts -= 0x100000000
                    d = (arrival - last) * self.clock_rate - dts
                    self._jitter += (abs(d) - self._jitter) / 16.0
                self._last_arrival = arrival
                self._last_ts = timestamp
            return SeqStatus.ACCEPTED
        if not self._started:
            self._started = True
            self._init_seq(seq)
            self.max_seq = (seq - 1) & 0xFFFF
            self._seen = 0
            self.probation = self._min_sequential
        status = self._update_seq(seq)
        if status is SeqStatus.BAD:
            self.bad += 1
            return status
        if status is SeqStatus.DUPLICATE:
            self.duplicated += 1
            return status
        self.octets += size
        if jitter:
            self._update_jitter(timestamp, arrival)
        return status

    def _update_seq(self, seq: int) -> SeqStatus:
        udelta = (seq - self.max_seq) & 0xFFFF
        if self.probation:
            if seq == (self.max_seq + 1) & 0xFFFF:
                self.probation -= 1
                self.max_seq = seq
                if self.probation == 0:
                    self._init_seq(seq)
                    self.received += 1
                    return SeqStatus.ACCEPTED
            else:
                self.probation = self._min_sequential - 1
                self.max_seq = seq
            return SeqStatus.PROBATION
        if udelta == 0:
            self.received += 1  # §6.4.1: duplicates count as received
            return SeqStatus.DUPLICATE
        if udelta < MAX_DROPOUT:
            if seq < self.max_seq:
                self.cycles += RTP_SEQ_MOD
            self.max_seq = seq
            self._seen = ((self._seen << udelta) | 1) & _WINDOW_MASK
            self.received += 1
            return SeqStatus.ACCEPTED
        if udelta <= RTP_SEQ_MOD - MAX_MISORDER:
            if seq == self.bad_seq:
                # Two sequential packets after a big jump: the source restarted (A.1).
                self._init_seq(seq)
                self.received += 1
                return SeqStatus.ACCEPTED
            self.bad_seq = (seq + 1) & 0xFFFF
            return SeqStatus.BAD
        behind = RTP_SEQ_MOD - udelta
        self.received += 1
        bit = 1 << behind
        if self._seen & bit:
            return SeqStatus.DUPLICATE
        self._seen |= bit
        return SeqStatus.REORDERED

    def _update_jitter(self, timestamp: int, arrival: float) -> None:
        # A.8 / §6.4.1: J += (|D(i-1, i)| - J) / 16, D = (Rj - Ri) - (Sj - Si) in ts units.
        if self._last_arrival is not None:
            d = (arrival - self._last_arrival) * self.clock_rate - ts_delta(
                timestamp, self._last_ts
            )
            self._jitter += (abs(d) - self._jitter) / 16.0
        self._last_arrival = arrival
        self._last_ts = timestamp

    def count_late(self) -> None:
        """The jitter buffer saw a packet too late to play (it owns that decision)."""
        self.late += 1

    # -- A.3 derived values --

    @property
    def extended_max(self) -> int:
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        if not self._started or self.probation:
            return 0
        return self.extended_max - self.base_seq + 1

    @property
    def cumulative_lost(self) -> int:
        return self.expected - self.received

    @property
    def jitter(self) -> int:
        """Interarrival jitter in timestamp units (the report block value)."""
        return int(self._jitter)

    @property
    def jitter_ms(self) -> float:
        return self._jitter * 1000.0 / self.clock_rate

    def on_sender_report(self, ntp_timestamp: int, now: float) -> None:
        """Remember the source's SR for LSR/DLSR in our next report block (§6.4.1)."""
        self._lsr = ntp_middle32(ntp_timestamp)
        self._lsr_time = now

    def report_block(self, now: float) -> ReportBlock:
        """A report block for this source; starts a new fraction-lost interval (A.3)."""
        expected = self.expected
        expected_interval = expected - self.expected_prior
        self.expected_prior = expected
        received_interval = self.received - self.received_prior
        self.received_prior = self.received
        lost_interval = expected_interval - received_interval
        if expected_interval <= 0 or lost_interval <= 0:
            self.fraction_lost = 0
        else:
            self.fraction_lost = min(255, (lost_interval << 8) // expected_interval)
        dlsr = int((now - self._lsr_time) * 65536) if self._lsr else 0
        return ReportBlock(
            ssrc=self.ssrc,
            fraction_lost=self.fraction_lost,
            cumulative_lost=self.cumulative_lost,
            highest_sequence=self.extended_max & 0xFFFFFFFF,
            jitter=self.jitter,
            lsr=self._lsr,
            dlsr=max(0, dlsr),
        )


class SenderStats:
    """Our own stream: SR counters and round-trip time from the reports about it."""

    def __init__(self, ssrc: int, clock_rate: int) -> None:
        self.ssrc = ssrc
        self.clock_rate = clock_rate
        self.packets = 0
        self.octets = 0  # payload octets (§6.4.1)
        self.last_timestamp = 0
        self.last_send_time: float | None = None
        self.rtt: float | None = None
        self._sent_lsr: deque[int] = deque(maxlen=16)

    def on_sent(self, payload_size: int, timestamp: int, now: float) -> None:
        self.packets += 1
        self.octets += payload_size
        self.last_timestamp = timestamp
        self.last_send_time = now

    def sender_report(
        self, now: float, ntp_timestamp: int, reports: list[ReportBlock] | None = None
    ) -> SenderReport:
        """An SR for `now`. Its RTP timestamp is extrapolated from the last packet sent so it
        denotes the same instant as the NTP timestamp (§6.4.1)."""
        rtp_ts = self.last_timestamp
        if self.last_send_time is not None:
            rtp_ts += round((now - self.last_send_time) * self.clock_rate)
        self._sent_lsr.append(ntp_middle32(ntp_timestamp))
        return SenderReport(
            ssrc=self.ssrc,
            ntp_timestamp=ntp_timestamp,
            rtp_timestamp=rtp_ts & 0xFFFFFFFF,
            packet_count=self.packets,
            octet_count=self.octets,
            reports=reports or [],
        )

    def on_report_block(self, block: ReportBlock, ntp_now: int) -> float | None:
        """RTT = A - LSR - DLSR (§6.4.1), in seconds, from a block about our SSRC received
        at NTP time `ntp_now`. None when the block refers to no SR of ours."""
        if block.ssrc != self.ssrc or block.lsr == 0 or block.lsr not in self._sent_lsr:
            return None
        rtt = (ntp_middle32(ntp_now) - block.lsr - block.dlsr) & 0xFFFFFFFF
        if rtt & 0x80000000:
            return None  # negative: clocks or DLSR inconsistent
        self.rtt = rtt / 65536.0
        return self.rtt
