"""Guards for the aiortc/aioice internals the conference leg uses (xmpp/aiortc_compat.py).

aiortc is pinned to 1.16.x in pyproject.toml. When an upgrade moves one of these names, these
tests fail with the name in the message, before any call does something subtle instead.
"""

from __future__ import annotations

import asyncio
import inspect
import socket

import aioice
import aioice.ice
import aiortc
import pytest
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

from media.rtcp import ReceiverReport, parse_compound
from media.rtp import RtpPacket
from xmpp import aiortc_compat
from xmpp.media_transport import shared_certificate


def test_pinned_versions() -> None:
    assert aiortc.__version__.startswith(aiortc_compat.SUPPORTED_AIORTC), (
        f"aiortc {aiortc.__version__}: xmpp/aiortc_compat.py was written for "
        f"{aiortc_compat.SUPPORTED_AIORTC}x; re-check every private name it uses"
    )
    assert aioice.__version__.startswith(aiortc_compat.SUPPORTED_AIOICE), aioice.__version__


def _has_params(func: object, *names: str) -> bool:
    params = inspect.signature(func).parameters  # type: ignore[arg-type]
    return all(n in params for n in names)


async def test_ice_internals_are_where_the_compat_layer_expects() -> None:
    gatherer = RTCIceGatherer(iceServers=[])
    connection = gatherer._connection
    assert isinstance(connection, Connection), "RTCIceGatherer._connection moved"
    assert isinstance(connection.ice_controlling, bool), "Connection.ice_controlling moved"
    assert isinstance(connection._protocols, list), "Connection._protocols moved"
    assert isinstance(connection._nominated, dict), "Connection._nominated moved"
    assert _has_params(connection.get_component_candidates, "component", "addresses")
    gather_source = inspect.getsource(Connection.gather_candidates)
    assert "self.get_component_candidates(" in gather_source, (
        "Connection.gather_candidates no longer calls get_component_candidates: "
        "install_component_gatherer would be bypassed"
    )
    sendto_source = inspect.getsource(Connection.sendto)
    assert "self._nominated.get(component)" in sendto_source, "selected pair moved"
    assert _has_params(aioice.ice.CandidatePair.__init__, "protocol", "remote_candidate")
    assert isinstance(aioice.ice.CandidatePair.remote_addr, property)
    assert _has_params(aioice.ice.StunProtocol.__init__, "receiver")
    assert _has_params(
        aioice.ice.relayed_candidate,
        "component",
        "hide_related_address",
        "protocol_factory",
        "turn_server",
        "turn_username",
        "turn_password",
        "turn_ssl",
        "turn_transport",
    )
    aiortc_compat.set_ice_controlling(gatherer, True)
    assert RTCIceTransport(gatherer).role == "controlling"
    await connection.close()


def test_dtls_internals_are_where_the_compat_layer_expects() -> None:
    for name, params in (
        ("_handle_rtp_data", ("data", "arrival_time_ms")),
        ("_handle_rtcp_data", ("data",)),
    ):
        method = getattr(RTCDtlsTransport, name, None)
        assert method is not None, f"RTCDtlsTransport.{name} is gone"
        assert inspect.iscoroutinefunction(method), f"RTCDtlsTransport.{name} is not async"
        assert _has_params(method, *params), f"RTCDtlsTransport.{name} signature changed"
    recv_source = inspect.getsource(RTCDtlsTransport._recv_next)
    assert "await self._handle_rtp_data(" in recv_source, "decrypted RTP takes another path"
    assert "await self._handle_rtcp_data(" in recv_source, "decrypted RTCP takes another path"
    assert _has_params(RTCDtlsTransport._set_role, "role")
    setup_source = inspect.getsource(RTCDtlsTransport._setup_srtp)
    assert "self._tx_srtp = Session(" in setup_source, "RTCDtlsTransport._tx_srtp moved"


def test_rtp_receiver_still_starts_a_thread() -> None:
    # Why the leg has its own receive path: if aiortc stops starting a decoder thread per
    # receiver, the design choice can be revisited (and this test says so).
    source = inspect.getsource(aiortc.RTCRtpReceiver.receive)
    assert "threading.Thread(" in source


