"""The conference leg's media transport against the videobridge emulator, on loopback.

No XMPP: the values Jingle would carry go straight from one side to the other. Audio is checked
by tone frequency through the real receive chain (per-SSRC jitter buffer + Opus decoder).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from typing import cast

import aioice.ice
import numpy as np
import pytest
from aioice import stun
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from media.codecs.opus import OpusDecoder, OpusEncoder
from media.dtmf import DtmfDigit
from media.frame import FRAME_SAMPLES, PCM, SAMPLE_RATE
from media.jitterbuffer import JitterBuffer
from media.level import audio_level
from media.rtcp import SenderReport, SourceDescription
from media.rtp import RtpPacket
from media.tones import ToneGenerator, analyse_mixture
from tests.xmpp.bridge import (
    AUDIO_LEVEL_ID,
    OPUS_PT,
    TELEPHONE_EVENT_PT,
    BridgeEndpoint,
    jitsi_audio_session,
)
from xmpp.media_transport import (
    SRTP_REFRESH,
    ConferenceMediaTransport,
    MediaTransportConfig,
    MediaTransportError,
    StunServer,
    _remote_candidate,
    shared_certificate,
)
from xmpp.transport_info import (
    AudioSession,
    DtlsFingerprint,
    IceCandidate,
    MediaSource,
    PayloadType,
    TransportDescription,
)

LOOPBACK = MediaTransportConfig(host_addresses=("127.0.0.1",), connect_timeout=5.0)
LEG_SSRC = 0x5EED1234
OUR_TONE = 1000.0
TONES = [440.0, 660.0, 880.0, 1100.0, 1320.0, OUR_TONE]


async def connect_leg(
    bridge: BridgeEndpoint,
    config: MediaTransportConfig = LOOPBACK,
    ssrc: int = LEG_SSRC,
) -> ConferenceMediaTransport:
    leg = ConferenceMediaTransport(config)
    offer_transport = await bridge.prepare()
    answer_transport = await leg.prepare()
    await asyncio.gather(
        leg.connect(offer_transport, bridge.offer(), ssrc), bridge.connect(answer_transport)
    )
    return leg


async def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


class Listener:
    """The consumer media/ would be: one jitter buffer + Opus decoder per SSRC, pulled every
    20 ms, keeping the decoded frames per SSRC."""

    def __init__(self, leg: ConferenceMediaTransport) -> None:
        self.buffers: dict[int, JitterBuffer] = {}
        self.frames: dict[int, list[PCM]] = {}
        self.packets: dict[int, int] = {}
        self.owners: dict[int, str | None] = {}
        self.levels: dict[int, list[int | None]] = {}
        self._task: asyncio.Task[None] | None = None
        leg.on_packet = self.on_packet

    def on_packet(self, source: MediaSource, packet: RtpPacket, arrival: float) -> None:
        assert packet.ssrc == source.ssrc
        buffer = self.buffers.get(source.ssrc)
        if buffer is None:
            buffer = self.buffers[source.ssrc] = JitterBuffer(OpusDecoder())
            self.frames[source.ssrc] = []
        level = packet.get_audio_level(AUDIO_LEVEL_ID)
        self.levels.setdefault(source.ssrc, []).append(None if level is None else level.level)
        buffer.put(
            packet.sequence,
            packet.timestamp,
            packet.payload,
            packet.marker,
            None if level is None else level.level,
            arrival,
            voice=None if level is None else level.voice,
        )
        self.packets[source.ssrc] = self.packets.get(source.ssrc, 0) + 1
        self.owners[source.ssrc] = source.owner

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        while True:
            now = loop.time()
            for ssrc, buffer in self.buffers.items():
                self.frames[ssrc].append(buffer.pull(now).pcm.copy())
            deadline += 0.02
            await asyncio.sleep(max(0.0, deadline - loop.time()))

    def mark(self, ssrc: int) -> int:
        return len(self.frames.get(ssrc, []))

    def heard(self, ssrc: int, since: int = 0) -> frozenset[float]:
        audio = np.concatenate(self.frames[ssrc][since:])
        return analyse_mixture(audio, SAMPLE_RATE, TONES).present

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await self._task


class ToneSender:
    """The phone's side: a 48 kHz tone, Opus-encoded, one send_audio per 20 ms."""

    def __init__(self, leg: ConferenceMediaTransport, frequency: float) -> None:
        self.leg = leg
        self.tone = ToneGenerator(frequency)
        self.encoder = OpusEncoder()
        self.levels: list[int] = []
        self.timestamp = 123456
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        first = True
        while True:
            pcm = self.tone.next()
            level = audio_level(pcm)
            self.leg.send_audio(
                self.encoder.encode(pcm), self.timestamp, marker=first, level=level, voice=True
            )
            self.levels.append(level)
            first = False
            self.timestamp += FRAME_SAMPLES
            deadline += 0.02
            await asyncio.sleep(max(0.0, deadline - loop.time()))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await self._task


