"""Every use of aiortc's and aioice's private attributes by the conference leg, in one place.

The leg maps Jingle straight onto aiortc's ORTC objects (`RTCIceGatherer`, `RTCIceTransport`,
`RTCDtlsTransport`) and keeps only what is public there: ICE checks, the DTLS handshake, the
DTLS-SRTP key derivation. Four things need internals (reference/deps.md §3):

* the ICE role and the host candidates live on aioice's `Connection`, which aiortc keeps in
  `RTCIceGatherer._connection`: the bridge emulator must be ICE-controlling (jingle.md §3.1),
  and the leg must choose its host addresses and ports (aioice binds every interface address
  except loopback, on a random port);
* the decrypted RTP/RTCP: `RTCDtlsTransport` hands them to `_handle_rtp_data` /
  `_handle_rtcp_data`, which feed its `RtpRouter` - whose receivers are `RTCRtpReceiver`s
  (each starts a decoder thread: ``aiortc/rtcrtpreceiver.py``, `RTCRtpReceiver.receive`,
  ``threading.Thread(target=decoder_worker, ...)``) and whose unknown-SSRC rule learns a stray
  SSRC onto the only receiver of a payload type (`RtpRouter.route_rtp`). Replacing the two
  methods on the instance gives us the plaintext packets and nothing else;
* sending: aiortc's only RTP send path, `_send_rtp`, is a coroutine behind `RTCRtpSender`
  (which encodes itself in the default executor: ``rtcrtpsender.py`` `_next_encoded_frame`,
  ``run_in_executor(None, self.__encoder.encode, ...)``). The leg sends one packet per 20 ms
  tick from synchronous code, so it protects with the transport's SRTP session and writes to
  the selected candidate pair's socket directly;
* the DTLS role: we declare ``setup="active"`` in Jingle, so we must be the DTLS client even if
  an ICE role conflict (RFC 8445 §7.3.1.1) flipped us to controlling, which is what aiortc's
  "auto" role would follow.

aiortc is pinned to 1.16.x in pyproject.toml (aioice 0.13 comes with it);
tests/xmpp/test_aiortc_compat.py checks every name used here and fails loudly if one moves.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import aioice.ice
import pylibsrtp
from aioice import Candidate, Connection
from aiortc import RTCDtlsTransport, RTCIceGatherer

SUPPORTED_AIORTC = "1.16."
SUPPORTED_AIOICE = "0.13."

# aioice enlarges its sockets' receive buffer to this (aioice/turn.py); we do the same.
UDP_RCVBUF = 262144

RtpHandler = Callable[[bytes], None]
# aioice's datagram protocol of one local candidate (not exported by aioice).
StunProtocol = aioice.ice.StunProtocol


class _SrtpSession(Protocol):
    def protect(self, data: bytes) -> bytes: ...
    def protect_rtcp(self, data: bytes) -> bytes: ...


# --- ICE (aioice Connection behind aiortc's gatherer) -----------------------------------------


def ice_connection(gatherer: RTCIceGatherer) -> Connection:
    """The aioice `Connection` of a gatherer (aiortc keeps it private: `_connection`)."""
    connection: Connection = gatherer._connection
    return connection


def set_ice_controlling(gatherer: RTCIceGatherer, controlling: bool) -> None:
    """Force the ICE role. aiortc only decides it inside RTCPeerConnection (from offer/answer
    and ice-lite); at the ORTC level every gatherer starts controlled."""
    ice_connection(gatherer).ice_controlling = controlling


ComponentGatherer = Callable[[Connection, int, list[str]], Awaitable[list[Candidate]]]


def install_component_gatherer(gatherer: RTCIceGatherer, gather: ComponentGatherer) -> None:
    """Make `gatherer.gather()` obtain each component's candidates from `gather(connection,
    component, addresses)` instead of aioice's own binding of every address on port 0.
    `addresses` is aioice's host-address discovery (`get_host_addresses`: every interface
    address, loopback excluded), which `gather` may use or replace."""
    connection = ice_connection(gatherer)

    async def get_component_candidates(
        component: int, addresses: list[str], timeout: int = 5
    ) -> list[Candidate]:
        return await gather(connection, component, list(addresses))

    # aioice's gather_candidates() calls self.get_component_candidates(component=...,
    # addresses=...) for each component: an instance attribute shadows the method.
    connection.get_component_candidates = get_component_candidates  # type: ignore[method-assign]


def new_stun_protocol(connection: Connection) -> StunProtocol:
    return StunProtocol(connection)


async def open_host_protocol(
    connection: Connection, sock: socket.socket, candidate: Candidate
) -> StunProtocol:
    """Wrap an already bound UDP socket in aioice's protocol and register it with the
    connection (its `_protocols` list is what connectivity checks pair with remote
    candidates and what close() closes)."""
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_datagram_endpoint(
        lambda: new_stun_protocol(connection), sock=sock
    )
    protocol.local_candidate = candidate
    register_protocol(connection, protocol)
    return protocol


def register_protocol(connection: Connection, protocol: StunProtocol) -> None:
    protocols: list[StunProtocol] = connection._protocols
    protocols.append(protocol)


async def relayed_candidate(
    connection: Connection,
    component: int,
    server: tuple[str, int],
    username: str,
    password: str,
    transport: str,
    tls: bool,
) -> Candidate:
    """A TURN relayed candidate (RFC 8656) through aioice's own TURN client, registered with
    the connection. `server` must be an IP address: aioice would resolve a name in a thread."""
    candidate, protocol = await aioice.ice.relayed_candidate(
        component=component,
        hide_related_address=False,
        protocol_factory=lambda: new_stun_protocol(connection),
        turn_server=server,
        turn_username=username,
        turn_password=password,
        turn_ssl=tls,
        turn_transport=transport,
    )
    register_protocol(connection, protocol)
    result: Candidate = candidate
    return result


# --- DTLS-SRTP data path ----------------------------------------------------------------------


def hook_dtls_data(dtls: RTCDtlsTransport, on_rtp: RtpHandler, on_rtcp: RtpHandler) -> None:
    """Route the transport's decrypted RTP and RTCP (rtcp-mux, RFC 5761 §4: aiortc tells them
    apart before unprotecting) to `on_rtp(data)` / `on_rtcp(data)` instead of its RtpRouter.
    aiortc awaits both methods from its receive loop (`_recv_next`)."""

    async def handle_rtp_data(data: bytes, arrival_time_ms: int) -> None:
        on_rtp(data)

    async def handle_rtcp_data(data: bytes) -> None:
        on_rtcp(data)

    dtls._handle_rtp_data = handle_rtp_data  # type: ignore[method-assign]
    dtls._handle_rtcp_data = handle_rtcp_data  # type: ignore[method-assign]


class _SrtpReceiveSession(Protocol):
    def unprotect(self, data: bytes) -> bytes: ...
    def unprotect_rtcp(self, data: bytes) -> bytes: ...


def install_srtp_receive_path(
    dtls: RTCDtlsTransport,
    connection: Connection,
    on_rtp: RtpHandler,
    on_rtcp: RtpHandler,
    on_error: Callable[[], None] | None = None,
    accept: Callable[[bytes], bool] | None = None,
) -> None:
    """Unprotect SRTP and SRTCP as each datagram arrives and hand it on at once, on a connected
    transport. aiortc's own path queues every datagram in the ICE connection and wakes its DTLS
    receive task to take it out again: four event-loop steps per packet, which bench/load.py
    measured at about a third of a crowded room's CPU (every leg receives every talker). DTLS
    records (first byte 20-63, RFC 7983 §7: a close_notify) still take aiortc's path.
    `accept(data)`, when given, sees each RTP packet before it is decrypted (the header is in
    clear, RFC 3711 §3.1): False drops it unread."""
    rx: _SrtpReceiveSession | None = dtls._rx_srtp
    if dtls.state != "connected" or rx is None:
        raise ConnectionError("DTLS transport is not connected")
    queued = connection.data_received
    unprotect, unprotect_rtcp = rx.unprotect, rx.unprotect_rtcp

    def data_received(data: bytes, component: int) -> None:
        if len(data) < 12 or not 127 < data[0] < 192:
            queued(data, component)
            return
        try:
            # RFC 5761 §4: with rtcp-mux, RTCP packet types 192-223 fill the second byte.
            if 191 < data[1] < 224:
                on_rtcp(unprotect_rtcp(data))
            elif accept is None or accept(data):
                on_rtp(unprotect(data))
        except pylibsrtp.Error:  # replayed or not authentic: dropped, as aiortc does
            if on_error is not None:
                on_error()

    connection.data_received = data_received  # type: ignore[method-assign]


def set_dtls_role(dtls: RTCDtlsTransport, role: str) -> None:
    """ "client" (we sent setup=active) or "server" (the bridge's actpass, answered active)."""
    if role not in ("client", "server"):
        raise ValueError(f"DTLS role {role!r}")
    dtls._set_role(role)


def selected_pair(connection: Connection) -> Any:
    """The nominated candidate pair of component 1 (rtcp-mux), or None; its ``protocol`` is
    the local candidate's aioice protocol."""
    nominated: dict[int, Any] = connection._nominated
    return nominated.get(1)


class SrtpSendPath:
    """Synchronous SRTP send on a connected DTLS transport: protect with the session aiortc
    derived from the handshake (RFC 5764 §4.2), write to the selected pair's socket.

    The selected pair is looked up per packet: aioice may replace it (a later nomination)."""

    __slots__ = ("_connection", "_dtls", "_srtp")

    def __init__(self, dtls: RTCDtlsTransport, connection: Connection) -> None:
        srtp: _SrtpSession | None = dtls._tx_srtp
        if dtls.state != "connected" or srtp is None:
            raise ConnectionError("DTLS transport is not connected")
        self._dtls = dtls
        self._srtp = srtp
        self._connection = connection

    def _transmit(self, data: bytes) -> bool:
        nominated: dict[int, Any] = self._connection._nominated
        pair = nominated.get(1)
        if pair is None:
            return False
        transport = pair.protocol.transport
        if transport.is_closing():
            return False
        transport.sendto(data, pair.remote_addr)
        return True

    @property
    def usable(self) -> bool:
        return self._dtls.state == "connected"

    def send_rtp(self, packet: bytes) -> bool:
        """Protect and send one RTP packet; False when nothing could be sent."""
        return self._transmit(self._srtp.protect(packet))

    def send_rtcp(self, packet: bytes) -> bool:
        return self._transmit(self._srtp.protect_rtcp(packet))
