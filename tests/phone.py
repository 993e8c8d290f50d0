"""The media half of a test phone: RTP over loopback UDP with FFmpeg's codecs (through PyAV),
independent of media/'s own codecs, so a codec bug in pygasi cannot cancel itself out.

SIPp (or another real SIP peer) does the signalling and puts this phone's port in its SDP; the
phone sends a tone every 20 ms to pygasi's RTP port and decodes everything it receives, for
tone checks (`heard`).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import struct
from collections import deque
from dataclasses import dataclass

import av
import numpy as np

from media.tones import MixtureAnalysis, ToneGenerator, analyse_mixture


@dataclass(frozen=True)
class PhoneCodec:
    name: str  # as in SDP rtpmap
    payload_type: int
    ffmpeg: str
    sample_rate: int  # of the audio
    clock_rate: int  # of the RTP timestamps (G.722: 8000 for 16 kHz audio, RFC 3551 §4.5.2)
    channels: int = 1

    @property
    def rtpmap(self) -> str:
        suffix = "/2" if self.name == "opus" else ""
        return f"{self.payload_type} {self.name}/{48000 if self.name == 'opus' else 8000}{suffix}"

    @property
    def frame_samples(self) -> int:
        return self.sample_rate // 50

    @property
    def frame_ticks(self) -> int:
        return self.clock_rate // 50


DTMF_PT = 101  # telephone-event/8000 in the scenarios' SDP
EVENT_DIGITS = "0123456789*#ABCD"  # RFC 4733 §3.2 event codes 0-15

CODECS = {
    "PCMU": PhoneCodec("PCMU", 0, "pcm_mulaw", 8000, 8000),
    "PCMA": PhoneCodec("PCMA", 8, "pcm_alaw", 8000, 8000),
    "G722": PhoneCodec("G722", 9, "g722", 16000, 8000),
    "opus": PhoneCodec("opus", 111, "libopus", 48000, 48000),
}


def _context(codec: PhoneCodec, mode: str) -> av.AudioCodecContext:
    context = av.AudioCodecContext.create(codec.ffmpeg, "w" if mode == "w" else "r")
    assert isinstance(context, av.AudioCodecContext)
    context.sample_rate = codec.sample_rate
    context.layout = "mono"
    context.format = "s16"
    if codec.name == "opus" and mode == "w":
        context.bit_rate = 32000
    return context


class RtpPhone(asyncio.DatagramProtocol):
    """``await phone.open()``, then ``phone.start(remote)`` (or ``latch=True``: the first
    packet's source); ``phone.heard(...)``."""

    def __init__(
        self, codec: str, tone_hz: float | None, host: str = "127.0.0.1", *, latch: bool = False
    ) -> None:
        self.codec = CODECS[codec]
        self.tone_hz = tone_hz
        self.host = host
        self.latch = latch  # start sending to where the first packet came from
        self.port = 0
        self.ssrc = 1 + secrets.randbelow(0xFFFFFFFE)
        self.transport: asyncio.DatagramTransport | None = None
        self.remote: tuple[str, int] | None = None
        self.received_from: set[tuple[str, int]] = set()
        self.payload_types: set[int] = set()
        self.events: list[tuple[int, bytes]] = []  # RFC 4733 (timestamp, payload) received
        # Per 20 ms tick: a telephone-event to send (code, duration, end) or None for audio.
        self._dtmf: deque[tuple[int, int, bool] | None] = deque()
        self.frames: list[np.ndarray] = []  # decoded audio, at the codec's sample rate
        self.packets = 0
        self.sent = 0
        self.muted = False  # send silence instead of the tone
        self._encoder = _context(self.codec, "w")
        self._decoders: dict[int, av.AudioCodecContext] = {}  # one per SSRC received
        self.ssrc_frames: dict[int, list[np.ndarray]] = {}  # decoded audio per SSRC
        self._task: asyncio.Task[None] | None = None
        self._generator = (
            ToneGenerator(tone_hz, sample_rate=self.codec.sample_rate) if tone_hz else None
        )
        self.telephone_event_pt: int | None = None

    async def open(self) -> int:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=(self.host, 0))
        self.transport = transport
        self.port = int(transport.get_extra_info("sockname")[1])
        return self.port

    def start(self, remote: tuple[str, int]) -> None:
        self.remote = remote
        if self._task is None:
            self._task = asyncio.ensure_future(self._send_loop())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.transport is not None:
            self.transport.close()

    # -- sending ---------------------------------------------------------------------------------

    async def _send_loop(self) -> None:
        loop = asyncio.get_running_loop()
        codec = self.codec
        seq, timestamp = secrets.randbelow(0x10000), secrets.randbelow(1 << 32)
        deadline = loop.time()
        first = True
        event_ts: int | None = None
        while True:
            pcm = self._next_pcm()
            event = self._dtmf.popleft() if self._dtmf else None
            if event is not None:
                # RFC 4733 §2.5: the event replaces this tick's audio; all its packets carry
                # the event's start timestamp, the first one the marker, the end is sent 3x.
                code, duration, end = event
                start = event_ts is None
                event_ts = timestamp if event_ts is None else event_ts
                payload = struct.pack("!BBH", code, (0x80 if end else 0) | 10, duration)
                for copy in range(3 if end else 1):
                    self._send(DTMF_PT, start and copy == 0, seq, event_ts, payload)
                    seq = (seq + 1) & 0xFFFF
                if end:
                    event_ts = None
            else:
                frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
                frame.sample_rate = codec.sample_rate
                for packet in self._encoder.encode(frame):
                    self._send(codec.payload_type, first, seq, timestamp, bytes(packet))
                    first = False
                    seq = (seq + 1) & 0xFFFF
            timestamp = (timestamp + codec.frame_ticks) & 0xFFFFFFFF
            deadline += 0.02
            await asyncio.sleep(max(0.0, deadline - loop.time()))

    def _send(self, payload_type: int, marker: bool, seq: int, timestamp: int, data: bytes) -> None:
        header = struct.pack(
            "!BBHII", 0x80, (0x80 if marker else 0) | payload_type, seq, timestamp, self.ssrc
        )
        if self.transport is not None and self.remote is not None:
            self.transport.sendto(header + data, self.remote)
            self.sent += 1

    def send_dtmf(self, digits: str, ticks: int = 5) -> None:
        """RFC 4733 events of ``ticks`` times 20 ms each, 60 ms of audio between digits."""
        step = self.codec.frame_ticks
        for digit in digits:
            code = EVENT_DIGITS.index(digit.upper())
            self._dtmf.extend((code, n * step, False) for n in range(1, ticks))
            self._dtmf.append((code, ticks * step, True))
            self._dtmf.extend([None, None, None])

    def received_digits(self) -> str:
        """The digits of the RFC 4733 events received (one per event timestamp)."""
        digits: dict[int, str] = {}
        for timestamp, payload in self.events:
            if len(payload) >= 4 and payload[0] < len(EVENT_DIGITS):
                digits.setdefault(timestamp, EVENT_DIGITS[payload[0]])
        return "".join(digits.values())

    def _next_pcm(self) -> np.ndarray:
        samples = self.codec.frame_samples
        if self._generator is None or self.muted:
            if self._generator is not None:
                self._generator.next(samples)  # keep the phase running
            return np.zeros(samples, dtype=np.int16)
        return self._generator.next(samples)

    # -- receiving -------------------------------------------------------------------------------

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if len(data) < 12 or data[0] >> 6 != 2:
            return
        payload_type = data[1] & 0x7F
        if 72 <= payload_type <= 76:
            return  # RTCP (RFC 5761 §4)
        count = data[0] & 0x0F
        offset = 12 + 4 * count
        if data[0] & 0x10 and len(data) >= offset + 4:  # header extension
            words = int.from_bytes(data[offset + 2 : offset + 4], "big")
            offset += 4 + 4 * words
        payload = data[offset:]
        if data[0] & 0x20 and payload:
            payload = payload[: -payload[-1]]
        source = (str(addr[0]), int(addr[1]))
        self.received_from.add(source)
        if self.latch and self.remote is None:
            self.start(source)  # symmetric RTP: answer where the gateway sends from
        self.payload_types.add(payload_type)
        self.packets += 1
        if payload_type == self.telephone_event_pt:
            self.events.append((int.from_bytes(data[4:8], "big"), payload))
            return
        if payload_type != self.codec.payload_type or not payload:
            return
        ssrc = int.from_bytes(data[8:12], "big")
        decoder = self._decoders.get(ssrc)
        if decoder is None:
            decoder = self._decoders[ssrc] = _context(self.codec, "r")
            self.ssrc_frames[ssrc] = []
        try:
            for frame in decoder.decode(av.Packet(payload)):
                pcm = frame.to_ndarray().reshape(-1).astype(np.int16)
                self.frames.append(pcm)
                self.ssrc_frames[ssrc].append(pcm)
        except av.FFmpegError:
            pass  # a corrupt frame counts as not heard

    def mark(self) -> int:
        return len(self.frames)

    def audio(self, since: int = 0) -> np.ndarray:
        if since >= len(self.frames):
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(self.frames[since:])

    def heard(self, candidates: list[float], since: int = 0) -> MixtureAnalysis:
        return analyse_mixture(self.audio(since), self.codec.sample_rate, candidates)

    def heard_per_ssrc(
        self, candidates: list[float], skip: int = 25
    ) -> dict[int, frozenset[float]]:
        """Translator mode: what each received SSRC carries, decoded on its own (a trunk that
        mixes does the same)."""
        return {
            ssrc: analyse_mixture(
                np.concatenate(frames[skip:]), self.codec.sample_rate, candidates
            ).present
            for ssrc, frames in self.ssrc_frames.items()
            if len(frames) > skip
        }


__all__ = ["CODECS", "PhoneCodec", "RtpPhone"]