# --- audio both ways ----------------------------------------------------------------------------


async def test_tones_both_ways_per_ssrc_with_source_add_and_remove() -> None:
    bridge = BridgeEndpoint()
    alice = bridge.add_participant("a1a1a1a1", 440.0)
    bob = bridge.add_participant("b2b2b2b2", 660.0)
    carol = bridge.add_participant("c3c3c3c3", 880.0, gap_frames=0)
    # Forwarded by the bridge but never signalled to the leg: must be dropped.
    stranger = bridge.add_participant("e5e5e5e5", 1320.0, signalled=False, gap_frames=0)
    leg = await connect_leg(bridge)
    assert leg.state == "connected"
    listener = Listener(leg)
    listener.start()
    sender = ToneSender(leg, OUR_TONE)
    sender.start()
    try:
        await asyncio.sleep(1.6)

        # Three participants, three frequencies, each alone on its own SSRC.
        for p in (alice, bob, carol):
            assert listener.heard(p.ssrc, since=10) == {p.frequency}, p
            assert listener.owners[p.ssrc] == p.endpoint_id
        # Their audio-level extension reaches the consumer: voice frames and the 127 run
        # before each silence gap.
        assert 127 in listener.levels[alice.ssrc]
        assert min(v for v in listener.levels[alice.ssrc] if v is not None) < 30
        assert stranger.ssrc not in listener.packets
        unknown_before = leg.counters.unknown_ssrc
        assert unknown_before >= 40  # the stranger's packets, all dropped

        # The bridge hears our tone on our SSRC, with exactly the levels we sent.
        stream = bridge.received[LEG_SSRC]
        assert stream.decode_errors == 0
        assert bridge.heard(LEG_SSRC, TONES).present == {OUR_TONE}
        n = stream.packets
        assert n >= 60
        assert set(stream.payload_types) == {OPUS_PT}
        assert stream.markers[0] and not any(stream.markers[1:])
        assert all(
            (b - a) & 0xFFFF == 1
            for a, b in zip(stream.sequences, stream.sequences[1:], strict=False)
        )
        assert stream.timestamps[0] == 123456
        assert all(
            b - a == FRAME_SAMPLES
            for a, b in zip(stream.timestamps, stream.timestamps[1:], strict=False)
        )
        assert [lv.voice for lv in stream.levels if lv] == [True] * n
        assert [lv.level for lv in stream.levels if lv] == sender.levels[:n]
        assert sender.levels[0] == 13  # a -10 dBFS sine is -13 dBov (RFC 6464)

        # source-add mid-call: a fourth tone on its own SSRC.
        dave = bridge.add_participant("d4d4d4d4", 1100.0)
        leg.add_sources([dave.source, MediaSource(777, "x-v0", "x", media="video")])
        await asyncio.sleep(1.0)
        assert listener.heard(dave.ssrc, since=10) == {1100.0}
        assert 777 not in [s.ssrc for s in leg.sources]
        for p in (alice, bob, carol):
            assert listener.heard(p.ssrc, since=listener.mark(p.ssrc) - 40) == {p.frequency}

        # source-remove: carol still sends (the bridge has not noticed yet) but is dropped.
        leg.remove_sources([carol.ssrc])
        carol_packets = listener.packets[carol.ssrc]
        unknown = leg.counters.unknown_ssrc
        await asyncio.sleep(0.5)
        assert listener.packets[carol.ssrc] == carol_packets
        assert leg.counters.unknown_ssrc - unknown >= 40  # carol's 25 + the stranger's 25
        assert listener.packets[dave.ssrc] > 0

        # RTCP: our SR (we send) with our CNAME reaches the bridge; its RR about us gives RTT.
        def our_sr() -> SenderReport | None:
            return next(
                (
                    p
                    for p in bridge.rtcp_received
                    if isinstance(p, SenderReport) and p.ssrc == LEG_SSRC
                ),
                None,
            )

        assert await wait_for(lambda: our_sr() is not None, 4.0)
        sr = our_sr()
        assert sr is not None and sr.packet_count > 0
        assert {b.ssrc for b in sr.reports} >= {alice.ssrc, bob.ssrc}
        cnames = [
            c.cname
            for p in bridge.rtcp_received
            if isinstance(p, SourceDescription)
            for c in p.chunks
            if c.ssrc == LEG_SSRC
        ]
        assert cnames and cnames[0] == leg.cname
        assert await wait_for(lambda: leg.rtt is not None, 2.5)
        assert leg.rtt is not None and 0 <= leg.rtt < 0.5
        assert leg.counters.rtcp_received > 0
        assert leg.counters.malformed_rtp == leg.counters.malformed_rtcp == 0
    finally:
        await sender.stop()
        await listener.stop()
        await leg.close()
        await bridge.close()
    assert leg.state == "closed"