async def _endpoint(controlling: bool) -> tuple[RTCIceGatherer, RTCDtlsTransport]:
    gatherer = RTCIceGatherer(iceServers=[])
    aiortc_compat.set_ice_controlling(gatherer, controlling)

    async def gather(connection: Connection, component: int, found: list[str]) -> list[Candidate]:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        candidate = Candidate(
            candidate_foundation("host", "udp", "127.0.0.1"),
            component,
            "udp",
            candidate_priority(component, "host"),
            "127.0.0.1",
            port,
            "host",
        )
        await aiortc_compat.open_host_protocol(connection, sock, candidate)
        return [candidate]

    aiortc_compat.install_component_gatherer(gatherer, gather)
    await gatherer.gather()
    return gatherer, RTCDtlsTransport(RTCIceTransport(gatherer), [shared_certificate()])


async def test_loopback_gathering_hooks_and_srtp_send_path_end_to_end() -> None:
    (g1, d1), (g2, d2) = await asyncio.gather(_endpoint(True), _endpoint(False))
    assert [c.ip for c in g1.getLocalCandidates()] == ["127.0.0.1"]
    assert g1._connection._protocols, "open_host_protocol did not register the protocol"
    got: dict[str, list[bytes]] = {"rtp1": [], "rtcp1": [], "rtp2": [], "rtcp2": []}
    aiortc_compat.hook_dtls_data(d1, got["rtp1"].append, got["rtcp1"].append)
    aiortc_compat.hook_dtls_data(d2, got["rtp2"].append, got["rtcp2"].append)
    aiortc_compat.set_dtls_role(d1, "server")
    aiortc_compat.set_dtls_role(d2, "client")
    with pytest.raises(ValueError):
        aiortc_compat.set_dtls_role(d2, "auto")

    async def start(
        gatherer: RTCIceGatherer,
        dtls: RTCDtlsTransport,
        peer: RTCIceGatherer,
        pdtls: RTCDtlsTransport,
    ) -> None:
        for c in peer.getLocalCandidates():
            await dtls.transport.addRemoteCandidate(
                RTCIceCandidate(c.component, c.foundation, c.ip, c.port, c.priority, "udp", c.type)
            )
        await dtls.transport.addRemoteCandidate(None)
        params = peer.getLocalParameters()
        await dtls.transport.start(RTCIceParameters(params.usernameFragment, params.password))
        fingerprints = [
            RTCDtlsFingerprint(f.algorithm, f.value)
            for f in pdtls.getLocalParameters().fingerprints
        ]
        await dtls.start(RTCDtlsParameters(fingerprints=fingerprints))

    await asyncio.wait_for(asyncio.gather(start(g1, d1, g2, d2), start(g2, d2, g1, d1)), 5)
    assert d1.state == d2.state == "connected"
    assert d1._role == "server" and d2._role == "client"
    send1 = aiortc_compat.SrtpSendPath(d1, aiortc_compat.ice_connection(g1))
    send2 = aiortc_compat.SrtpSendPath(d2, aiortc_compat.ice_connection(g2))
    rtp = RtpPacket(111, 7, 960, 0xABCDEF01, b"opus", True, extensions={1: b"\x8d"}).serialize()
    rtcp = ReceiverReport(0xABCDEF01).serialize()
    assert send1.send_rtp(rtp) and send1.send_rtcp(rtcp)
    assert send2.send_rtp(rtp) and send2.send_rtcp(rtcp)
    for _ in range(100):
        if all(got.values()):
            break
        await asyncio.sleep(0.01)
    # The plaintext arrives intact through the hooks, and nothing reached aiortc's router.
    assert got["rtp1"] == got["rtp2"] == [rtp]
    assert RtpPacket.parse(got["rtp2"][0]).get_audio_level(1) == (True, 13)
    assert [parse_compound(d) for d in got["rtcp1"]] == [[ReceiverReport(0xABCDEF01)]]
    assert got["rtcp2"] == [rtcp]
    assert not d1._rtp_router.ssrc_table and not d2._rtp_router.receivers
    await d1.stop()
    await d2.stop()
    await d1.transport.stop()
    await d2.transport.stop()
    assert not send1.usable
    assert not send2.send_rtp(rtp), "sent on a closed connection"
