"""The whole of issue #4 at once: a leg joins through Prosody, the Jicofo emulator invites it with
a real bridge emulator's transport, and audio flows both ways, checked by tone frequency.

Three fake web participants (real MUC occupants) at three frequencies are each decoded on their
own SSRC through media/'s jitter buffer and Opus decoder (per-SSRC demultiplexing); the bridge
hears our tone; a source-add mid-call brings a fourth tone; a source-remove, and an occupant
leaving the MUC without one, take a tone away.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from media.codecs.opus import OpusDecoder, OpusEncoder
from media.frame import FRAME_SAMPLES, PCM, SAMPLE_RATE
from media.jitterbuffer import JitterBuffer
from media.level import audio_level
from media.rtp import RtpPacket
from media.tones import ToneGenerator, analyse_mixture
from tests.xmpp.bridge import AUDIO_LEVEL_ID, BridgeEndpoint
from tests.xmpp.harness import Leg
from tests.xmpp.jicofo import BridgeAllocation, JicofoEmulator
from tests.xmpp.prosody import Prosody
from tests.xmpp.test_invite import invited
from xmpp.media_api import MediaTransport
from xmpp.media_transport import ConferenceMediaTransport, MediaTransportConfig
from xmpp.participant import SessionStarted
from xmpp.transport_info import MediaSource

pytestmark = pytest.mark.prosody

ROOM = "audio"
OUR_TONE = 1000.0
WEB = {"a1a1a1a1": 440.0, "b2b2b2b2": 660.0, "c3c3c3c3": 880.0, "d4d4d4d4": 1100.0}
TONES = [*WEB.values(), OUR_TONE]
LOOPBACK = MediaTransportConfig(host_addresses=("127.0.0.1",), connect_timeout=5.0)


class Listener:
    """media/'s receive chain per remote SSRC: a jitter buffer with an Opus decoder, pulled
    every 20 ms."""

    def __init__(self) -> None:
        self.buffers: dict[int, JitterBuffer] = {}
        self.frames: dict[int, list[PCM]] = {}
        self.packets: dict[int, int] = {}
        self.owners: dict[int, str | None] = {}
        self._task: asyncio.Task[None] | None = None

    def attach(self, media: MediaTransport) -> None:
        media.on_packet = self.on_packet
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    def on_packet(self, source: MediaSource, packet: RtpPacket, arrival: float) -> None:
        buffer = self.buffers.get(source.ssrc)
        if buffer is None:
            buffer = self.buffers[source.ssrc] = JitterBuffer(OpusDecoder())
            self.frames[source.ssrc] = []
        level = packet.get_audio_level(AUDIO_LEVEL_ID)
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


async def send_tone(media: MediaTransport, frequency: float) -> None:
    """The phone's side: a 48 kHz tone, Opus-encoded, with its RFC 6464 level, every 20 ms."""
    tone, encoder = ToneGenerator(frequency), OpusEncoder()
    loop = asyncio.get_running_loop()
    deadline, timestamp, first = loop.time(), 0, True
    while True:
        pcm = tone.next()
        media.send_audio(
            encoder.encode(pcm), timestamp, marker=first, level=audio_level(pcm), voice=True
        )
        first, timestamp = False, timestamp + FRAME_SAMPLES
        deadline += 0.02
        await asyncio.sleep(max(0.0, deadline - loop.time()))