async def test_telephone_events_become_digits_once_each() -> None:
    bridge = BridgeEndpoint()
    alice = bridge.add_participant("a1a1a1a1", 440.0, gap_frames=0)
    bob = bridge.add_participant("b2b2b2b2", 660.0, gap_frames=0)
    leg = await connect_leg(bridge)
    digits: list[tuple[MediaSource, DtmfDigit]] = []
    leg.on("dtmf", lambda source, digit: digits.append((source, digit)))
    received: list[int] = []
    leg.on_packet = lambda source, packet, arrival: received.append(packet.payload_type)
    try:
        await asyncio.sleep(0.1)
        bridge.send_dtmf(alice, "1#9*")
        await asyncio.sleep(0.05)
        assert await wait_for(lambda: not alice.dtmf_busy, 3.0)
        await asyncio.sleep(0.2)
        assert [d.digit for _, d in digits] == ["1", "#", "9", "*"]
        assert {s.ssrc for s, _ in digits} == {alice.ssrc}
        assert {s.owner for s, _ in digits} == {alice.endpoint_id}
        assert leg.counters.dtmf_digits == 4
        assert leg.counters.dtmf_packets >= 4 * 7  # start, updates, 3 end packets each
        # Events never reach the audio consumer; the other participant's audio goes on.
        assert TELEPHONE_EVENT_PT not in received
        assert received.count(OPUS_PT) > 20
        assert bob.frames_sent > 20
    finally:
        await leg.close()
        await bridge.close()


async def test_copies_nobody_wants_are_skipped_before_decryption() -> None:
    """`wants` False for one SSRC: its Opus packets are dropped unread (but one in
    SRTP_REFRESH, which keeps the SRTP rollover estimate current), its digits still arrive,
    the other source is untouched, and the skipped stream leaves the receiver reports."""
    bridge = BridgeEndpoint()
    alice = bridge.add_participant("a1a1a1a1", 440.0, gap_frames=0)
    bob = bridge.add_participant("b2b2b2b2", 660.0, gap_frames=0)
    leg = await connect_leg(bridge)
    asked: list[int] = []

    def wants(ssrc: int, arrival: float) -> bool:
        asked.append(ssrc)
        return ssrc != alice.ssrc

    leg.wants = wants
    digits: list[str] = []
    leg.on("dtmf", lambda source, digit: digits.append(digit.digit))
    delivered: dict[int, int] = {}

    def on_packet(source: MediaSource, packet: RtpPacket, arrival: float) -> None:
        delivered[packet.ssrc] = delivered.get(packet.ssrc, 0) + 1

    leg.on_packet = on_packet
    try:
        await asyncio.sleep(0.6)
        bridge.send_dtmf(alice, "5")
        assert await wait_for(lambda: digits == ["5"], 3.0)
        assert await wait_for(lambda: bob.frames_sent > 40 and alice.frames_sent > 40, 3.0)
        assert alice.ssrc in asked and bob.ssrc in asked
        assert delivered.get(alice.ssrc, 0) <= alice.frames_sent // SRTP_REFRESH + 1
        assert delivered[bob.ssrc] > 20
        assert leg.counters.copies_skipped > 20
        report = leg._report(asyncio.get_running_loop().time())
        reported = {b.ssrc for p in report if hasattr(p, "reports") for b in p.reports}
        assert bob.ssrc in reported and alice.ssrc not in reported
        # Wanted again (the leg took the source over): delivered from the next packet on.
        before = delivered.get(alice.ssrc, 0)
        leg.wants = lambda ssrc, arrival: True
        assert await wait_for(lambda: delivered.get(alice.ssrc, 0) > before + 10, 3.0)
    finally:
        await leg.close()
        await bridge.close()


