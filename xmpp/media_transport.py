"""The conference leg's media: ICE, DTLS-SRTP and RTP towards the videobridge, from Jingle values.

No SDP and no `RTCPeerConnection` (it merges Jitsi's many audio SSRCs into one decoder,
reference/deps.md §3): Jingle's transport maps directly onto aiortc's ORTC objects.

* ICE (RFC 8445) with aiortc's `RTCIceGatherer` / `RTCIceTransport`. The bridge is
  ICE-controlling, so we are controlled (jingle.md §3.1). Host candidates are bound by us
  (`MediaTransportConfig.host_addresses`, `port_range`): aioice never offers loopback (deps.md
  §3.2) and binds random ports. No STUN/TURN server unless configured - aiortc's default is a
  public STUN server whose name aioice resolves in a thread.
* DTLS-SRTP (RFC 5763/5764) with `RTCDtlsTransport`: we answer ``setup="active"``, so we are
  the DTLS client (jingle.md §4.1). One certificate per process (`shared_certificate`).
* RTP: the decrypted packets are taken from the DTLS transport before aiortc's router (see
  `xmpp.aiortc_compat`): one receive path per remote audio SSRC, no `RTCRtpReceiver` (a
  decoding thread each). Packets of a known SSRC with the offer's Opus payload type go to
  `on_packet` with their arrival time (loop time) and extensions (the ssrc-audio-level,
  RFC 6464); RFC 4733 telephone-events on them become ``"dtmf"`` events; unknown SSRCs and
  payload types are counted and dropped (a source must be signalled first: jingle.md §8.2).
* Sending: `send_audio` builds the RTP header (our declared SSRC, the offer's Opus PT and its
  ssrc-audio-level id, our sequence numbers), protects and sends it synchronously. No
  `RTCRtpSender` (it encodes in the default executor): Opus comes encoded from `media/`.
* RTCP (RFC 3550 §6): SR when we sent since the last report, else RR, with one report block per
  remote stream, plus SDES CNAME; on the A.7 randomised interval, one `call_later` per leg.

Threads: none per leg. Gathering with host addresses only is pure asyncio; a configured STUN or
TURN server given by name is resolved once per process (the loop's default executor, bounded).

Measured on the 2-vCPU reference machine (loopback, the bridge emulator of tests/xmpp/bridge.py
in another process, Opus pre-encoded so that no codec work is counted): prepare() ~1 ms,
connect() (ICE checks + DTLS handshake) 24 ms median, 29 ms worst of 15; per leg at 50 packets/s
each way 0.33-0.48 % of one core, the same per leg for 10, 20 and 40 legs. Receiving costs
~50 µs per packet: by profile about two thirds go to aioice's datagram path (a STUN parse attempt,
an asyncio queue) and the wake-up of aiortc's receive task, ~12 % to SRTP, ~20 % to our parse and
dispatch; sending ~30 µs per packet. The thread count stays at the process's own. (aiortc's
RTCPeerConnection legs cost 6-8 % each with their codecs, reference/deps.md §3.2.)
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import secrets
import socket
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from aioice import Candidate, Connection, stun
from aioice.candidate import candidate_foundation, candidate_priority
from aiortc import (
    RTCCertificate,
    RTCDtlsFingerprint,
    RTCDtlsParameters,
    RTCDtlsTransport,
    RTCIceCandidate,
    RTCIceGatherer,
    RTCIceParameters,
    RTCIceTransport,
)
from pyee.asyncio import AsyncIOEventEmitter

from media.dtmf import DtmfDigit, DtmfReceiver
from media.errors import MediaParseError
from media.rtcp import (
    Bye,
    ReceiverReport,
    ReportBlock,
    RtcpPacket,
    RtcpTimer,
    SenderReport,
    SourceDescription,
    ntp_from_unix,
    parse_compound,
    serialize_compound,
)
from media.rtp import RtpPacket
from media.stats import ReceiverStats, SenderStats
from xmpp import aiortc_compat
from xmpp.datagram_poller import DatagramPoller
from xmpp.transport_info import (
    AUDIO_LEVEL_URI,
    AudioSession,
    DtlsFingerprint,
    IceCandidate,
    MediaSource,
    TransportDescription,
)

__all__ = [
    "ConferenceMediaTransport",
    "MediaTransportConfig",
    "MediaTransportCounters",
    "MediaTransportError",
    "StunServer",
    "TurnServer",
    "shared_certificate",
]

logger = logging.getLogger(__name__)

OPUS_CLOCK = 48000
_MAX_REPORT_BLOCKS = 31  # the 5-bit RC field (RFC 3550 §6.4.1)
# RTP header + RFC 8285 §4.2 one-byte extension block holding one 1-byte element (ID/L byte,
# the level byte, two bytes of padding).
_HEADER = struct.Struct("!BBHII")
_HEADER_LEVEL = struct.Struct("!BBHIIHHBBxx")
_ONE_BYTE_PROFILE = 0xBEDE


class MediaTransportError(Exception):
    """The media transport could not be set up (no candidates, ICE or DTLS failure, timeout,
    an offer without Opus). The signalling side answers with a session-terminate."""


@dataclass(frozen=True, slots=True)
class StunServer:
    """A STUN server for a server-reflexive candidate (RFC 8489 Binding). Give an IP address
    to avoid any name lookup; a name is resolved once per process."""

    host: str
    port: int = 3478


@dataclass(frozen=True, slots=True)
class TurnServer:
    """A TURN server for a relayed candidate (RFC 8656), through aioice's TURN client."""

    host: str
    username: str
    password: str
    port: int = 3478
    transport: str = "udp"  # "udp" or "tcp"
    tls: bool = False  # turns: (TLS over TCP)