async def test_audio_both_ways_through_the_signalling(prosody_server: Prosody) -> None:
    bridges: list[BridgeEndpoint] = []
    jicofo: JicofoEmulator

    async def bridge_factory(nick: str) -> BridgeAllocation:
        # What JVB forwards to this leg: every web participant's audio on its own SSRC.
        bridge = BridgeEndpoint(("127.0.0.1",))
        for fake in jicofo.room(ROOM).fakes.values():
            bridge.add_participant(fake.nick, WEB[fake.nick], ssrc=fake.source.ssrc)
        bridges.append(bridge)
        return bridge

    # min-participants 4: the invite comes once the leg and three web participants are in.
    jicofo = JicofoEmulator(prosody_server, bridge_factory=bridge_factory, min_participants=4)
    listener = Listener()
    sender: asyncio.Task[None] | None = None
    async with jicofo:
        leg = Leg(prosody_server, ROOM, media_factory=lambda: ConferenceMediaTransport(LOOPBACK))

        def started(session: SessionStarted) -> None:
            listener.attach(session.media)

        def media_state(state: str) -> None:
            nonlocal sender
            media = leg.participant.media
            if state == "connected" and sender is None and media is not None:
                sender = asyncio.ensure_future(send_tone(media, OUR_TONE))

        leg.participant.on("session_started", started)
        leg.participant.on("media_state", media_state)
        await leg.join()
        web = [await jicofo.add_fake_participant(ROOM, nick) for nick in list(WEB)[:3]]
        alice, bob, carol = web
        invite = await invited(jicofo, ROOM, leg)
        (bridge,) = bridges
        await asyncio.wait_for(bridge.connected.wait(), 5.0)
        await leg.wait_event("media_state", 2)  # checking, connected
        media = leg.participant.media
        assert isinstance(media, ConferenceMediaTransport) and media.state == "connected"
        try:
            await asyncio.sleep(1.6)
            # Three participants, three frequencies, each alone on its own SSRC.
            for fake in web:
                ssrc = fake.source.ssrc
                assert listener.heard(ssrc, since=10) == {WEB[fake.nick]}, fake.nick
                assert listener.owners[ssrc] == fake.nick
            # The bridge's feedback source is known, and carries no audio.
            assert invite.bridge.feedback_source().ssrc in leg.participant.remote_sources
            assert invite.bridge.feedback_source().ssrc not in listener.packets
            # The bridge hears our tone on the SSRC of our session-accept, with audio levels.
            ours = leg.participant.local_ssrc
            assert invite.accept is not None
            assert [s.ssrc for s in invite.accept.sources] == [ours]
            assert bridge.heard(ours, TONES).present == {OUR_TONE}
            received = bridge.received[ours]
            assert received.packets >= 50
            assert all(lv is not None and lv.voice and lv.level == 13 for lv in received.levels)

            # RFC 4733 digits a web participant sends reach the gateway as events (item 7).
            keypad = next(p for p in bridge.participants if p.endpoint_id == alice.nick)
            bridge.send_dtmf(keypad, "7#")
            (source, first), (_, second) = await asyncio.wait_for(
                asyncio.gather(leg.wait_event("dtmf"), leg.wait_event("dtmf", 2)), 5.0
            )
            assert source.ssrc == alice.source.ssrc and source.owner == alice.nick
            assert (first.digit, second.digit) == ("7", "#")

            # source-add mid-call (a web participant joins): a fourth tone on its own SSRC.
            dave = await jicofo.add_fake_participant(ROOM, "d4d4d4d4")
            bridge.add_participant(dave.nick, WEB[dave.nick], ssrc=dave.source.ssrc)
            await leg.wait_event("sources_added", 2)
            await asyncio.sleep(1.0)
            assert listener.heard(dave.source.ssrc, since=10) == {WEB[dave.nick]}
            for fake in web:
                since = listener.mark(fake.source.ssrc) - 40
                assert listener.heard(fake.source.ssrc, since=since) == {WEB[fake.nick]}

            # source-remove: carol's packets still arrive from the bridge but are dropped.
            await jicofo.remove_fake_participant(ROOM, carol.nick, send_remove=True)
            await leg.wait_event("sources_removed")
            carol_packets = listener.packets[carol.source.ssrc]
            dropped = media.counters.unknown_ssrc
            # bob leaves the MUC with no source-remove (current Jicofo): dropped all the same.
            await jicofo.remove_fake_participant(ROOM, bob.nick)
            await leg.wait_event("sources_removed", 2)
            bob_packets = listener.packets[bob.source.ssrc]
            await asyncio.sleep(0.6)
            assert listener.packets[carol.source.ssrc] == carol_packets
            assert listener.packets[bob.source.ssrc] == bob_packets
            assert media.counters.unknown_ssrc - dropped >= 20
            since = listener.mark(alice.source.ssrc) - 25
            assert listener.heard(alice.source.ssrc, since=since) == {WEB[alice.nick]}
            since = listener.mark(dave.source.ssrc) - 25
            assert listener.heard(dave.source.ssrc, since=since) == {WEB[dave.nick]}
        finally:
            if sender is not None:
                sender.cancel()
            await listener.stop()
            await leg.leave()
            for bridge in bridges:
                await bridge.close()