async def test_thread_count_does_not_grow_with_20_legs() -> None:
    # Warm-up: one leg through its whole life (first imports, the shared certificate).
    bridge = BridgeEndpoint()
    leg = await connect_leg(bridge)
    await leg.close()
    await bridge.close()
    before = threading.active_count()

    bridges = [BridgeEndpoint() for _ in range(20)]
    for b in bridges:
        b.add_participant("f00dcafe", 440.0, gap_frames=0)
    legs = await asyncio.gather(*(connect_leg(b, ssrc=1000 + i) for i, b in enumerate(bridges)))
    senders = [ToneSender(leg, OUR_TONE) for leg in legs]
    received = [0] * len(legs)

    def counter(i: int) -> Callable[[MediaSource, RtpPacket, float], None]:
        def on_packet(source: MediaSource, packet: RtpPacket, arrival: float) -> None:
            received[i] += 1

        return on_packet

    for i, leg in enumerate(legs):
        leg.on_packet = counter(i)
    for s in senders:
        s.start()
    try:
        assert await wait_for(
            lambda: (
                min(received) > 10
                and all(
                    1000 + i in b.received and b.received[1000 + i].packets > 10
                    for i, b in enumerate(bridges)
                )
            ),
            5.0,
        ), received
        during = threading.active_count()
        assert all(leg.state == "connected" for leg in legs)
    finally:
        for s in senders:
            await s.stop()
        await asyncio.gather(*(leg.close() for leg in legs))
        await asyncio.gather(*(b.close() for b in bridges))
    assert during == before, [t.name for t in threading.enumerate()]
    assert threading.active_count() == before


# --- failures -----------------------------------------------------------------------------------


async def test_fingerprint_mismatch_fails_the_connect() -> None:
    bridge = BridgeEndpoint()
    leg = ConferenceMediaTransport(LOOPBACK)
    offer = await bridge.prepare()
    answer = await leg.prepare()
    forged = TransportDescription(
        offer.ufrag,
        offer.pwd,
        offer.candidates,
        (DtlsFingerprint("sha-256", ":".join(["AB"] * 32), "actpass"),),
    )
    states: list[str] = []
    leg.on("state", states.append)
    bridge_task = asyncio.create_task(bridge.connect(answer))
    try:
        with pytest.raises(MediaTransportError, match="DTLS"):
            await leg.connect(forged, bridge.offer(), LEG_SSRC)
        assert states == ["checking", "failed"]
        leg.send_audio(b"\x78", 0, marker=False, level=None, voice=False)
        assert leg.counters.send_failures == 1
    finally:
        bridge_task.cancel()
        await asyncio.gather(bridge_task, return_exceptions=True)
        await leg.close()
        await bridge.close()