@dataclass(frozen=True, slots=True)
class MediaTransportConfig:
    """Where and how the leg gathers ICE candidates and how long it waits.

    `host_addresses`: the local addresses to offer host candidates on. None means every
    interface address, as aioice discovers them (loopback excluded: a real deployment never
    wants it); a tuple such as ``("127.0.0.1",)`` offers exactly those (tests, a host whose
    media must leave by one address).
    `port_range`: inclusive UDP port range for the host candidates (for firewalls); None lets
    the kernel pick ephemeral ports.
    """

    host_addresses: tuple[str, ...] | None = None
    port_range: tuple[int, int] | None = None
    use_ipv4: bool = True
    use_ipv6: bool = True
    stun_server: StunServer | None = None
    turn_server: TurnServer | None = None
    gather_timeout: float = 5.0  # STUN/TURN gathering (host candidates are immediate)
    connect_timeout: float = 10.0  # ICE checks + DTLS handshake
    fingerprint_algorithms: tuple[str, ...] = ("sha-256",)  # what we put in Jingle
    session_bandwidth: int = 64000  # bit/s; RTCP gets 5 % of it (RFC 3550 §6.2)
    cname: str | None = None  # RTCP SDES CNAME; random per leg by default (RFC 7022)
    # Reads the chosen pair's socket from the media tick (xmpp.datagram_poller); shared by
    # every leg of the process. None: the event loop reads it.
    poller: DatagramPoller | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.port_range is not None:
            low, high = self.port_range
            if not 1 <= low <= high <= 65535:
                raise ValueError(f"port range {self.port_range} is not within 1..65535")
        if not self.use_ipv4 and not self.use_ipv6:
            raise ValueError("neither IPv4 nor IPv6 enabled")
        if self.host_addresses is not None:
            for address in self.host_addresses:
                ipaddress.ip_address(address)  # raises ValueError for a name


@dataclass(slots=True)
class MediaTransportCounters:
    packets_received: int = 0  # audio packets delivered to on_packet
    dtmf_packets: int = 0
    dtmf_digits: int = 0
    unknown_ssrc: int = 0  # RTP from an SSRC nobody signalled: dropped
    unknown_payload_type: int = 0
    duplicates: int = 0  # and packets RFC 3550 A.1 validation refused
    malformed_rtp: int = 0
    malformed_rtcp: int = 0
    rtcp_received: int = 0
    packets_sent: int = 0
    send_failures: int = 0  # not connected, no selected pair, SRTP refused
    rtcp_sent: int = 0
    copies_skipped: int = 0  # Opus copies another leg delivers, dropped before decryption


# --- the shared DTLS certificate --------------------------------------------------------------

_CERTIFICATE: RTCCertificate | None = None
_CERTIFICATE_MARGIN = 86400.0  # renew a day before aiortc's 30-day validity ends


