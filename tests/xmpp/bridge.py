"""A videobridge (JVB) emulator: the far end of the conference leg's media, for tests.

One `BridgeEndpoint` stands for what JVB allocates per participant (per gateway leg): a WebRTC
endpoint that is ICE-controlling and offers DTLS ``setup="actpass"`` (reference/jingle.md
§3.1), built from the same aiortc ORTC objects as the leg, and driven only by values: its
`prepare()` gives the `TransportDescription` Jicofo would put in the session-initiate, `offer()`
the audio description (payload types, header extensions, sources), and `connect()` takes the
leg's session-accept transport. It knows nothing of XMPP.

Media, as the real bridge forwards it:

* one Opus stream per fake web participant on its own SSRC (real Opus, 20 ms, a sine per
  participant), with the ssrc-audio-level extension (RFC 6464) and silence gaps like JVB's
  silence dropping (jingle.md §8.1): after each talk-spurt a few packets at level 127, then
  nothing while the timestamp keeps running; the next spurt starts with the marker bit;
* RFC 4733 telephone-events on a participant's SSRC (`send_dtmf`), in place of its audio;
* RTCP: an SR per participant stream and an RR from the bridge's feedback SSRC (``jvb-a0``)
  with a report block about the leg's stream, once a second.

Everything the leg sends is recorded per SSRC: the RTP header fields, the audio-level
extension values, the decoded Opus (for tone checks), and the parsed RTCP.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import time
from dataclasses import dataclass, field

import numpy as np
from aioice import Candidate, Connection
from aioice.candidate import candidate_foundation, candidate_priority
from aiortc import (
    RTCDtlsFingerprint,
    RTCDtlsParameters,
    RTCDtlsTransport,
    RTCIceCandidate,
    RTCIceGatherer,
    RTCIceParameters,
    RTCIceTransport,
)

from media.codecs.opus import OpusDecoder, OpusEncoder
from media.dtmf import DtmfSender
from media.errors import MediaParseError
from media.frame import FRAME_SAMPLES, PCM, SAMPLE_RATE
from media.level import SILENCE, audio_level
from media.rtcp import (
    ReceiverReport,
    RtcpPacket,
    SenderReport,
    SourceDescription,
    ntp_from_unix,
    parse_compound,
    serialize_compound,
)
from media.rtp import AudioLevel, RtpPacket
from media.stats import ReceiverStats, SenderStats
from media.tones import MixtureAnalysis, ToneGenerator, analyse_mixture
from xmpp import aiortc_compat
from xmpp.media_transport import shared_certificate
from xmpp.transport_info import (
    AUDIO_LEVEL_URI,
    AudioSession,
    DtlsFingerprint,
    HeaderExtension,
    IceCandidate,
    MediaSource,
    PayloadType,
    TransportDescription,
)

# Jicofo's defaults (jingle.md §0 items 3-4, §3.1).
OPUS_PT = 111
TELEPHONE_EVENT_PT = 126
TELEPHONE_EVENT_CLOCK = 8000
AUDIO_LEVEL_ID = 1
MID_ID = 10
MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
FRAME_S = 0.020


def jitsi_audio_session(
    sources: tuple[MediaSource, ...] = (),
    opus_pt: int = OPUS_PT,
    telephone_event_pt: int = TELEPHONE_EVENT_PT,
    audio_level_id: int = AUDIO_LEVEL_ID,
) -> AudioSession:
    """The audio description of a Jicofo session-initiate (jingle.md §3.1)."""
    return AudioSession(
        payload_types=(
            PayloadType(opus_pt, "opus", 48000, 2, (("minptime", "10"), ("useinbandfec", "1"))),
            PayloadType(telephone_event_pt, "telephone-event", TELEPHONE_EVENT_CLOCK),
        ),
        header_extensions=(
            HeaderExtension(audio_level_id, AUDIO_LEVEL_URI),
            HeaderExtension(MID_ID, MID_URI),
        ),
        sources=sources,
    )


def _random_ssrc() -> int:
    return 1 + secrets.randbelow(0xFFFFFFFE)


@dataclass
class FakeParticipant:
    """A web participant whose audio the bridge forwards: a sine on its own SSRC, in
    talk-spurts of `talk_frames` followed by `silent_frames` packets at level 127 and a gap of
    `gap_frames` with no packets (gap_frames=0: continuous talk)."""

    endpoint_id: str
    ssrc: int
    frequency: float
    level_dbfs: float = -10.0
    talk_frames: int = 30
    silent_frames: int = 3
    gap_frames: int = 10
    signalled: bool = True  # included in offer() (False: an SSRC the leg never heard of)
    sending: bool = True
    frames_sent: int = 0
    packets_sent: int = 0
    _encoder: OpusEncoder = field(default_factory=OpusEncoder, repr=False)
    _tone: ToneGenerator | None = field(default=None, repr=False)
    _dtmf: DtmfSender = field(default_factory=lambda: DtmfSender(TELEPHONE_EVENT_CLOCK), repr=False)
    _seq: int = field(default_factory=lambda: secrets.randbits(16))
    _ts: int = field(default_factory=lambda: secrets.randbits(32))
    _frame: int = 0
    _stats: SenderStats | None = field(default=None, repr=False)
    _msid: str = field(default_factory=lambda: f"{secrets.token_hex(8)}-1", repr=False)

    def __post_init__(self) -> None:
        self._tone = ToneGenerator(self.frequency, SAMPLE_RATE, self.level_dbfs)
        self._stats = SenderStats(self.ssrc, 48000)

    @property
    def source(self) -> MediaSource:
        """The `<source>` Jicofo signals for it (jingle.md §3.1: name, owner, msid)."""
        return MediaSource(
            ssrc=self.ssrc,
            name=f"{self.endpoint_id}-a0",
            owner=self.endpoint_id,
            msid=f"{self.endpoint_id}-audio-0-1 {self._msid}",
        )

    @property
    def dtmf_busy(self) -> bool:
        return self._dtmf.busy

    def _packet(
        self, pt: int, payload: bytes, marker: bool, ts: int, level: AudioLevel | None
    ) -> bytes:
        extensions = None
        if level is not None:
            extensions = {AUDIO_LEVEL_ID: bytes(((0x80 if level.voice else 0) | level.level,))}
        packet = RtpPacket(pt, self._seq, ts, self.ssrc, payload, marker, extensions=extensions)
        self._seq = (self._seq + 1) & 0xFFFF
        self.packets_sent += 1
        return packet.serialize()

    def tick(self, now: float) -> list[bytes]:
        """The packets of the next 20 ms (none in a silence gap)."""
        ts = self._ts
        self._ts = (ts + FRAME_SAMPLES) & 0xFFFFFFFF
        assert self._tone is not None and self._stats is not None
        pcm = self._tone.next()
        if not self.sending:
            return []
        if self._dtmf.busy:
            events = self._dtmf.tick(ts)
            if events:
                out = [
                    self._packet(TELEPHONE_EVENT_PT, e.payload, e.marker, e.timestamp, None)
                    for e in events
                ]
                self._stats.on_sent(4 * len(events), ts, now)
                return out
        cycle = self.talk_frames + self.silent_frames + self.gap_frames
        pos = self._frame % cycle if self.gap_frames else 0
        marker = self._frame == 0 or (self.gap_frames > 0 and pos == 0)
        self._frame += 1
        if pos < self.talk_frames:
            level = AudioLevel(True, audio_level(pcm))
        elif pos < self.talk_frames + self.silent_frames:
            pcm = np.zeros(FRAME_SAMPLES, dtype=np.int16)
            level = AudioLevel(False, SILENCE)
        else:
            return []  # the bridge dropped this silence
        payload = self._encoder.encode(pcm)
        self.frames_sent += 1
        self._stats.on_sent(len(payload), ts, now)
        return [self._packet(OPUS_PT, payload, marker, ts, level)]

    def sender_report(self, now: float, ntp: int) -> SenderReport:
        assert self._stats is not None
        return self._stats.sender_report(now, ntp)


@dataclass
class ReceivedStream:
    """What the bridge received on one SSRC from the leg."""

    ssrc: int
    payload_types: list[int] = field(default_factory=list)
    sequences: list[int] = field(default_factory=list)
    timestamps: list[int] = field(default_factory=list)
    markers: list[bool] = field(default_factory=list)
    levels: list[AudioLevel | None] = field(default_factory=list)
    pcm: list[PCM] = field(default_factory=list)
    tocs: list[int] = field(default_factory=list)  # each Opus packet's TOC byte (RFC 6716 §3.1)
    decode_errors: int = 0
    decoder: OpusDecoder = field(default_factory=OpusDecoder, repr=False)
    stats: ReceiverStats | None = field(default=None, repr=False)

    @property
    def packets(self) -> int:
        return len(self.sequences)

    def audio(self, skip_frames: int = 0) -> PCM:
        """The decoded Opus, concatenated (in arrival order: loopback does not reorder)."""
        chunks = self.pcm[skip_frames:]
        if not chunks:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(chunks)


class BridgeEndpoint:
    """One bridge endpoint (the bridge side of one gateway leg)."""

    def __init__(self, host_addresses: tuple[str, ...] = ("127.0.0.1",)) -> None:
        self.host_addresses = host_addresses
        self.participants: list[FakeParticipant] = []
        self.feedback_ssrc = _random_ssrc()  # the jvb-a0 source: RTCP only
        self.received: dict[int, ReceivedStream] = {}
        self.rtcp_received: list[RtcpPacket] = []
        self.malformed = 0
        self.connected = asyncio.Event()
        self._gatherer: RTCIceGatherer | None = None
        self._ice: RTCIceTransport | None = None
        self._dtls: RTCDtlsTransport | None = None
        self._send: aiortc_compat.SrtpSendPath | None = None
        self._task: asyncio.Task[None] | None = None
        self._ntp_offset = 0.0

    # -- signalling values ---------------------------------------------------------------------

    async def prepare(self) -> TransportDescription:
        """The bridge's transport for the session-initiate: ICE-controlling, DTLS actpass."""
        gatherer = self._gatherer = RTCIceGatherer(iceServers=[])
        aiortc_compat.set_ice_controlling(gatherer, True)
        aiortc_compat.install_component_gatherer(gatherer, self._gather)
        await gatherer.gather()
        self._ice = RTCIceTransport(gatherer)
        self._dtls = RTCDtlsTransport(self._ice, [shared_certificate()])
        params = gatherer.getLocalParameters()
        fingerprints = tuple(
            DtlsFingerprint(f.algorithm, f.value, "actpass")
            for f in self._dtls.getLocalParameters().fingerprints
            if f.algorithm == "sha-256"
        )
        candidates = tuple(
            IceCandidate(
                foundation=c.foundation,
                component=c.component,
                protocol=c.protocol,
                priority=c.priority,
                ip=c.ip,
                port=c.port,
                type=c.type,
                generation=0,
                id=secrets.token_hex(4),
            )
            for c in gatherer.getLocalCandidates()
        )
        return TransportDescription(
            str(params.usernameFragment), str(params.password), candidates, fingerprints
        )

    async def _gather(
        self, connection: Connection, component: int, discovered: list[str]
    ) -> list[Candidate]:
        candidates = []
        for address in self.host_addresses:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.setblocking(False)
            sock.bind((address, 0))
            host, port = sock.getsockname()[:2]
            candidate = Candidate(
                foundation=candidate_foundation("host", "udp", host),
                component=component,
                transport="udp",
                priority=candidate_priority(component, "host"),
                host=host,
                port=port,
                type="host",
            )
            await aiortc_compat.open_host_protocol(connection, sock, candidate)
            candidates.append(candidate)
        return candidates

    def feedback_source(self) -> MediaSource:
        return MediaSource(
            self.feedback_ssrc, "jvb-a0", "jvb", "mixedmslabel mixedlabelaudio0", "audio"
        )

    def offer(self) -> AudioSession:
        """The session-initiate's audio: Jicofo's payload types and extensions, the bridge's
        feedback source and every signalled participant's source."""
        signalled = [p.source for p in self.participants if p.signalled]
        sources = (self.feedback_source(), *signalled)
        return jitsi_audio_session(sources)

    # -- participants ----------------------------------------------------------------------------

    def add_participant(
        self,
        endpoint_id: str,
        frequency: float,
        *,
        ssrc: int | None = None,
        signalled: bool = True,
        talk_frames: int = 30,
        gap_frames: int = 10,
        silent_frames: int = 3,
    ) -> FakeParticipant:
        participant = FakeParticipant(
            endpoint_id,
            ssrc if ssrc is not None else _random_ssrc(),
            frequency,
            talk_frames=talk_frames,
            gap_frames=gap_frames,
            silent_frames=silent_frames,
            signalled=signalled,
        )
        self.participants.append(participant)
        return participant

    def remove_participant(self, participant: FakeParticipant) -> None:
        self.participants.remove(participant)

    def send_dtmf(self, participant: FakeParticipant, digits: str) -> None:
        """RFC 4733 events on the participant's SSRC (replacing its audio meanwhile)."""
        participant._dtmf.queue(digits)

    # -- media -----------------------------------------------------------------------------------

    async def connect(self, remote: TransportDescription) -> None:
        """ICE (controlling) and DTLS (server, after our actpass and the leg's active)."""
        assert self._ice is not None and self._dtls is not None
        for c in remote.candidates:
            await self._ice.addRemoteCandidate(
                RTCIceCandidate(
                    component=c.component,
                    foundation=c.foundation,
                    ip=c.ip,
                    port=c.port,
                    priority=c.priority,
                    protocol=c.protocol,
                    type=c.type,
                )
            )
        await self._ice.addRemoteCandidate(None)
        aiortc_compat.set_dtls_role(self._dtls, "server")
        aiortc_compat.hook_dtls_data(self._dtls, self._rtp_received, self._rtcp_received)
        await self._ice.start(RTCIceParameters(usernameFragment=remote.ufrag, password=remote.pwd))
        if self._ice.state != "completed":
            raise ConnectionError(f"bridge ICE {self._ice.state}")
        await self._dtls.start(
            RTCDtlsParameters(
                fingerprints=[RTCDtlsFingerprint(f.hash, f.value) for f in remote.fingerprints]
            )
        )
        if self._dtls.state != "connected":
            raise ConnectionError(f"bridge DTLS {self._dtls.state}")
        connection = aiortc_compat.ice_connection(self._ice.iceGatherer)
        self._send = aiortc_compat.SrtpSendPath(self._dtls, connection)
        aiortc_compat.install_srtp_receive_path(
            self._dtls, connection, self._rtp_received, self._rtcp_received
        )
        loop = asyncio.get_running_loop()
        self._ntp_offset = time.time() - loop.time()
        self._task = asyncio.create_task(self._run())
        self.connected.set()

    def send_raw_rtp(self, packet: RtpPacket) -> bool:
        """Protect and send any RTP packet (tests of odd input)."""
        assert self._send is not None
        return self._send.send_rtp(packet.serialize())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        next_rtcp = deadline + 1.0
        frame = 0
        while True:
            now = loop.time()
            for participant in list(self.participants):
                for data in participant.tick(now):
                    self._transmit(data)
            if now >= next_rtcp:
                next_rtcp = now + 1.0
                self._send_rtcp(now)
            frame += 1
            deadline += FRAME_S
            await asyncio.sleep(max(0.0, deadline - loop.time()))

    def _transmit(self, data: bytes) -> None:
        if self._send is not None and self._send.usable:
            self._send.send_rtp(data)

    def _send_rtcp(self, now: float) -> None:
        if self._send is None or not self._send.usable:
            return
        ntp = ntp_from_unix(now + self._ntp_offset)
        packets: list[RtcpPacket] = [
            p.sender_report(now, ntp) for p in self.participants if p.frames_sent
        ]
        blocks = [s.stats.report_block(now) for s in self.received.values() if s.stats]
        packets.append(ReceiverReport(self.feedback_ssrc, blocks))
        packets.append(SourceDescription.with_cname(self.feedback_ssrc, "jvb"))
        self._send.send_rtcp(serialize_compound(packets))

    def _rtp_received(self, data: bytes) -> None:
        try:
            packet = RtpPacket.parse(data)
        except MediaParseError:
            self.malformed += 1
            return
        stream = self.received.get(packet.ssrc)
        if stream is None:
            stream = self.received[packet.ssrc] = ReceivedStream(packet.ssrc)
            stream.stats = ReceiverStats(packet.ssrc, 48000)
        assert stream.stats is not None
        now = asyncio.get_running_loop().time()
        stream.stats.update(packet.sequence, packet.timestamp, now, len(data))
        stream.payload_types.append(packet.payload_type)
        stream.sequences.append(packet.sequence)
        stream.timestamps.append(packet.timestamp)
        stream.markers.append(packet.marker)
        stream.levels.append(packet.get_audio_level(AUDIO_LEVEL_ID))
        if packet.payload_type == OPUS_PT:
            if packet.payload:
                stream.tocs.append(packet.payload[0])
            try:
                stream.pcm.append(stream.decoder.decode(packet.payload).copy())
            except MediaParseError:
                stream.decode_errors += 1

    def _rtcp_received(self, data: bytes) -> None:
        try:
            packets = parse_compound(data)
        except MediaParseError:
            self.malformed += 1
            return
        self.rtcp_received.extend(packets)
        now = asyncio.get_running_loop().time()
        for p in packets:
            if isinstance(p, SenderReport) and p.ssrc in self.received:
                stats = self.received[p.ssrc].stats
                if stats is not None:
                    stats.on_sender_report(p.ntp_timestamp, now)

    # -- checks ----------------------------------------------------------------------------------

    def heard(self, ssrc: int, candidates: list[float], skip_frames: int = 5) -> MixtureAnalysis:
        """Which of `candidates` the leg's stream on `ssrc` carries (the first frames, while
        the encoder settles, are skipped)."""
        return analyse_mixture(self.received[ssrc].audio(skip_frames), SAMPLE_RATE, candidates)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._send = None
        if self._dtls is not None:
            with contextlib.suppress(Exception):
                await self._dtls.stop()
        if self._ice is not None:
            await self._ice.stop()