async def test_unreachable_bridge_fails_within_the_timeout() -> None:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    dead_port = probe.getsockname()[1]
    probe.close()
    leg = ConferenceMediaTransport(
        MediaTransportConfig(host_addresses=("127.0.0.1",), connect_timeout=1.0)
    )
    await leg.prepare()
    remote = TransportDescription(
        "abcd",
        "a" * 22,
        (IceCandidate("1", 1, "udp", 2130706431, "127.0.0.1", dead_port, "host"),),
        (DtlsFingerprint("sha-256", ":".join(["AB"] * 32), "actpass"),),
    )
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(MediaTransportError):
        await leg.connect(remote, jitsi_audio_session(), LEG_SSRC)
    assert loop.time() - start < 2.5
    assert leg.state == "failed"
    await leg.close()
    assert leg.state == "closed"


async def test_close_during_connect_ends_it() -> None:
    bridge = BridgeEndpoint()
    leg = ConferenceMediaTransport(LOOPBACK)
    offer = await bridge.prepare()
    await leg.prepare()
    connecting = asyncio.create_task(leg.connect(offer, bridge.offer(), LEG_SSRC))
    await asyncio.sleep(0)  # the bridge never answers: connect() is in its ICE checks
    assert leg.state == "checking"
    await leg.close()
    with pytest.raises(MediaTransportError):
        await connecting
    assert leg.state == "closed"
    await bridge.close()


async def test_connect_refuses_what_it_cannot_use() -> None:
    bridge = BridgeEndpoint()
    offer = await bridge.prepare()
    leg = ConferenceMediaTransport(LOOPBACK)
    with pytest.raises(MediaTransportError, match="prepare"):
        await leg.connect(offer, bridge.offer(), LEG_SSRC)
    await leg.prepare()
    no_opus = AudioSession((PayloadType(0, "PCMU", 8000),))
    with pytest.raises(MediaTransportError, match="opus"):
        await leg.connect(offer, no_opus, LEG_SSRC)
    active = TransportDescription(
        offer.ufrag,
        offer.pwd,
        offer.candidates,
        (DtlsFingerprint("sha-256", offer.fingerprints[0].value, "active"),),
    )
    with pytest.raises(MediaTransportError, match="active"):
        await leg.connect(active, bridge.offer(), LEG_SSRC)
    with pytest.raises(MediaTransportError, match="SSRC"):
        await leg.connect(offer, bridge.offer(), 0)
    assert leg.state == "new"
    await leg.close()
    await bridge.close()


async def test_bridge_going_away_fails_the_leg() -> None:
    # DTLS close_notify from the bridge (or ICE consent expiry): the leg reports "failed", so
    # that signalling can ask Jicofo for a restart (jingle.md §12 step 9).
    bridge = BridgeEndpoint()
    leg = await connect_leg(bridge)
    states: list[str] = []
    leg.on("state", states.append)
    await bridge.close()
    assert await wait_for(lambda: leg.state == "failed", 2.0)
    assert states == ["failed"]
    leg.send_audio(b"\x78", 0, marker=False, level=13, voice=True)
    assert leg.counters.send_failures == 1
    await leg.close()
    assert states == ["failed", "closed"]