def shared_certificate() -> RTCCertificate:
    """The process's DTLS certificate (ECDSA P-256, self-signed, as aiortc makes them: ~0.7 ms
    to generate). Peers check its fingerprint, not a chain (RFC 5763 §5), so every leg can
    share one; it is renewed shortly before it expires."""
    global _CERTIFICATE
    cert = _CERTIFICATE
    if cert is None or cert.expires.timestamp() - time.time() < _CERTIFICATE_MARGIN:
        cert = _CERTIFICATE = RTCCertificate.generateCertificate()
    return cert


# --- name resolution for STUN/TURN, once per process ------------------------------------------

_RESOLVED: dict[tuple[str, int], tuple[str, int]] = {}


async def _resolve(host: str, port: int) -> tuple[str, int]:
    try:
        ipaddress.ip_address(host)
        return host, port
    except ValueError:
        pass
    cached = _RESOLVED.get((host, port))
    if cached is not None:
        return cached
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, family=socket.AF_INET, type=socket.SOCK_DGRAM)
    if not infos:
        raise OSError(f"cannot resolve {host}")
    address = infos[0][4]
    result = (str(address[0]), int(address[1]))
    _RESOLVED[(host, port)] = result
    return result


# --- candidate gathering ----------------------------------------------------------------------


def _bind_udp(address: str, port_range: tuple[int, int] | None) -> socket.socket:
    """A UDP socket bound to `address`, on a port of `port_range` (tried from a random start
    so that concurrent legs do not collide on the first port) or an ephemeral one."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, aiortc_compat.UDP_RCVBUF)
        if port_range is None:
            sock.bind((address, 0))
            return sock
        low, high = port_range
        count = high - low + 1
        start = random.randrange(count)
        for i in range(count):
            try:
                sock.bind((address, low + (start + i) % count))
                return sock
            except OSError:
                continue
        raise OSError(f"no free UDP port in {low}-{high} on {address}")
    except BaseException:
        sock.close()
        raise


async def _server_reflexive(
    protocol: aiortc_compat.StunProtocol, server: tuple[str, int]
) -> Candidate:
    # RFC 8489 §6: a Binding request; the XOR-MAPPED-ADDRESS is our address as the server
    # saw it (RFC 8445 §5.1.1.2). Sent on the host candidate's own socket.
    request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    response, _ = await protocol.request(request, server)
    mapped = response.attributes["XOR-MAPPED-ADDRESS"]
    base: Candidate = protocol.local_candidate
    return Candidate(
        foundation=candidate_foundation("srflx", "udp", base.host),
        component=base.component,
        transport="udp",
        priority=candidate_priority(base.component, "srflx"),
        host=mapped[0],
        port=mapped[1],
        type="srflx",
        related_address=base.host,
        related_port=base.port,
    )


# --- per remote SSRC receive state -------------------------------------------------------------


# RFC 3711 §3.3.1: the receiver guesses a packet's rollover counter from the highest index it
# has authenticated, which must stay within 2^15 packets: a stream whose copies this leg skips
# still has one packet in this many decrypted, in case the leg becomes its owner later.
SRTP_REFRESH = 256


class _RemoteStream:
    __slots__ = ("dtmf", "skipped", "source", "stats")

    def __init__(self, source: MediaSource, dtmf_clock: int) -> None:
        self.source = source
        self.stats = ReceiverStats(source.ssrc, OPUS_CLOCK)
        self.dtmf = DtmfReceiver(dtmf_clock)
        self.skipped = 0  # copies in a row not decrypted (0: this leg takes the stream)


class ConferenceMediaTransport(AsyncIOEventEmitter):
    """One conference leg's media transport. Life cycle: `prepare()` (our Jingle transport for
    the session-accept), `connect()` (the offer's transport and payload types), then
    `send_audio()` per 20 ms and `on_packet` per received packet, `close()`.

    Events: ``"state"`` (new / checking / connected / failed / closed) and ``"dtmf"``
    (MediaSource, DtmfDigit) for RFC 4733 digits on remote SSRCs.
    """

    def __init__(self, config: MediaTransportConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else MediaTransportConfig()
        self.on_packet: Callable[[MediaSource, RtpPacket, float], None] | None = None
        # Asked with an Opus packet's SSRC and arrival before it is decrypted: False when the
        # packet is a copy nobody needs (the room's mixer takes each source from one leg, and
        # the bridge sends every source to every leg: in a room of N calls, N-1 of N copies).
        self.wants: Callable[[int, float], bool] | None = None
        self.counters = MediaTransportCounters()
        self.state = "new"
        self.local_ssrc: int | None = None
        self.opus_payload_type: int | None = None
        self.telephone_event_payload_type: int | None = None
        self.audio_level_id: int | None = None
        self.remote_report: ReportBlock | None = None  # the bridge's last report about us
        self.cname = self.config.cname or f"pygasi-{secrets.token_hex(8)}"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._gatherer: RTCIceGatherer | None = None
        self._host_sockets: dict[aiortc_compat.StunProtocol, socket.socket] = {}
        self._polled: socket.socket | None = None  # the chosen pair's, read by the poller
        self._ice: RTCIceTransport | None = None
        self._dtls: RTCDtlsTransport | None = None
        self._connection: Connection | None = None
        self._send: aiortc_compat.SrtpSendPath | None = None
        self._streams: dict[int, _RemoteStream] = {}
        self._dtmf_clock = 8000
        self._seq = secrets.randbits(16)  # RFC 3550 §5.1: random initial sequence number
        self._sender_stats: SenderStats | None = None
        self._sent_at_last_report = 0
        self._rtcp_timer: RtcpTimer | None = None
        self._rtcp_handle: asyncio.TimerHandle | None = None
        self._ntp_offset = 0.0  # unix time = loop time + offset
        self._closing = False

    # -- state -----------------------------------------------------------------------------------

    def _set_state(self, state: str) -> None:
        if state != self.state:
            logger.debug("media transport %s -> %s", self.state, state)
            self.state = state
            self.emit("state", state)

    @property
    def rtt(self) -> float | None:
        """Round-trip time to the bridge from its reports about our SR (RFC 3550 §6.4.1)."""
        return self._sender_stats.rtt if self._sender_stats is not None else None

    @property
    def sources(self) -> list[MediaSource]:
        return [s.source for s in self._streams.values()]

    # -- local description -------------------------------------------------------------------

    async def _gather_component(
        self, connection: Connection, component: int, discovered: list[str]
    ) -> list[Candidate]:
        cfg = self.config
        addresses = list(cfg.host_addresses) if cfg.host_addresses is not None else discovered
        candidates: list[Candidate] = []
        host_protocols = []
        for address in addresses:
            version = ipaddress.ip_address(address).version
            if (version == 4 and not cfg.use_ipv4) or (version == 6 and not cfg.use_ipv6):
                continue
            try:
                sock = _bind_udp(address, cfg.port_range)
            except OSError as exc:
                logger.warning("no host candidate on %s: %s", address, exc)
                continue
            bound = sock.getsockname()
            candidate = Candidate(
                foundation=candidate_foundation("host", "udp", bound[0]),
                component=component,
                transport="udp",
                priority=candidate_priority(component, "host"),
                host=bound[0],
                port=bound[1],
                type="host",
            )
            try:
                protocol = await aiortc_compat.open_host_protocol(connection, sock, candidate)
            except OSError as exc:
                sock.close()
                logger.warning("no host candidate on %s: %s", address, exc)
                continue
            host_protocols.append(protocol)
            self._host_sockets[protocol] = sock
            candidates.append(candidate)
        candidates += await self._gather_servers(connection, component, host_protocols)
        return candidates

    async def _gather_servers(
        self,
        connection: Connection,
        component: int,
        host_protocols: list[aiortc_compat.StunProtocol],
    ) -> list[Candidate]:
        cfg = self.config
        tasks: list[asyncio.Task[Candidate]] = []
        if cfg.stun_server is not None:
            try:
                server = await _resolve(cfg.stun_server.host, cfg.stun_server.port)
            except OSError as exc:
                logger.warning("STUN server %s not resolved: %s", cfg.stun_server.host, exc)
            else:
                tasks.extend(
                    asyncio.create_task(_server_reflexive(protocol, server))
                    for protocol in host_protocols
                    if ipaddress.ip_address(protocol.local_candidate.host).version == 4
                )
        turn = cfg.turn_server
        if turn is not None:
            try:
                server = await _resolve(turn.host, turn.port)
            except OSError as exc:
                logger.warning("TURN server %s not resolved: %s", turn.host, exc)
            else:
                relayed = aiortc_compat.relayed_candidate(
                    connection,
                    component,
                    server,
                    turn.username,
                    turn.password,
                    turn.transport,
                    turn.tls,
                )
                tasks.append(asyncio.create_task(relayed))
        if not tasks:
            return []
        done, pending = await asyncio.wait(tasks, timeout=cfg.gather_timeout)
        for task in pending:
            task.cancel()
        found = []
        for task in done:
            error = task.exception()
            if error is None:
                found.append(task.result())
            else:
                logger.warning("STUN/TURN candidate not obtained: %s", error)
        return found

    async def prepare(self) -> TransportDescription:
        """Gather candidates and return our transport for the session-accept: ufrag/pwd, every
        candidate (generation 0: the bridge ignores others, jingle.md §4.1), the DTLS
        fingerprint(s) with ``setup="active"``."""
        if self._gatherer is not None:
            raise MediaTransportError("prepare() was already called")
        self._loop = asyncio.get_running_loop()
        # An explicit empty server list: aiortc's default is Google's STUN server.
        gatherer = self._gatherer = RTCIceGatherer(iceServers=[])
        aiortc_compat.install_component_gatherer(gatherer, self._gather_component)
        self._connection = aiortc_compat.ice_connection(gatherer)
        try:
            await gatherer.gather()
        except OSError as exc:
            raise MediaTransportError(f"ICE gathering failed: {exc}") from exc
        local = gatherer.getLocalCandidates()
        if not local:
            await self._teardown()
            raise MediaTransportError(
                "no ICE host candidate: no usable local address "
                "(set MediaTransportConfig.host_addresses)"
            )
        self._ice = RTCIceTransport(gatherer)
        self._dtls = RTCDtlsTransport(self._ice, [shared_certificate()])
        params = gatherer.getLocalParameters()
        fingerprints = tuple(
            DtlsFingerprint(f.algorithm, f.value, "active")
            for f in self._dtls.getLocalParameters().fingerprints
            if f.algorithm in self.config.fingerprint_algorithms
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
                id=secrets.token_hex(5),
                rel_addr=c.relatedAddress,
                rel_port=c.relatedPort,
            )
            for c in local
        )
        return TransportDescription(
            ufrag=str(params.usernameFragment),
            pwd=str(params.password),
            candidates=candidates,
            fingerprints=fingerprints,
            rtcp_mux=True,
        )

    # -- connecting ------------------------------------------------------------------------------

    def _configure(self, session: AudioSession, local_ssrc: int) -> None:
        opus = session.payload("opus")
        if opus is None:
            raise MediaTransportError("the offer has no opus payload type")
        if not 1 <= local_ssrc <= 0xFFFFFFFF:
            raise MediaTransportError(f"local SSRC {local_ssrc} out of range")
        self.opus_payload_type = opus.id
        event = session.payload("telephone-event")
        self.telephone_event_payload_type = event.id if event is not None else None
        self._dtmf_clock = event.clockrate if event is not None and event.clockrate else 8000
        self.audio_level_id = session.extension_id(AUDIO_LEVEL_URI)
        self.local_ssrc = local_ssrc
        self._sender_stats = SenderStats(local_ssrc, OPUS_CLOCK)
        for stream in self._streams.values():
            stream.dtmf = DtmfReceiver(self._dtmf_clock)

    async def connect(
        self, remote: TransportDescription, session: AudioSession, local_ssrc: int
    ) -> None:
        """Run ICE (controlled) and DTLS (client) against the bridge's transport from the
        session-initiate, and start receiving the offer's audio sources. Raises
        MediaTransportError on failure or after `config.connect_timeout`."""
        if self._ice is None or self._dtls is None or self._loop is None:
            raise MediaTransportError("connect() before prepare()")
        if self.state != "new":
            raise MediaTransportError(f"connect() in state {self.state}")
        if not remote.fingerprints:
            raise MediaTransportError("the remote transport has no DTLS fingerprint")
        if any(f.setup == "active" for f in remote.fingerprints):
            # We answer active (jingle.md §4.1); an active offerer leaves nobody to listen.
            raise MediaTransportError("the remote DTLS setup is active, as is ours")
        self._configure(session, local_ssrc)
        self.add_sources(session.sources)
        ice, dtls = self._ice, self._dtls
        aiortc_compat.set_dtls_role(dtls, "client")
        aiortc_compat.hook_dtls_data(dtls, self._rtp_received, self._rtcp_received)
        self._set_state("checking")
        try:
            for c in remote.candidates:
                candidate = _remote_candidate(c)
                if candidate is not None:
                    await ice.addRemoteCandidate(candidate)
            # Jicofo sends the bridge's whole transport at once: no trickle (jingle.md §3.1),
            # and end-of-candidates lets aioice report a failure instead of waiting.
            await ice.addRemoteCandidate(None)
            await asyncio.wait_for(self._handshake(remote), self.config.connect_timeout)
            if self._closing:
                raise MediaTransportError("closed while connecting")
        except Exception as exc:  # aiortc/aioice raise assorted types; the caller gets one
            reason = "timed out" if isinstance(exc, TimeoutError) else str(exc) or repr(exc)
            await self._teardown()
            if not self._closing:
                self._set_state("failed")
            raise MediaTransportError(f"media connect failed: {reason}") from exc
        assert self._connection is not None
        self._send = aiortc_compat.SrtpSendPath(dtls, self._connection)
        aiortc_compat.install_srtp_receive_path(
            dtls, self._connection, self._rtp_received, self._rtcp_received, accept=self._accept
        )
        self._adopt_socket()
        ice.on("statechange", self._lower_state_changed)
        dtls.on("statechange", self._lower_state_changed)
        now = self._loop.time()
        self._ntp_offset = time.time() - now
        self._rtcp_timer = RtcpTimer(now, self.config.session_bandwidth * 0.05 / 8)
        self._schedule_rtcp()
        self._set_state("connected")

    async def _handshake(self, remote: TransportDescription) -> None:
        assert self._ice is not None and self._dtls is not None
        await self._ice.start(RTCIceParameters(usernameFragment=remote.ufrag, password=remote.pwd))
        if self._ice.state != "completed":
            raise MediaTransportError(f"ICE {self._ice.state}")
        fingerprints = [RTCDtlsFingerprint(f.hash.lower(), f.value) for f in remote.fingerprints]
        await self._dtls.start(RTCDtlsParameters(fingerprints=fingerprints))
        if self._dtls.state != "connected":
            raise MediaTransportError(f"DTLS {self._dtls.state}")

    def _lower_state_changed(self) -> None:
        # ICE consent expiry (RFC 7675) or a DTLS close_notify after we were connected: the
        # signalling side then asks for a restart (jingle.md §12 step 9).
        if self._closing or self.state != "connected":
            return
        ice_state = self._ice.state if self._ice is not None else "closed"
        dtls_state = self._dtls.state if self._dtls is not None else "closed"
        if ice_state in ("failed", "closed") or dtls_state in ("failed", "closed"):
            self._cancel_rtcp()
            self._set_state("failed")

    # -- sources ---------------------------------------------------------------------------------

    def add_sources(self, sources: Iterable[MediaSource]) -> None:
        """Start receiving these remote audio SSRCs (video sources are ignored). Re-adding a
        known SSRC updates its owner/name and keeps its statistics."""
        for source in sources:
            if source.media != "audio":
                continue
            stream = self._streams.get(source.ssrc)
            if stream is None:
                self._streams[source.ssrc] = _RemoteStream(source, self._dtmf_clock)
            else:
                stream.source = source

    def remove_sources(self, ssrcs: Iterable[int]) -> None:
        for ssrc in ssrcs:
            self._streams.pop(ssrc, None)

    # -- receiving -------------------------------------------------------------------------------

    def _accept(self, data: bytes) -> bool:
        """Whether to decrypt this SRTP packet (see `wants`). Telephone-events are always read:
        every leg passes a meeting participant's digits to its own phone."""
        wants = self.wants
        if wants is None or data[1] & 0x7F != self.opus_payload_type:
            return True
        ssrc = int.from_bytes(data[8:12], "big")
        stream = self._streams.get(ssrc)
        if stream is None or self._loop is None or wants(ssrc, self._loop.time()):
            if stream is not None:
                stream.skipped = 0
            return True
        stream.skipped += 1
        self.counters.copies_skipped += 1
        return stream.skipped % SRTP_REFRESH == 0

    def _rtp_received(self, data: bytes) -> None:
        counters = self.counters
        try:
            packet = RtpPacket.parse(data)
        except MediaParseError:
            counters.malformed_rtp += 1
            return
        stream = self._streams.get(packet.ssrc)
        if stream is None:
            counters.unknown_ssrc += 1
            return
        now = self._arrival()
        pt = packet.payload_type
        if pt == self.opus_payload_type:
            size = len(packet.payload)
            status = stream.stats.update(packet.sequence, packet.timestamp, now, size)
            if not status.usable:
                counters.duplicates += 1
                return
            counters.packets_received += 1
            if self.on_packet is not None:
                self.on_packet(stream.source, packet, now)
        elif pt == self.telephone_event_payload_type:
            # RFC 4733 §2.3: every packet of one event repeats its start timestamp, so it
            # stays out of the jitter estimate (A.8).
            size = len(packet.payload)
            status = stream.stats.update(packet.sequence, packet.timestamp, now, size, False)
            if not status.usable:
                counters.duplicates += 1
                return
            try:
                digit = stream.dtmf.on_packet(packet.timestamp, packet.payload)
            except MediaParseError:
                counters.malformed_rtp += 1
                return
            counters.dtmf_packets += 1
            if digit is not None:
                counters.dtmf_digits += 1
                self._emit_dtmf(stream.source, digit)
        else:
            counters.unknown_payload_type += 1

    def _emit_dtmf(self, source: MediaSource, digit: DtmfDigit) -> None:
        self.emit("dtmf", source, digit)

    def _rtcp_received(self, data: bytes) -> None:
        try:
            packets = parse_compound(data)
        except MediaParseError:
            self.counters.malformed_rtcp += 1
            return
        self.counters.rtcp_received += 1
        loop_now = self._loop.time() if self._loop is not None else time.monotonic()
        if self._rtcp_timer is not None:
            self._rtcp_timer.received(len(data))
        for p in packets:
            if isinstance(p, SenderReport):
                stream = self._streams.get(p.ssrc)
                if stream is not None:
                    stream.stats.on_sender_report(p.ntp_timestamp, loop_now)
            if isinstance(p, SenderReport | ReceiverReport):
                for block in p.reports:
                    if block.ssrc == self.local_ssrc and self._sender_stats is not None:
                        self.remote_report = block
                        ntp_now = ntp_from_unix(loop_now + self._ntp_offset)
                        self._sender_stats.on_report_block(block, ntp_now)

    # -- sending ---------------------------------------------------------------------------------

    def send_audio(
        self, payload: bytes, timestamp: int, *, marker: bool, level: int | None, voice: bool
    ) -> None:
        """Send one Opus packet on our SSRC with the offer's PT; `level` (RFC 6464 -dBov,
        0..127) goes into the ssrc-audio-level extension when the offer has one (the bridge
        needs it for active-speaker detection, silence dropping and force-mute). Dropped and
        counted while not connected."""
        send = self._send
        if send is None or self.state != "connected" or self.local_ssrc is None:
            self.counters.send_failures += 1
            return
        timestamp &= 0xFFFFFFFF
        b1 = (0x80 if marker else 0) | (self.opus_payload_type or 0)
        seq = self._seq
        self._seq = (seq + 1) & 0xFFFF
        ext_id = self.audio_level_id
        if level is not None and ext_id is not None and 1 <= ext_id <= 14:
            if not 0 <= level <= 127:
                raise ValueError(f"audio level {level} outside 0..127 -dBov")
            header = _HEADER_LEVEL.pack(
                0x90,  # V=2, X=1
                b1,
                seq,
                timestamp,
                self.local_ssrc,
                _ONE_BYTE_PROFILE,
                1,  # extension length in 32-bit words
                ext_id << 4,  # L=0: one byte of data (RFC 8285 §4.2)
                (0x80 if voice else 0) | level,
            )
        else:
            header = _HEADER.pack(0x80, b1, seq, timestamp, self.local_ssrc)
        try:
            sent = send.send_rtp(header + payload)
        except Exception as exc:  # pylibsrtp.Error: a send must never break the clock
            logger.debug("SRTP protect failed: %s", exc)
            sent = False
        if not sent:
            self.counters.send_failures += 1
            return
        self.counters.packets_sent += 1
        assert self._sender_stats is not None and self._loop is not None
        self._sender_stats.on_sent(len(payload), timestamp, self._loop.time())

    # -- RTCP ------------------------------------------------------------------------------------

    def _schedule_rtcp(self) -> None:
        if self._rtcp_timer is None or self._loop is None:
            return
        delay = max(0.0, self._rtcp_timer.next_time - self._loop.time())
        self._rtcp_handle = self._loop.call_later(delay, self._rtcp_fire)

    def _cancel_rtcp(self) -> None:
        if self._rtcp_handle is not None:
            self._rtcp_handle.cancel()
            self._rtcp_handle = None

    def _report(self, now: float) -> list[RtcpPacket]:
        assert self._sender_stats is not None and self.local_ssrc is not None
        # A stream whose copies are skipped is not reported: its counts would read as loss.
        blocks = [
            s.stats.report_block(now)
            for s in self._streams.values()
            if s.stats.received and not s.skipped
        ][:_MAX_REPORT_BLOCKS]
        sent = self._sender_stats.packets
        we_sent = sent > self._sent_at_last_report
        self._sent_at_last_report = sent
        report: RtcpPacket
        if we_sent:
            ntp = ntp_from_unix(now + self._ntp_offset)
            report = self._sender_stats.sender_report(now, ntp, blocks)
        else:
            report = ReceiverReport(self.local_ssrc, blocks)
        return [report, SourceDescription.with_cname(self.local_ssrc, self.cname)]

    def _send_rtcp(self, packets: list[RtcpPacket]) -> int:
        if self._send is None:
            return 0
        data = serialize_compound(packets)
        try:
            sent = self._send.send_rtcp(data)
        except Exception as exc:  # pylibsrtp.Error
            logger.debug("SRTCP protect failed: %s", exc)
            sent = False
        if not sent:
            self.counters.send_failures += 1
            return 0
        self.counters.rtcp_sent += 1
        return len(data)

    def _rtcp_fire(self) -> None:
        self._rtcp_handle = None
        timer = self._rtcp_timer
        if timer is None or self._loop is None or self.state != "connected":
            return
        now = self._loop.time()
        if timer.due(now):
            packets = self._report(now)
            size = self._send_rtcp(packets)
            we_sent = isinstance(packets[0], SenderReport)
            receiving = sum(1 for s in self._streams.values() if s.stats.received)
            timer.sent(now, size, 1 + len(self._streams), int(we_sent) + receiving, we_sent)
        self._schedule_rtcp()

    # -- closing ---------------------------------------------------------------------------------

    def _adopt_socket(self) -> None:
        """Hand the chosen pair's host socket to the poller (the bridge's media all arrives
        there; the other candidates' sockets stay with the event loop)."""
        poller = self.config.poller
        if poller is None or self._connection is None:
            return
        pair = aiortc_compat.selected_pair(self._connection)
        if pair is None:
            return
        protocol = pair.protocol
        sock = self._host_sockets.get(protocol)
        transport = protocol.transport
        if sock is not None and transport is not None and poller.adopt(sock, protocol, transport):
            self._polled = sock

    def _arrival(self) -> float:
        poller = self.config.poller
        if poller is not None and poller.arrival is not None:
            return poller.arrival
        return self._loop.time() if self._loop is not None else time.monotonic()

    async def _teardown(self) -> None:
        self._cancel_rtcp()
        self._send = None
        polled, self._polled = self._polled, None
        if polled is not None and self.config.poller is not None:
            self.config.poller.release(polled)
        self._host_sockets.clear()
        if self._dtls is not None:
            try:
                await self._dtls.stop()
            except Exception as exc:  # closing must finish whatever state DTLS is in
                logger.debug("DTLS stop: %s", exc)
        if self._ice is not None:
            await self._ice.stop()
        elif self._connection is not None:
            await self._connection.close()

    async def close(self) -> None:
        """Send an RTCP BYE (RFC 3550 §6.6) if connected, then stop DTLS and ICE (their sockets
        are closed). Idempotent."""
        if self._closing:
            return
        self._closing = True
        if self.state == "connected" and self._send is not None and self._loop is not None:
            packets = self._report(self._loop.time())
            assert self.local_ssrc is not None
            self._send_rtcp([*packets, Bye([self.local_ssrc])])
        await self._teardown()
        self._streams.clear()
        self._set_state("closed")


def _remote_candidate(c: IceCandidate) -> RTCIceCandidate | None:
    """The aiortc form of a bridge candidate, or None for one we cannot use: only UDP
    (jingle.md §4.1), component 1 (rtcp-mux), an IP address (the bridge resolves no mDNS names
    either), and a type aioice accepts from signalling."""
    if c.protocol.lower() != "udp" or c.component != 1:
        return None
    if c.type not in ("host", "srflx", "relay"):
        return None
    try:
        ipaddress.ip_address(c.ip)
    except ValueError:
        return None
    if not 0 < c.port <= 65535:
        return None
    return RTCIceCandidate(
        component=c.component,
        foundation=c.foundation,
        ip=c.ip,
        port=c.port,
        priority=c.priority,
        protocol="udp",
        type=c.type,
        relatedAddress=c.rel_addr,
        relatedPort=c.rel_port,
    )