class FakeStunServer(asyncio.DatagramProtocol):
    """Answers Binding requests (RFC 8489 §6) with a fixed XOR-MAPPED-ADDRESS."""

    MAPPED = ("203.0.113.5", 40000)

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.requests = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (the selector loop's datagram transport does not subclass DatagramTransport)
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        request = stun.parse_message(data)
        assert request.message_method == stun.Method.BINDING
        self.requests += 1
        response = stun.Message(
            message_method=stun.Method.BINDING,
            message_class=stun.Class.RESPONSE,
            transaction_id=request.transaction_id,
        )
        response.attributes["XOR-MAPPED-ADDRESS"] = self.MAPPED
        assert self.transport is not None
        self.transport.sendto(bytes(response), addr)


async def test_configured_stun_server_gives_a_server_reflexive_candidate() -> None:
    loop = asyncio.get_running_loop()
    transport, server = await loop.create_datagram_endpoint(
        FakeStunServer, local_addr=("127.0.0.1", 0)
    )
    port = transport.get_extra_info("sockname")[1]
    threads = threading.active_count()
    leg = ConferenceMediaTransport(
        MediaTransportConfig(
            host_addresses=("127.0.0.1",), stun_server=StunServer("127.0.0.1", port)
        )
    )
    try:
        desc = await leg.prepare()
        host = next(c for c in desc.candidates if c.type == "host")
        srflx = [c for c in desc.candidates if c.type == "srflx"]
        assert len(srflx) == 1 and server.requests >= 1
        c = srflx[0]
        assert (c.ip, c.port) == FakeStunServer.MAPPED
        assert (c.rel_addr, c.rel_port) == (host.ip, host.port)
        assert (c.generation, c.component, c.protocol) == (0, 1, "udp")
        assert c.priority < host.priority  # RFC 8445 §5.1.2.2: host > srflx
        assert threading.active_count() == threads  # no resolver thread for an IP address
    finally:
        await leg.close()
        transport.close()


# --- the local description ----------------------------------------------------------------------


async def test_prepare_offers_loopback_with_generation_0_and_setup_active() -> None:
    leg = ConferenceMediaTransport(LOOPBACK)
    desc = await leg.prepare()
    try:
        assert len(desc.ufrag) >= 4 and len(desc.pwd) >= 22  # RFC 8445 §5.3
        assert desc.rtcp_mux
        assert [c.ip for c in desc.candidates] == ["127.0.0.1"]
        c = desc.candidates[0]
        assert (c.generation, c.component, c.protocol, c.type) == (0, 1, "udp", "host")
        assert c.id and 0 < c.port < 65536
        assert c.priority == (126 << 24) + (65535 << 8) + 255  # RFC 8445 §5.1.2.1, host
        sha256 = next(
            f.value for f in shared_certificate().getFingerprints() if f.algorithm == "sha-256"
        )
        assert desc.fingerprints == (DtlsFingerprint("sha-256", sha256, "active"),)
        with pytest.raises(MediaTransportError):
            await leg.prepare()
    finally:
        await leg.close()


async def test_host_candidates_use_the_configured_port_range() -> None:
    busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    busy.bind(("127.0.0.1", 0))
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    free = probe.getsockname()[1]
    probe.close()
    try:
        # A range of one port that is free: exactly that port.
        leg = ConferenceMediaTransport(
            MediaTransportConfig(host_addresses=("127.0.0.1",), port_range=(free, free))
        )
        desc = await leg.prepare()
        assert [c.port for c in desc.candidates] == [free]
        await leg.close()
        # A range whose only port is taken: no candidate, a clear error.
        taken = busy.getsockname()[1]
        leg = ConferenceMediaTransport(
            MediaTransportConfig(host_addresses=("127.0.0.1",), port_range=(taken, taken))
        )
        with pytest.raises(MediaTransportError, match="host_addresses"):
            await leg.prepare()
        await leg.close()
    finally:
        busy.close()


async def test_default_gathers_the_real_interfaces_without_loopback() -> None:
    discovered = aioice.ice.get_host_addresses(True, True)
    leg = ConferenceMediaTransport(MediaTransportConfig())
    try:
        if not discovered:
            # A sandbox with only lo: aioice offers nothing, and we say what to configure.
            with pytest.raises(MediaTransportError, match="host_addresses"):
                await leg.prepare()
            return
        desc = await leg.prepare()
        ips = {c.ip for c in desc.candidates}
        assert ips and ips <= set(discovered)
        assert "127.0.0.1" not in ips and "::1" not in ips
    finally:
        await leg.close()


async def test_ipv6_loopback_connects() -> None:
    try:
        probe = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        probe.bind(("::1", 0))
        probe.close()
    except OSError:
        pytest.skip("no IPv6 loopback")
    bridge = BridgeEndpoint(host_addresses=("::1",))
    alice = bridge.add_participant("a1a1a1a1", 440.0, gap_frames=0)
    leg = await connect_leg(bridge, MediaTransportConfig(host_addresses=("::1",)))
    got: list[int] = []
    leg.on_packet = lambda source, packet, arrival: got.append(packet.ssrc)
    try:
        assert await wait_for(lambda: len(got) > 5, 2.0)
        assert set(got) == {alice.ssrc}
    finally:
        await leg.close()
        await bridge.close()


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        MediaTransportConfig(port_range=(5000, 4000))
    with pytest.raises(ValueError):
        MediaTransportConfig(port_range=(0, 10))
    with pytest.raises(ValueError):
        MediaTransportConfig(host_addresses=("localhost",))
    with pytest.raises(ValueError):
        MediaTransportConfig(use_ipv4=False, use_ipv6=False)


def test_remote_candidates_the_leg_cannot_use_are_skipped() -> None:
    good = IceCandidate("1", 1, "udp", 2130706431, "198.51.100.7", 10000, "host")
    converted = _remote_candidate(good)
    assert converted is not None
    assert (converted.ip, converted.port, converted.type, converted.protocol) == (
        "198.51.100.7",
        10000,
        "host",
        "udp",
    )
    srflx = IceCandidate(
        "2",
        1,
        "udp",
        1694498815,
        "203.0.113.9",
        10000,
        "srflx",
        rel_addr="198.51.100.7",
        rel_port=10000,
    )
    converted = _remote_candidate(srflx)
    assert converted is not None and converted.relatedAddress == "198.51.100.7"
    for bad in (
        IceCandidate("1", 1, "tcp", 1, "198.51.100.7", 443, "host", tcptype="passive"),
        IceCandidate("1", 2, "udp", 1, "198.51.100.7", 10001, "host"),
        IceCandidate("1", 1, "udp", 1, "198.51.100.7", 10000, "prflx"),
        IceCandidate("1", 1, "udp", 1, "4f0e9a.local", 10000, "host"),
        IceCandidate("1", 1, "udp", 1, "198.51.100.7", 0, "host"),
    ):
        assert _remote_candidate(bad) is None, bad


def test_shared_certificate_is_generated_once() -> None:
    assert shared_certificate() is shared_certificate()


# --- hostile input on the receive path ----------------------------------------------------------


def _fuzz_target() -> tuple[ConferenceMediaTransport, list[object]]:
    leg = ConferenceMediaTransport(LOOPBACK)
    leg._configure(jitsi_audio_session(), LEG_SSRC)
    leg.add_sources([MediaSource(1), MediaSource(0xDEADBEEF)])
    seen: list[object] = []
    leg.on_packet = lambda source, packet, arrival: seen.append(packet)
    leg.on("dtmf", lambda source, digit: seen.append(digit))
    return leg, seen


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=80))
def test_garbage_rtp_and_rtcp_are_counted_never_raised(data: bytes) -> None:
    leg, _ = _fuzz_target()
    leg._rtp_received(data)
    leg._rtcp_received(data)
    c = leg.counters
    outcomes = (
        c.packets_received,
        c.dtmf_packets,
        c.duplicates,
        c.malformed_rtp,
        c.unknown_ssrc,
        c.unknown_payload_type,
    )
    assert sum(outcomes) == 1  # each datagram has exactly one fate
    assert c.rtcp_received + c.malformed_rtcp == 1


@settings(max_examples=200, deadline=None)
@given(
    pt=st.sampled_from([OPUS_PT, TELEPHONE_EVENT_PT, 0, 127]),
    seq=st.integers(0, 0xFFFF),
    ts=st.integers(0, 0xFFFFFFFF),
    ssrc=st.sampled_from([1, 0xDEADBEEF, 5]),
    payload=st.binary(max_size=12),
)
def test_fuzzed_packets_of_known_sources_never_raise(
    pt: int, seq: int, ts: int, ssrc: int, payload: bytes
) -> None:
    leg, seen = _fuzz_target()
    packet = RtpPacket(pt, seq, ts, ssrc, payload, extensions={AUDIO_LEVEL_ID: b"\xff"})
    leg._rtp_received(packet.serialize())
    if ssrc == 5:
        assert leg.counters.unknown_ssrc == 1 and not seen
    elif pt == OPUS_PT:
        assert len(seen) == 1 and isinstance(seen[0], RtpPacket) and seen[0].payload == payload
    elif pt == TELEPHONE_EVENT_PT:
        assert leg.counters.dtmf_packets + leg.counters.malformed_rtp == 1
        assert leg.counters.dtmf_packets == (len(payload) >= 4)
    else:
        assert leg.counters.unknown_payload_type == 1
